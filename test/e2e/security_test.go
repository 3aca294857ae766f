package e2e

import (
	"context"
	"os"
	"path/filepath"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/onsi/gomega/types"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	"github.com/checkpoint-quota/checkpoint-quota/test/archive"
	"github.com/checkpoint-quota/checkpoint-quota/test/localrun"
	"github.com/checkpoint-quota/checkpoint-quota/test/testenv"
)

// Each row of docs/security.md's table, checked as that actor with real requests: RBAC and
// admission both answer, as they would for the actor's own credentials. Each row's Describe
// is named as the row's actor (test/layout checks that each row has one).
var _ = Describe("docs/security.md: who may do what", func() {
	var (
		ns string
		// published is the Checkpoint of an archive of pod app-0 in ns, on the agent's node.
		published *cqv1.Checkpoint
	)
	BeforeEach(func(ctx context.Context) {
		var err error
		ns, err = env.CreateNamespace(ctx, "security")
		Expect(err).NotTo(HaveOccurred())
		published = publish(ctx, ns, "app-0", "app")
	})

	Describe("cluster admin", func() {
		It("writes cluster quotas, pins beyond the limits with a .keep marker, and cannot pin past a limit through the API, put a finalizer on a Checkpoint or delete a pinned one", issue29, func(ctx context.Context) {
			By("writing a ClusterCheckpointQuota")
			_, stderr, err := env.Kubectl(`apiVersion: checkpointquota.dev/v1alpha1
kind: ClusterCheckpointQuota
metadata: {name: security-admin}
spec:
  namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: `+ns+`}}
  limits: {perNamespace: {checkpoints: 1}}
`, "apply", "-f", "-")
			Expect(err).NotTo(HaveOccurred(), stderr)
			DeferCleanup(func() { _, _, _ = env.Kubectl("", "delete", "clustercheckpointquota", "security-admin") })

			By("pinning the archive with a .keep marker: newer archives go, it stays, past perNamespace.checkpoints 1")
			path := filepath.Join(ckptDir, published.Spec.Archive.FileName)
			Expect(os.WriteFile(path+".keep", []byte("kept by the cluster admin\n"), 0o600)).To(Succeed())
			Eventually(func(g Gomega) bool { return get(ctx, g, published).Status.KeepMarker }).Should(BeTrue())
			publish(ctx, ns, "app-0", "app")
			Eventually(filesOf, 60*time.Second).WithArguments(ns).Should(Equal([]string{published.Spec.Archive.FileName}))

			By("pinning another archive through the API: refused, as it would put the pinned archives over the limit")
			Expect(pinAsItAppears(ctx, env.Client, ns, "app-0", "app")).
				To(MatchError(MatchRegexp(`perNamespace\.checkpoints 2/1 pinned`)))

			By("putting a finalizer on a Checkpoint: refused, naming it")
			_, stderr, err = env.Kubectl("", "patch", "checkpoint", published.Name, "-n", ns, "--type", "merge",
				"-p", `{"metadata":{"finalizers":["admin.example.com/hold"]}}`)
			Expect(err).To(HaveOccurred(), "the admin put a finalizer on a Checkpoint")
			Expect(stderr).To(ContainSubstring("admin.example.com/hold"))

			By("deleting the pinned Checkpoint: refused, saying how to unpin it")
			_, stderr, err = env.Kubectl("", "delete", "checkpoint", published.Name, "-n", ns)
			Expect(err).To(HaveOccurred())
			Expect(stderr).To(ContainSubstring("is pinned by a .keep marker"))
			Expect(path).To(BeAnExistingFile())
		})
	})

	Describe("namespace admins and editors", func() {
		var alice *testenv.Tenant
		BeforeEach(func(ctx context.Context) { alice = newTenant(ctx, ns) })

		It("reads and deletes the namespace's Checkpoints and writes its quotas", func(_ context.Context) {
			out, stderr, err := alice.Kubectl("", "get", "checkpoints")
			Expect(err).NotTo(HaveOccurred(), stderr)
			Expect(out).To(ContainSubstring(published.Name))
			_, stderr, err = alice.Kubectl(minimalQuota(ns, "mine"), "apply", "-f", "-")
			Expect(err).NotTo(HaveOccurred(), stderr)
			_, stderr, err = alice.Kubectl("", "get", "checkpointquota", "mine")
			Expect(err).NotTo(HaveOccurred(), stderr)

			_, stderr, err = alice.Kubectl("", "delete", "checkpoint", published.Name, "--wait=true", "--timeout=30s")
			Expect(err).NotTo(HaveOccurred(), stderr)
			Eventually(filepath.Join).WithArguments(ckptDir, published.Spec.Archive.FileName).ShouldNot(BeAnExistingFile())
		})

		It("cannot write cluster quotas, make Checkpoints, write their status, reach another namespace, or delete a pinned Checkpoint", func(ctx context.Context) {
			c, err := alice.Client()
			Expect(err).NotTo(HaveOccurred())
			other, err := env.CreateNamespace(ctx, "other")
			Expect(err).NotTo(HaveOccurred())
			elsewhere := publish(ctx, other, "db-0", "db")

			ccq := &cqv1.ClusterCheckpointQuota{ObjectMeta: metav1.ObjectMeta{Name: "alice-" + ns}}
			Expect(c.Create(ctx, ccq)).To(beForbidden(), "create a ClusterCheckpointQuota")
			made := &cqv1.Checkpoint{ObjectMeta: metav1.ObjectMeta{Name: "made-up", Namespace: ns}, Spec: published.Spec}
			Expect(c.Create(ctx, made)).To(beForbidden(), "create a Checkpoint")
			status := get(ctx, Default, published)
			status.Status.KeepMarker = true
			Expect(c.Status().Update(ctx, status)).To(beForbidden(), "write a Checkpoint's status")
			Expect(c.List(ctx, &cqv1.CheckpointList{}, client.InNamespace(other))).To(beForbidden(), "list another namespace's Checkpoints")
			Expect(c.Delete(ctx, elsewhere)).To(beForbidden(), "delete another namespace's Checkpoint")
			Expect(c.Create(ctx, &cqv1.CheckpointQuota{ObjectMeta: metav1.ObjectMeta{Name: "mine", Namespace: other}})).
				To(beForbidden(), "create a CheckpointQuota in another namespace")

			By("deleting a Checkpoint the admin pinned: refused by the admission policy")
			pin(ctx, published, true)
			_, stderr, err := alice.Kubectl("", "delete", "checkpoint", published.Name)
			Expect(err).To(HaveOccurred())
			Expect(stderr).To(ContainSubstring("is pinned (spec.pinned is true)"))
		})

		It("cannot pin or unpin, nor put a finalizer on a Checkpoint", issue29, func(ctx context.Context) {
			_, stderr, err := alice.Kubectl("", "patch", "checkpoint", published.Name, "--type", "merge", "-p", `{"spec":{"pinned":true}}`)
			Expect(err).To(HaveOccurred(), "alice pinned with only edit")
			Expect(stderr).To(MatchRegexp(`\bpin\b`))
			pin(ctx, published, true)
			_, stderr, err = alice.Kubectl("", "patch", "checkpoint", published.Name, "--type", "merge", "-p", `{"spec":{"pinned":false}}`)
			Expect(err).To(HaveOccurred(), "alice unpinned with only edit")
			Expect(stderr).To(MatchRegexp(`\bpin\b`))
			pin(ctx, published, false)

			_, stderr, err = alice.Kubectl("", "patch", "checkpoint", published.Name, "--type", "merge",
				"-p", `{"metadata":{"finalizers":["alice.example.com/hold"]}}`)
			Expect(err).To(HaveOccurred(), "alice put a finalizer on a Checkpoint")
			Expect(stderr).To(ContainSubstring("alice.example.com/hold"))
		})

		It("cannot read a CheckpointStore or its credentials, which fetch -o FILE reads, nor make an archive a copy", issue32, func(ctx context.Context) {
			c, err := alice.Client()
			Expect(err).NotTo(HaveOccurred())
			Expect(c.Get(ctx, client.ObjectKey{Name: "archive"}, &cqv1.CheckpointStore{})).To(beForbidden(), "read a CheckpointStore")
			Expect(c.Get(ctx, client.ObjectKey{Namespace: localrun.OrphanNamespace, Name: "archive-credentials"}, &corev1.Secret{})).
				To(beForbidden(), "read a store's credentials Secret")
			_, stderr, err := alice.Kubectl("", "patch", "checkpoint", published.Name, "--type", "merge",
				"-p", `{"spec":{"archive":{"copyOf":{"namespace":"`+ns+`","name":"x","uid":"u","nodeName":"n"}}}}`)
			Expect(err).To(HaveOccurred(), "alice made an archive a copy, which every rule frees first")
			Expect(stderr).To(ContainSubstring("spec.archive is written by the node agent"))
		})
	})

	Describe("holders of `pin`", func() {
		It("pins and unpins within the limits, and a pin past a limit is refused with the numbers", issue29, func(ctx context.Context) {
			b := newBoundary(ctx, 2, 12, 0)
			role := &rbacv1.Role{
				ObjectMeta: metav1.ObjectMeta{Name: "checkpoint-pinner", Namespace: b.tenant.Namespace},
				Rules:      []rbacv1.PolicyRule{{APIGroups: []string{cqv1.GroupVersion.Group}, Resources: []string{"checkpoints"}, Verbs: []string{"pin"}}},
			}
			Expect(env.Client.Create(ctx, role)).To(Succeed())
			Expect(env.Client.Create(ctx, &rbacv1.RoleBinding{
				ObjectMeta: metav1.ObjectMeta{Name: "alice-pins", Namespace: b.tenant.Namespace},
				RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name},
				Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: b.tenant.User}},
			})).To(Succeed())

			By("alice pins each new Checkpoint while 12 archives arrive: two pins hold, the rest are refused")
			stop := b.eachNewCheckpoint(ctx, func(c client.Client, obj *cqv1.Checkpoint) error {
				return c.Patch(ctx, obj, client.RawPatch("application/merge-patch+json", []byte(`{"spec":{"pinned":true}}`)))
			})
			for range 12 {
				b.tenantArchive()
				time.Sleep(200 * time.Millisecond)
			}
			time.Sleep(2 * time.Second)
			refusals := stop()
			b.expectTenantWithinCeilings(ctx)
			pinned := 0
			for _, c := range checkpointsIn(ctx, Default, b.tenant.Namespace) {
				if c.Spec.Pinned {
					pinned++
				}
			}
			Expect(pinned).To(BeNumerically("<=", 2))
			limitRefusals := 0
			for _, err := range refusals {
				if apierrors.IsNotFound(err) { // pruned before alice's pin reached it
					continue
				}
				Expect(err.Error()).To(MatchRegexp(`perNamespace\.checkpoints \d+/2 pinned`))
				limitRefusals++
			}
			Expect(limitRefusals).To(BeNumerically(">", 0), "no pin of alice's was refused for the limit")

			By("unpinning is allowed")
			for _, c := range checkpointsIn(ctx, Default, b.tenant.Namespace) {
				if c.Spec.Pinned {
					_, stderr, err := b.tenant.Kubectl("", "patch", "checkpoint", c.Name, "--type", "merge", "-p", `{"spec":{"pinned":false}}`)
					Expect(err).NotTo(HaveOccurred(), stderr)
				}
			}
		})
	})

	Describe("node agent", func() {
		It("publishes Checkpoints, deletes pinned ones of its own node only, and cannot write quotas or read pods", func(ctx context.Context) {
			own, err := env.ClientAs(posture.AgentOn(nodeName))
			Expect(err).NotTo(HaveOccurred())
			another, err := env.ClientAs(posture.AgentOn("another-node"))
			Expect(err).NotTo(HaveOccurred())

			made := &cqv1.Checkpoint{ObjectMeta: metav1.ObjectMeta{GenerateName: "published-", Namespace: ns}, Spec: published.Spec}
			Expect(own.Create(ctx, made, client.DryRunAll)).To(Succeed(), "create a Checkpoint")
			Eventually(func(g Gomega) error { return own.Status().Update(ctx, get(ctx, g, published), client.DryRunAll) }).
				Should(Succeed(), "write a Checkpoint's status")
			pin(ctx, published, true)
			Expect(own.Delete(ctx, get(ctx, Default, published), client.DryRunAll)).To(Succeed(), "delete a pinned Checkpoint of its node")
			Expect(another.Delete(ctx, get(ctx, Default, published), client.DryRunAll)).To(MatchError(ContainSubstring("is pinned (spec.pinned is true)")),
				"delete a pinned Checkpoint of another node")

			Expect(own.Create(ctx, &cqv1.CheckpointQuota{ObjectMeta: metav1.ObjectMeta{Name: "agent", Namespace: ns}})).To(beForbidden(), "create a CheckpointQuota")
			Expect(own.Create(ctx, &cqv1.ClusterCheckpointQuota{ObjectMeta: metav1.ObjectMeta{Name: "agent-" + ns}})).To(beForbidden(), "create a ClusterCheckpointQuota")
			Expect(own.List(ctx, &corev1.PodList{}, client.InNamespace(ns))).To(beForbidden(), "list pods")
			Expect(own.List(ctx, &corev1.SecretList{}, client.InNamespace(ns))).To(beForbidden(), "list Secrets")
		})
	})

	Describe("manager", func() {
		It("reads, prunes what is not pinned and writes status, and cannot delete a pinned Checkpoint, make Checkpoints or change a quota's spec", func(ctx context.Context) {
			mgr, err := env.ClientAs(posture.Manager)
			Expect(err).NotTo(HaveOccurred())
			_, stderr, err := env.Kubectl(minimalQuota(ns, "q"), "apply", "-f", "-")
			Expect(err).NotTo(HaveOccurred(), stderr)

			Expect(mgr.List(ctx, &corev1.PodList{}, client.InNamespace(ns))).To(Succeed(), "list pods")
			Expect(mgr.Delete(ctx, get(ctx, Default, published), client.DryRunAll)).To(Succeed(), "delete a Checkpoint that is not pinned")
			var q cqv1.CheckpointQuota
			// The running manager writes the same status: a conflict is a race, not a refusal.
			Eventually(func() error {
				if err := mgr.Get(ctx, client.ObjectKey{Namespace: ns, Name: "q"}, &q); err != nil {
					return err
				}
				return mgr.Status().Update(ctx, &q, client.DryRunAll)
			}).Should(Succeed(), "write a quota's status")

			q.Spec.Limits.PerContainer.Checkpoints = ptrTo(int64(1000))
			Expect(mgr.Update(ctx, &q)).To(beForbidden(), "change a quota's spec")
			made := &cqv1.Checkpoint{ObjectMeta: metav1.ObjectMeta{GenerateName: "made-", Namespace: ns}, Spec: published.Spec}
			Expect(mgr.Create(ctx, made)).To(beForbidden(), "create a Checkpoint")
			pin(ctx, published, true)
			Expect(mgr.Delete(ctx, get(ctx, Default, published), client.DryRunAll)).To(MatchError(ContainSubstring("is pinned (spec.pinned is true)")),
				"delete a pinned Checkpoint")
		})
	})
})

