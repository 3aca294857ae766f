package e2e

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
)

// The four attacks of issue 29, each by alice, who holds only the built-in edit role in
// namespace tenant, under the admin's ClusterCheckpointQuota (perNamespace.checkpoints 5,
// total.checkpoints 12) over tenant and victim, where victim holds 5 archives.
var _ = Describe("a tenant with only the edit role, against the cluster's quotas (issue 29)", func() {
	It("cannot pin the tenant's archives past the cluster's ceilings, nor make the manager prune another namespace's", issue29, func(ctx context.Context) {
		b := newBoundary(ctx, 5, 12, 5)

		By("alice pins each new Checkpoint of tenant as it appears, while 20 archives arrive")
		stop := b.eachNewCheckpoint(ctx, func(c client.Client, obj *cqv1.Checkpoint) error {
			return c.Patch(ctx, obj, client.RawPatch("application/merge-patch+json", []byte(`{"spec":{"pinned":true}}`)))
		})
		for range 20 {
			b.tenantArchive()
			time.Sleep(200 * time.Millisecond)
		}
		time.Sleep(2 * time.Second)
		refusals := stop()

		b.expectTenantWithinCeilings(ctx)
		b.expectVictimKept(ctx)
		By("each pin alice tried was refused, saying that pinning is a permission of its own")
		Expect(refusals).NotTo(BeEmpty(), "no pin of alice's was refused")
		for _, err := range refusals {
			Expect(apierrors.IsForbidden(err)).To(BeTrue(), "%v", err)
			Expect(err.Error()).To(ContainSubstring("pin"))
		}
	}, NodeTimeout(5*time.Minute))

	It("cannot raise the tenant's limit with a CheckpointQuota of its own: the cluster's ceiling caps it, and says so", issue29, func(ctx context.Context) {
		b := newBoundary(ctx, 5, 12, 5)

		By("alice applies a CheckpointQuota with total.checkpoints 1000 in tenant")
		_, stderr, err := b.tenant.Kubectl(`apiVersion: checkpointquota.dev/v1alpha1
kind: CheckpointQuota
metadata: {name: mine}
spec:
  limits: {total: {checkpoints: 1000}}
`, "apply", "-f", "-")
		Expect(err).NotTo(HaveOccurred(), "a quota above a ceiling is accepted (GitOps order must not matter): %s", stderr)
		Expect(stderr).To(ContainSubstring("Warning:"))
		Expect(stderr).To(ContainSubstring(b.ceiling), "the warning names the ceiling")

		for range 12 {
			b.tenantArchive()
		}
		b.expectTenantWithinCeilings(ctx)
		b.expectVictimKept(ctx)

		By("the quota's status and kubectl describe say what caps it")
		capped := fmt.Sprintf("capped by ClusterCheckpointQuota %s at %d", b.ceiling, b.perNamespace)
		Eventually(func() string {
			out, _, _ := b.tenant.Kubectl("", "get", "checkpointquota", "mine", "-o", "jsonpath={.status.usageTable}")
			return out
		}).Should(ContainSubstring(capped))
		out, stderr, err := b.tenant.Kubectl("", "get", "checkpointquota", "mine", "-o",
			`jsonpath={.status.hard.total\.checkpoints} {.status.effectivePolicy[?(@.limit=="total.checkpoints")].state}`)
		Expect(err).NotTo(HaveOccurred(), stderr)
		Expect(out).To(Equal(fmt.Sprintf("%d Capped", b.perNamespace)))
		out, stderr, err = b.tenant.Kubectl("", "describe", "checkpointquota", "mine")
		Expect(err).NotTo(HaveOccurred(), stderr)
		Expect(out).To(ContainSubstring(capped))
	}, NodeTimeout(5*time.Minute))

	It("cannot keep pruned archives on the node with a finalizer of its own, nor hide them from usage", issue29, func(ctx context.Context) {
		b := newBoundary(ctx, 5, 12, 5)
		const finalizer = "alice.example.com/hold"
		DeferCleanup(func(ctx context.Context) { dropFinalizer(ctx, b.tenant.Namespace, finalizer) })

		By("alice adds her own finalizer to each new Checkpoint of tenant, while 20 archives arrive")
		stop := b.eachNewCheckpoint(ctx, func(c client.Client, obj *cqv1.Checkpoint) error {
			return retry.RetryOnConflict(retry.DefaultRetry, func() error {
				if err := c.Get(ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
					return client.IgnoreNotFound(err)
				}
				obj.Finalizers = append(obj.Finalizers, finalizer)
				return c.Update(ctx, obj)
			})
		})
		for range 20 {
			b.tenantArchive()
			time.Sleep(200 * time.Millisecond)
		}
		time.Sleep(2 * time.Second)
		refusals := stop()

		b.expectTenantWithinCeilings(ctx)
		b.expectVictimKept(ctx)
		By("the ceiling's usage of tenant counts the archives on the node")
		Eventually(func(g Gomega) int64 { return namespaceUsage(ctx, g, b.ceiling, b.tenant.Namespace) }).
			Should(Equal(int64(len(filesOf(Default, b.tenant.Namespace)))))
		By("each finalizer alice tried to add was refused, naming it")
		Expect(refusals).NotTo(BeEmpty(), "no finalizer of alice's was refused")
		for _, err := range refusals {
			Expect(err.Error()).To(ContainSubstring(finalizer))
		}
	}, NodeTimeout(5*time.Minute))

	It("cannot make admission or the manager costly with many large quotas", func(ctx context.Context) {
		b := newBoundary(ctx, 5, 12, 5)
		rssBefore := residentBytes(manager.Pid())

		By("alice creates 50 small quotas in tenant, in one apply")
		var list strings.Builder
		list.WriteString("apiVersion: v1\nkind: List\nitems:\n")
		for i := range 50 {
			fmt.Fprintf(&list, "- {apiVersion: checkpointquota.dev/v1alpha1, kind: CheckpointQuota, metadata: {name: q%d}, "+
				"spec: {target: {containerNames: [c%d]}, limits: {perContainer: {checkpoints: 3}}}}\n", i, i)
		}
		_, stderr, err := b.tenant.Kubectl(list.String(), "apply", "-f", "-")
		Expect(err).NotTo(HaveOccurred(), stderr)

		By("alice tries quotas of 20,000 container names each (1.1 MB): refused by their size, naming the field")
		for i := range 2 {
			_, stderr, err := b.tenant.Kubectl(hugeQuota(fmt.Sprintf("huge%d", i), 20000), "apply", "--server-side", "-f", "-")
			Expect(err).To(HaveOccurred(), "a quota of 20,000 container names was accepted")
			Expect(stderr).To(ContainSubstring("spec.target.containerNames"))
			Expect(stderr).To(ContainSubstring("must have at most"))
		}

		By("the admin's quotas are still admitted, and the manager still keeps victim's archives")
		_, stderr, err = env.Kubectl("", "patch", "clustercheckpointquota", b.ceiling, "--type", "merge",
			"-p", `{"spec":{"limits":{"perNamespace":{"checkpoints":6}}}}`)
		Expect(err).NotTo(HaveOccurred(), stderr)
		b.perNamespace = 6
		for range 8 {
			b.tenantArchive()
		}
		b.expectTenantWithinCeilings(ctx)
		b.expectVictimKept(ctx)
		By("the manager's memory grew by less than 64 MiB")
		Expect(residentBytes(manager.Pid()) - rssBefore).To(BeNumerically("<", 64<<20))
	}, NodeTimeout(5*time.Minute))
})

