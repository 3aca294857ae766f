package controllers_test

import (
	"context"
	"fmt"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	"github.com/checkpoint-quota/checkpoint-quota/test/builder"
)

var _ = Describe("Quota status writes", func() {
	It("cost one write for each archive that puts a container over its limit and is pruned", func() {
		ns := newNamespace("writes")
		now := fakeClock.Now()
		for p := range 4 {
			series(ns, fmt.Sprintf("web-%d", p), "app", 3, 64<<10, now.Add(-time.Hour), "")
		}
		create(builder.Quota("q", ns).Total(40, "").PerPod(10, "").PerContainer(3, "").Obj())
		Eventually(quotaStatus(ns, "q")).Should(HaveField("Used", HaveKeyWithValue("total.checkpoints", resource.MustParse("12"))))
		time.Sleep(2 * time.Second) // the status settles

		wc, err := client.NewWithWatch(env.Config, client.Options{Scheme: k8s.Scheme()})
		Expect(err).NotTo(HaveOccurred())
		w, err := wc.Watch(context.Background(), &cqv1.CheckpointQuotaList{}, client.InNamespace(ns))
		Expect(err).NotTo(HaveOccurred())
		defer w.Stop()
		var writes []cqv1.QuotaStatus
		seen := func(d time.Duration) {
			deadline := time.After(d)
			for {
				select {
				case ev := <-w.ResultChan():
					if ev.Type == watch.Modified {
						writes = append(writes, ev.Object.(*cqv1.CheckpointQuota).Status)
					}
				case <-deadline:
					return
				}
			}
		}
		seen(time.Second) // the watch's first event
		writes = nil

		// Each arrival a few status intervals after the last: the archive puts its
		// container at 4/3, the pass prunes the oldest, and the usage is 3/3 again.
		const arrivals = 4
		for i := range arrivals {
			publish(ckpt{ns: ns, pod: fmt.Sprintf("web-%d", i), container: "app", size: 64 << 10, at: now.Add(-30 * time.Minute)})
			seen(3 * time.Second)
		}
		Expect(remaining(Default, ns)).To(HaveLen(12))
		final := quotaStatus(ns, "q")()
		Expect(final.Pruned.Checkpoints).To(BeEquivalentTo(arrivals))
		Expect(final.Summary.Checkpoints).To(Equal("3/3"))
		// One write each: status.pruned counted ahead of the delete. The usage over the
		// limit lasts only until the delete and is never written, nor is the settled usage,
		// which is what the status showed before. One more write is allowed for a machine
		// slow enough that a delete outlasts the status interval; before the settle fix it
		// was 1, 3, 1, 3 writes.
		Expect(len(writes)).To(BeNumerically("<=", arrivals+1), "status writes: %+v", writes)
	})
})
