package nodeagent_test

import (
	"os"
	"path/filepath"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	gomegatypes "github.com/onsi/gomega/types"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	testarchive "github.com/checkpoint-quota/checkpoint-quota/test/archive"
	"github.com/checkpoint-quota/checkpoint-quota/test/testenv"
)

// publishedAs waits until the archive's Checkpoint exists on node and returns it.
func publishedAs(node string, a *testarchive.Archive) cqv1.Checkpoint {
	GinkgoHelper()
	var found cqv1.Checkpoint
	Eventually(func(g Gomega) {
		var hit []cqv1.Checkpoint
		for _, c := range checkpointsOf(node)(g) {
			if c.Spec.Archive.FileName == a.FileName() && c.DeletionTimestamp.IsZero() {
				hit = append(hit, c)
			}
		}
		g.Expect(hit).To(HaveLen(1))
		found = hit[0]
	}).Should(Succeed())
	return found
}

// eventsAbout lists the events whose subject is the object with uid.
func eventsAbout(ns string, uid types.UID) func(Gomega) []eventsv1.Event {
	return func(g Gomega) []eventsv1.Event {
		var list eventsv1.EventList
		g.Expect(env.Client.List(ctx, &list, client.InNamespace(ns))).To(Succeed())
		var out []eventsv1.Event
		for _, e := range list.Items {
			if e.Regarding.UID == uid {
				out = append(out, e)
			}
		}
		return out
	}
}

func withReason(reason string) gomegatypes.GomegaMatcher {
	return HaveField("Reason", reason)
}

// deleteRefusedByPolicy waits until the admission policy refuses to delete c (checked
// with a server-side dry run, which runs admission and changes nothing) and returns kubectl's message.
func deleteRefusedByPolicy(c cqv1.Checkpoint) string {
	GinkgoHelper()
	var msg string
	Eventually(func(g Gomega) {
		_, stderr, err := env.Kubectl("", "delete", "checkpoint", c.Name, "-n", c.Namespace, "--dry-run=server")
		g.Expect(err).To(HaveOccurred(), "the delete was allowed")
		msg = stderr
	}).Should(Succeed())
	return msg
}

// foreignFinalizer is another tool's finalizer, which an administrator may put on any object.
const foreignFinalizer = "backup.example.com/hold"

// finalizerPolicy is the binding of the admission policy that refuses new finalizers on
// Checkpoints (config/admission-policy/checkpoint-writes.yaml).
const finalizerPolicy = "checkpointquota-checkpoint-finalizers"

// holdAndDelete puts the foreign finalizer on c, as an administrator's tool did before the
// admission policy that refuses it was installed (the spec unbinds it meanwhile), and deletes it.
func holdAndDelete(c cqv1.Checkpoint) {
	GinkgoHelper()
	_, _, err := env.Kubectl("", "get", "validatingadmissionpolicybinding", finalizerPolicy)
	bound := err == nil
	if bound {
		out, stderr, err := env.Kubectl("", "delete", "validatingadmissionpolicybinding", finalizerPolicy)
		Expect(err).NotTo(HaveOccurred(), out+stderr)
	}
	Eventually(func() error {
		var fresh cqv1.Checkpoint
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(&c), &fresh); err != nil {
			return err
		}
		patch := client.MergeFrom(fresh.DeepCopy())
		fresh.Finalizers = append(fresh.Finalizers, foreignFinalizer)
		return env.Client.Patch(ctx, &fresh, patch)
	}).Should(Succeed(), "the finalizer policy's binding is gone")
	if bound {
		binding := "apiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingAdmissionPolicyBinding\n" +
			"metadata: {name: " + finalizerPolicy + "}\nspec: {policyName: " + finalizerPolicy + ", validationActions: [Deny]}\n"
		out, stderr, err := env.Kubectl(binding, "apply", "-f", "-")
		Expect(err).NotTo(HaveOccurred(), out+stderr)
	}
	Expect(env.Client.Delete(ctx, &c)).To(Succeed())
}

// release removes the foreign finalizer from c, so that its deletion completes.
func release(c cqv1.Checkpoint) {
	GinkgoHelper()
	Eventually(func() error {
		var held cqv1.Checkpoint
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(&c), &held); err != nil {
			return err
		}
		patch := client.MergeFromWithOptions(held.DeepCopy(), client.MergeFromWithOptimisticLock{})
		held.Finalizers = nil
		return env.Client.Patch(ctx, &held, patch)
	}).Should(Succeed())
}

