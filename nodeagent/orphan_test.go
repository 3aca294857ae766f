package nodeagent_test

import (
	"os"
	"path/filepath"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	testarchive "github.com/checkpoint-quota/checkpoint-quota/test/archive"
)

// offsetClock is the real clock moved forward by what advance adds: the agent's timers run
// as usual, and what it keeps for a while (its lookups of namespaces) expires at once.
type offsetClock struct {
	clock.RealClock
	mu  sync.Mutex
	off time.Duration
}

func (c *offsetClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.off)
}

func (c *offsetClock) Since(t time.Time) time.Duration { return c.Now().Sub(t) }

func (c *offsetClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.off += d
}

// checkpointsIn lists the Checkpoints in namespace ns, through the direct client.
func checkpointsIn(ns string) func(Gomega) []cqv1.Checkpoint {
	return func(g Gomega) []cqv1.Checkpoint {
		var list cqv1.CheckpointList
		g.Expect(env.Client.List(ctx, &list, client.InNamespace(ns))).To(Succeed())
		return list.Items
	}
}

var _ = Describe("Orphans of a namespace whose name is taken again", func() {
	var (
		ns, node, dir, path string
		clk                 *offsetClock
		a                   *agent
		orphan              cqv1.Checkpoint
	)
	BeforeEach(func() {
		var err error
		ns, err = env.CreateNamespace(ctx, "shop")
		Expect(err).NotTo(HaveOccurred())
		node, dir = newNode()
		clk = &offsetClock{}
		a = startAgentWithClock(node, settleTime, clk, dir)
		arch := testarchive.New(ns, "cache-0", "redis")
		path = arch.MustWrite(dir)
		publishedAs(node, arch)

		deleteNamespace(ns)
		Eventually(func(g Gomega) []cqv1.Checkpoint { return orphansOf(ns)(g) }).Should(HaveLen(1))
		orphan = orphansOf(ns)(Default)[0]
		awaitRecorded(node, orphan.UID)

		By("creating a new namespace under the gone one's name")
		Expect(env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})).To(Succeed())
	})

	// stillAnOrphan checks that the archive is published as an orphan of ns again, by a
	// Checkpoint other than before, and never in the new namespace ns.
	stillAnOrphan := func() {
		GinkgoHelper()
		Eventually(func(g Gomega) {
			orphans := orphansOf(ns)(g)
			g.Expect(orphans).To(HaveLen(1))
			g.Expect(orphans[0].UID).NotTo(Equal(orphan.UID))
			g.Expect(orphans[0].Spec.Archive.OrphanOf).To(Equal(ns))
		}).Should(Succeed())
		Consistently(func(g Gomega) []cqv1.Checkpoint { return checkpointsIn(ns)(g) }, 2*time.Second).Should(BeEmpty())
		Expect(path).To(BeAnExistingFile())
	}

	It("keeps the archive an orphan when its Node is registered again and the manager released its Checkpoints", func() {
		// The agent looks namespaces up again after 30 s when it publishes.
		clk.advance(time.Minute)

		By("deleting the Node object and registering it again, then releasing its Checkpoints as the manager does")
		var n corev1.Node
		Expect(env.Client.Get(ctx, client.ObjectKey{Name: node}, &n)).To(Succeed())
		Expect(env.Client.Delete(ctx, &n)).To(Succeed())
		Eventually(func() bool {
			return apierrors.IsNotFound(env.Client.Get(ctx, client.ObjectKey{Name: node}, &corev1.Node{}))
		}).Should(BeTrue())
		Expect(env.Client.Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: node}})).To(Succeed())
		Expect(env.Client.Delete(ctx, &orphan)).To(Succeed())

		stillAnOrphan()
	})

	It("keeps the archive an orphan when the agent's record is lost", func() {
		a.stop()
		Expect(os.Remove(filepath.Join(stateRoot, node, "records.log"))).To(Succeed())
		startAgent(node, settleTime, dir)
		// The agent records the Checkpoint that stands for the archive again.
		awaitRecorded(node, orphan.UID)
		Consistently(func(g Gomega) []cqv1.Checkpoint { return checkpointsIn(ns)(g) }, 2*time.Second).Should(BeEmpty())
		Expect(orphansOf(ns)(Default)).To(ConsistOf(HaveField("UID", orphan.UID)))
		Expect(path).To(BeAnExistingFile())
	})
})