// publish writes an archive of pod/container in ns (creating the pod if it is not there) and
// returns its Checkpoint once the agent has published it.
func publish(ctx context.Context, ns, pod, container string) *cqv1.Checkpoint {
	GinkgoHelper()
	uid := createPodOnce(ctx, ns, pod, container)
	// Distinct and increasing times: the kubelet's file name has the time to the second.
	archivesWritten++
	at := time.Now().UTC().Add(-time.Hour).Truncate(time.Second).Add(time.Duration(archivesWritten) * time.Second)
	name := filepath.Base(archive.New(ns, pod, container).WithUID(uid).At(at).MustWrite(ckptDir))
	var obj *cqv1.Checkpoint
	Eventually(func() *cqv1.Checkpoint {
		obj = checkpointOf(ctx, ns, name)
		return obj
	}, 60*time.Second).ShouldNot(BeNil())
	return obj
}

// pinAsItAppears writes archives of pod/container in ns one at a time and, as c, pins each
// the moment its Checkpoint appears, until a pin is answered with anything but NotFound (the
// manager pruned the archive first), and returns that answer: nil if the pin was admitted.
func pinAsItAppears(ctx context.Context, c client.Client, ns, pod, container string) error {
	GinkgoHelper()
	uid := createPodOnce(ctx, ns, pod, container)
	for range 10 {
		archivesWritten++
		at := time.Now().UTC().Add(-time.Hour).Truncate(time.Second).Add(time.Duration(archivesWritten) * time.Second)
		name := filepath.Base(archive.New(ns, pod, container).WithUID(uid).At(at).MustWrite(ckptDir))
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			obj := checkpointOf(ctx, ns, name)
			if obj == nil {
				continue
			}
			err := c.Patch(ctx, obj, client.RawPatch("application/merge-patch+json", []byte(`{"spec":{"pinned":true}}`)))
			if !apierrors.IsNotFound(err) {
				return err
			}
			break
		}
	}
	Fail("the manager pruned each of 10 archives before a pin reached it")
	return nil
}