var _ = Describe("Deleting Checkpoints", func() {
	var (
		ns, node, dir string
	)
	BeforeEach(func() {
		var err error
		ns, err = env.CreateNamespace(ctx, "delete")
		Expect(err).NotTo(HaveOccurred())
		node, dir = newNode()
		startAgent(node, settleTime, dir)
	})

	It("lets the agent of the Checkpoint's node delete it pinned, and no other node's agent", func() {
		a := testarchive.New(ns, "cache-0", "redis")
		a.MustWrite(dir)
		obj := publishedAs(node, a)
		out, stderr, err := env.Kubectl("", "patch", "checkpoint", obj.Name, "-n", ns, "--type", "merge", "-p", `{"spec":{"pinned":true}}`)
		Expect(err).NotTo(HaveOccurred(), out+stderr)
		deleteAs := func(as rest.ImpersonationConfig) error {
			cfg := *env.Config
			cfg.Impersonate = as
			c, err := client.New(&cfg, client.Options{Scheme: testenv.Scheme})
			Expect(err).NotTo(HaveOccurred())
			return c.Delete(ctx, &obj, client.DryRunAll)
		}
		Eventually(func() error { return deleteAs(agentOn("another-node")) }).Should(MatchError(ContainSubstring("spec.pinned is true")))
		Expect(deleteAs(agentOn(node))).To(Succeed())
		// A token without the node's name (not bound to a pod) is let through as before.
		Expect(deleteAs(rest.ImpersonationConfig{UserName: agentUser})).To(Succeed())
	})

	It("removes the archive when a user deletes its Checkpoint, and the Checkpoint when the archive is removed", func() {
		a := testarchive.New(ns, "cache-0", "redis")
		b := testarchive.New(ns, "cache-1", "redis")
		pathA, pathB := a.MustWrite(dir), b.MustWrite(dir)
		unrelated := filepath.Join(dir, "notes.txt")
		Expect(os.WriteFile(unrelated, []byte("not an archive"), 0o600)).To(Succeed())
		objA := publishedAs(node, a)
		publishedAs(node, b)

		out, stderr, err := env.Kubectl("", "delete", "checkpoint", objA.Name, "-n", ns)
		Expect(err).NotTo(HaveOccurred(), out+stderr)
		Expect(out).To(ContainSubstring("deleted"))
		// kubectl returns once the object is gone; the agent removes the file right after.
		Eventually(func() bool { return exists(pathA) }).Should(BeFalse())
		Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(&objA), &cqv1.Checkpoint{})).To(Satisfy(apierrors.IsNotFound))

		Expect(os.Remove(pathB)).To(Succeed())
		Eventually(func(g Gomega) []cqv1.Checkpoint { return checkpointsOf(node)(g) }).Should(BeEmpty())
		Expect(unrelated).To(BeAnExistingFile())
	})

	It("refuses kubectl delete of a pinned Checkpoint with a message that says how to unpin it", func() {
		byMarker := testarchive.New(ns, "cache-0", "redis")
		bySpec := testarchive.New(ns, "cache-1", "redis")
		markerPath := byMarker.MustWrite(dir)
		specPath := bySpec.MustWrite(dir)
		Expect(os.WriteFile(markerPath+".keep", nil, 0o600)).To(Succeed())

		Eventually(func(g Gomega) {
			c := publishedAs(node, byMarker)
			g.Expect(c.Status.KeepMarker).To(BeTrue())
			g.Expect(c.Status.Pinned).To(BeTrue())
		}).Should(Succeed())
		obj := publishedAs(node, byMarker)
		msg := deleteRefusedByPolicy(obj)
		Expect(msg).To(ContainSubstring("is pinned by a .keep marker"))
		Expect(msg).To(ContainSubstring(markerPath + ".keep"))
		_, stderr, err := env.Kubectl("", "delete", "checkpoint", obj.Name, "-n", ns)
		Expect(err).To(HaveOccurred())
		Expect(stderr).To(ContainSubstring("is pinned"))

		specObj := publishedAs(node, bySpec)
		out, stderr, err := env.Kubectl("", "patch", "checkpoint", specObj.Name, "-n", ns, "--type", "merge", "-p", `{"spec":{"pinned":true}}`)
		Expect(err).NotTo(HaveOccurred(), out+stderr)
		// The agent keeps the pin on disk too, so that it outlives the object.
		Eventually(func() string { return specPath + ".keep" }).Should(BeAnExistingFile())
		Eventually(func() bool { return publishedAs(node, bySpec).Status.Pinned }).Should(BeTrue())
		msg = deleteRefusedByPolicy(specObj)
		Expect(msg).To(ContainSubstring("spec.pinned is true"))
		Expect(msg).To(ContainSubstring(`kubectl patch checkpoint ` + specObj.Name + ` -n ` + ns + ` --type merge -p '{"spec":{"pinned":false}}'`))

		Consistently(func() bool { return exists(markerPath) && exists(specPath) }, time.Second).Should(BeTrue())

		// Unpinning as the message says, then deleting, removes the archive and the agent's marker.
		out, stderr, err = env.Kubectl("", "patch", "checkpoint", specObj.Name, "-n", ns, "--type", "merge", "-p", `{"spec":{"pinned":false}}`)
		Expect(err).NotTo(HaveOccurred(), out+stderr)
		Eventually(func() bool { return exists(specPath + ".keep") }).Should(BeFalse())
		Eventually(func() bool { return publishedAs(node, bySpec).Status.Pinned }).Should(BeFalse())
		out, stderr, err = env.Kubectl("", "delete", "checkpoint", specObj.Name, "-n", ns)
		Expect(err).NotTo(HaveOccurred(), out+stderr)
		Eventually(func() bool { return exists(specPath) }).Should(BeFalse())
		// The person's marker stays where they put it.
		Expect(markerPath + ".keep").To(BeAnExistingFile())
	})

	It("deletes the Checkpoint of an archive pinned by spec.pinned once its file is removed on the node", func() {
		a := testarchive.New(ns, "cache-0", "redis")
		path := a.MustWrite(dir)
		obj := publishedAs(node, a)
		out, stderr, err := env.Kubectl("", "patch", "checkpoint", obj.Name, "-n", ns, "--type", "merge", "-p", `{"spec":{"pinned":true}}`)
		Expect(err).NotTo(HaveOccurred(), out+stderr)
		Eventually(func() bool { return publishedAs(node, a).Status.Pinned }).Should(BeTrue())
		Eventually(func() string { return path + ".keep" }).Should(BeAnExistingFile())
		// A person's delete is still refused; the agent's, once the file is gone, is not.
		Expect(deleteRefusedByPolicy(obj)).To(ContainSubstring("spec.pinned is true"))

		Expect(os.Remove(path)).To(Succeed())
		Eventually(func(g Gomega) []cqv1.Checkpoint { return checkpointsOf(node)(g) }).Should(BeEmpty())
	})

	It("removes the archive of a Checkpoint whose deletion was admitted while another finalizer holds it", func() {
		a := testarchive.New(ns, "cache-0", "redis")
		path := a.MustWrite(dir)
		obj := publishedAs(node, a)
		// An administrator's tool holds the object; the delete is admitted all the same.
		holdAndDelete(obj)
		Eventually(func() bool { return exists(path) }).Should(BeFalse())
		// The object lingers, Terminating, and says that its archive is gone, so that the
		// manager no longer counts it; nothing stands for the archive in its place.
		Eventually(func(g Gomega) bool {
			var held cqv1.Checkpoint
			g.Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(&obj), &held)).To(Succeed())
			return held.IsArchiveRemoved()
		}).Should(BeTrue(), "ArchiveRemoved")
		Consistently(func(g Gomega) {
			var held cqv1.Checkpoint
			g.Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(&obj), &held)).To(Succeed())
			g.Expect(held.UID).To(Equal(obj.UID))
			g.Expect(held.DeletionTimestamp).NotTo(BeNil())
			g.Expect(checkpointsOf(node)(g)).To(HaveLen(1))
		}, 2*time.Second).Should(Succeed())
		release(obj)
		Eventually(func(g Gomega) []cqv1.Checkpoint { return checkpointsOf(node)(g) }).Should(BeEmpty())
	})

	Context("without the admission policy", func() {
		BeforeEach(func() {
			out, stderr, err := env.Kubectl("", "delete", "-k", policyPath)
			Expect(err).NotTo(HaveOccurred(), out+stderr)
			DeferCleanup(func() {
				out, stderr, err := env.Kubectl("", "apply", "-k", policyPath)
				Expect(err).NotTo(HaveOccurred(), out+stderr)
			})
		})

		It("keeps a pinned archive when pruning deletes its Checkpoint, says why, and publishes it again", func() {
			byMarker := testarchive.New(ns, "cache-0", "redis")
			bySpec := testarchive.New(ns, "cache-1", "redis")
			unpinned := testarchive.New(ns, "cache-2", "redis")
			markerPath, specPath, unpinnedPath := byMarker.MustWrite(dir), bySpec.MustWrite(dir), unpinned.MustWrite(dir)
			Expect(os.WriteFile(markerPath+".keep", []byte("keep for the incident review\n"), 0o600)).To(Succeed())
			Eventually(func() bool { return publishedAs(node, byMarker).Status.KeepMarker }).Should(BeTrue())
			specObj := publishedAs(node, bySpec)
			specObj.Spec.Pinned = true
			Expect(env.Client.Update(ctx, &specObj)).To(Succeed())
			Eventually(func() bool { return publishedAs(node, bySpec).Status.Pinned }).Should(BeTrue())

			// Pruning is one delete, as the manager makes it.
			prune := func(c cqv1.Checkpoint) {
				GinkgoHelper()
				// The apiserver stops enforcing the removed policy within moments.
				Eventually(func() error { return env.Client.Delete(ctx, &c, client.DryRunAll) }).Should(Succeed())
				Expect(env.Client.Delete(ctx, &c)).To(Succeed())
			}
			for _, a := range []*testarchive.Archive{byMarker, bySpec, unpinned} {
				old := publishedAs(node, a)
				prune(old)
				if a == unpinned {
					Eventually(func() bool { return exists(unpinnedPath) }).Should(BeFalse())
					continue
				}
				Eventually(eventsAbout(ns, old.UID)).Should(ContainElement(And(withReason("ArchiveKept"),
					HaveField("Note", ContainSubstring("Kept archive "+filepath.Join(dir, a.FileName()))),
					HaveField("Note", ContainSubstring("it is pinned by")))))
				// Published again, still pinned.
				Eventually(func(g Gomega) {
					again := publishedAs(node, a)
					g.Expect(again.UID).NotTo(Equal(old.UID))
					g.Expect(again.IsPinned()).To(BeTrue())
				}).Should(Succeed())
			}
			Consistently(func() bool { return exists(markerPath) && exists(specPath) }, time.Second).Should(BeTrue())
			Expect(publishedAs(node, bySpec).Spec.Pinned).To(BeTrue(), "spec.pinned did not outlive the pruned object")
		})

		It("keeps a pinned archive whose Checkpoint another finalizer holds, and publishes it again only once that one is gone", func() {
			a := testarchive.New(ns, "cache-0", "redis")
			path := a.MustWrite(dir)
			Expect(os.WriteFile(path+".keep", nil, 0o600)).To(Succeed())
			Eventually(func() bool { return publishedAs(node, a).Status.KeepMarker }).Should(BeTrue())
			obj := publishedAs(node, a)
			Eventually(func() error { return env.Client.Delete(ctx, &obj, client.DryRunAll) }).Should(Succeed())
			holdAndDelete(obj)
			Eventually(eventsAbout(ns, obj.UID)).Should(ContainElement(withReason("ArchiveKept")))
			// Its name is taken while it lingers: the archive waits, kept, and is not published.
			Consistently(func(g Gomega) {
				g.Expect(exists(path)).To(BeTrue())
				items := checkpointsOf(node)(g)
				g.Expect(items).To(HaveLen(1))
				g.Expect(items[0].UID).To(Equal(obj.UID))
			}, 2*time.Second).Should(Succeed())
			release(obj)
			Eventually(func() types.UID { return publishedAs(node, a).UID }).ShouldNot(Equal(obj.UID))
			Expect(path).To(BeAnExistingFile())
		})
	})
})