// hugeQuota is a CheckpointQuota whose target names n containers.
func hugeQuota(name string, n int) string {
	var s strings.Builder
	fmt.Fprintf(&s, "apiVersion: checkpointquota.dev/v1alpha1\nkind: CheckpointQuota\nmetadata: {name: %s}\nspec:\n  limits: {perContainer: {checkpoints: 3}}\n  target:\n    containerNames:\n", name)
	for i := range n {
		fmt.Fprintf(&s, "    - container-with-a-long-name-%08d\n", i)
	}
	return s.String()
}

// namespaceUsage is the archives of ns that the cluster quota name counts, as its status says.
func namespaceUsage(ctx context.Context, g Gomega, name, ns string) int64 {
	var q cqv1.ClusterCheckpointQuota
	g.Expect(env.Client.Get(ctx, client.ObjectKey{Name: name}, &q)).To(Succeed())
	for _, u := range q.Status.Namespaces {
		if u.Namespace == ns {
			return u.Checkpoints
		}
	}
	return 0
}

// dropFinalizer removes finalizer from every Checkpoint of ns, as an admin cleaning up.
func dropFinalizer(ctx context.Context, ns, finalizer string) {
	for _, c := range checkpointsIn(ctx, Default, ns) {
		Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
			obj := &cqv1.Checkpoint{}
			if err := env.Client.Get(ctx, client.ObjectKeyFromObject(&c), obj); err != nil {
				return client.IgnoreNotFound(err)
			}
			kept := obj.Finalizers[:0]
			for _, f := range obj.Finalizers {
				if f != finalizer {
					kept = append(kept, f)
				}
			}
			obj.Finalizers = kept
			return env.Client.Update(ctx, obj)
		})).To(Succeed())
	}
}

// residentBytes is the resident memory of process pid.
func residentBytes(pid int) int64 {
	GinkgoHelper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	Expect(err).NotTo(HaveOccurred())
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			Expect(err).NotTo(HaveOccurred())
			return kb << 10
		}
	}
	Fail("no VmRSS in /proc/" + strconv.Itoa(pid) + "/status")
	return 0
}