// checkpointOf is the Checkpoint of the archive file name in ns, or nil.
func checkpointOf(ctx context.Context, ns, name string) *cqv1.Checkpoint {
	for _, c := range checkpointsIn(ctx, Default, ns) {
		if c.Spec.Archive != nil && c.Spec.Archive.FileName == name && c.DeletionTimestamp == nil {
			return &c
		}
	}
	return nil
}

// createPodOnce creates the pod unless it exists, and returns its UID.
func createPodOnce(ctx context.Context, ns, pod, container string) string {
	GinkgoHelper()
	var p corev1.Pod
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: pod}, &p); err == nil {
		return string(p.UID)
	}
	return createPod(ctx, ns, pod, container)
}

// archivesWritten counts the archives publish wrote.
var archivesWritten int

// get reads obj again, as the admin.
func get(ctx context.Context, g Gomega, obj *cqv1.Checkpoint) *cqv1.Checkpoint {
	GinkgoHelper()
	out := &cqv1.Checkpoint{}
	g.Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(obj), out)).To(Succeed())
	return out
}

// pin sets spec.pinned of obj as the admin.
func pin(ctx context.Context, obj *cqv1.Checkpoint, pinned bool) {
	GinkgoHelper()
	patch := []byte(`{"spec":{"pinned":false}}`)
	if pinned {
		patch = []byte(`{"spec":{"pinned":true}}`)
	}
	Expect(env.Client.Patch(ctx, get(ctx, Default, obj), client.RawPatch("application/merge-patch+json", patch))).To(Succeed())
}

// beForbidden matches the error of a request that RBAC or admission refused.
func beForbidden() types.GomegaMatcher {
	return WithTransform(apierrors.IsForbidden, BeTrue())
}

func ptrTo[T any](v T) *T { return &v }
