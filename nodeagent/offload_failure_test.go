package nodeagent_test

import (
	"errors"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	"github.com/checkpoint-quota/checkpoint-quota/nodeagent"
	testarchive "github.com/checkpoint-quota/checkpoint-quota/test/archive"
)

var _ = Describe("A failed upload reported from a stale view", func() {
	It("does not mark a Checkpoint that a newer version says is stored", func() {
		ns, err := env.CreateNamespace(ctx, "stale")
		Expect(err).NotTo(HaveOccurred())
		node, dir := newNode()
		a := testarchive.New(ns, "web-0", "app")
		a.MustWrite(dir)
		startAgent(node, settleTime, dir)
		published := publishedAs(node, a)
		c := &published

		By("the agent's last pass stored the archive; its cache still shows the Checkpoint marked, not stored")
		c.Status.Offload = &cqv1.OffloadRequest{Store: "archive", Reason: "test"}
		stale := c.DeepCopy()
		patch := client.MergeFrom(c.DeepCopy())
		c.Status.Location = &cqv1.ArchiveLocation{Store: "archive", Bucket: "archives", Key: "k/" + string(c.UID) + ".tar",
			SHA256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", StoredTime: metav1.Now()}
		Expect(env.Client.Status().Patch(ctx, c, patch)).To(Succeed())

		By("the next pass, from the stale view, finds no file and reports the failure")
		Expect(nodeagent.ReportOffloadFailure(ctx, env.Client, nodeagent.Config{NodeName: node}, stale,
			errors.New("open: no such file or directory"))).To(Succeed())
		var now cqv1.Checkpoint
		Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(c), &now)).To(Succeed())
		Expect(now.Status.Location).NotTo(BeNil())
		Expect(meta.IsStatusConditionTrue(now.Status.Conditions, cqv1.CheckpointConditionOffloadFailed)).To(BeFalse(),
			"a stored Checkpoint says OffloadFailed")
	})
})
