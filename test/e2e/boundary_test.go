package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	"github.com/checkpoint-quota/checkpoint-quota/test/archive"
	"github.com/checkpoint-quota/checkpoint-quota/test/testenv"
)

// issue29 labels the specs of issue 29's fixes (cluster quotas as ceilings, pins as a grant
// within limits, the project's finalizers alone, usage counting files, bounded input):
// `go test ./test/e2e -ginkgo.label-filter=issue-29` runs them alone.
var issue29 = []any{Label("issue-29")}

// boundary is issue 29's set-up: two namespaces under one cluster quota of the admin's,
// `victim` holding archives, and `tenant`, where alice holds only the built-in edit role.
type boundary struct {
	tenant *testenv.Tenant
	// victim is the namespace whose archives the tenant must not reach.
	victim string
	// ceiling is the name of the admin's ClusterCheckpointQuota over both namespaces.
	ceiling string
	// perNamespace and total are the ceiling's limits.
	perNamespace, total int
	// victimFiles are the archives of victim, oldest first, which its quotas keep.
	victimFiles []string
	// tenantUID is the UID of the tenant's pod, whose archives tenantArchive writes.
	tenantUID string
	next      int
}

// newBoundary creates the namespaces (named tenant-* and victim-*, selected by the ceiling
// alone, so that other specs' archives do not count against its total), the admin's
// ClusterCheckpointQuota with perNamespace.checkpoints and total.checkpoints, and
// victimArchives archives in victim, older than anything the tenant will write.
func newBoundary(ctx context.Context, perNamespace, total, victimArchives int) *boundary {
	GinkgoHelper()
	id := rand.String(6)
	labels := map[string]string{"e2e.checkpointquota.dev/boundary": id}
	b := &boundary{ceiling: "ceiling-" + id, perNamespace: perNamespace, total: total}
	var names []string
	for _, prefix := range []string{"tenant", "victim"} {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: prefix + "-", Labels: labels}}
		Expect(env.Client.Create(ctx, ns)).To(Succeed())
		names = append(names, ns.Name)
	}
	b.victim = names[1]
	b.tenant = newTenant(ctx, names[0])

	_, stderr, err := env.Kubectl(fmt.Sprintf(`apiVersion: checkpointquota.dev/v1alpha1
kind: ClusterCheckpointQuota
metadata: {name: %s}
spec:
  namespaceSelector: {matchLabels: {e2e.checkpointquota.dev/boundary: %s}}
  limits:
    perNamespace: {checkpoints: %d}
    total: {checkpoints: %d}
`, b.ceiling, id, perNamespace, total), "apply", "-f", "-")
	Expect(err).NotTo(HaveOccurred(), stderr)
	DeferCleanup(func() {
		_, stderr, err := env.Kubectl("", "delete", "clustercheckpointquota", b.ceiling, "--ignore-not-found")
		Expect(err).NotTo(HaveOccurred(), stderr)
	})

	uid := createPod(ctx, b.victim, "db-0", "postgres")
	base := time.Now().UTC().Add(-2 * time.Hour).Truncate(time.Second)
	for i := range victimArchives {
		a := archive.New(b.victim, "db-0", "postgres").WithUID(uid).At(base.Add(time.Duration(i) * time.Minute))
		b.victimFiles = append(b.victimFiles, filepath.Base(a.MustWrite(ckptDir)))
	}
	Eventually(func(g Gomega) int { return len(checkpointsIn(ctx, g, b.victim)) }, 60*time.Second).Should(Equal(victimArchives))
	Expect(filesOf(Default, b.victim)).To(Equal(b.victimFiles))
	b.tenantUID = createPod(ctx, b.tenant.Namespace, "app-0", "app")
	return b
}

// tenantArchive writes the tenant's next archive, newer than every archive before it, and
// returns its file name.
func (b *boundary) tenantArchive() string {
	base := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
	b.next++
	a := archive.New(b.tenant.Namespace, "app-0", "app").WithUID(b.tenantUID).At(base.Add(time.Duration(b.next) * time.Second))
	return filepath.Base(a.MustWrite(ckptDir))
}

// expectVictimKept asserts, for a while, that victim has every archive its quotas keep:
// the files on the node and their Checkpoints.
func (b *boundary) expectVictimKept(ctx context.Context) {
	GinkgoHelper()
	Consistently(func(g Gomega) {
		g.Expect(filesOf(g, b.victim)).To(Equal(b.victimFiles), "victim's archives on the node")
		g.Expect(checkpointsIn(ctx, g, b.victim)).To(HaveLen(len(b.victimFiles)), "victim's Checkpoints")
	}, 10*time.Second, 500*time.Millisecond).Should(Succeed())
}

// expectTenantWithinCeilings asserts that, once the manager's pass has run, the tenant holds
// no more archives than the ceiling allows, on the node and as Checkpoints, pinned or not, and
// the namespaces under the ceiling no more than its total; then that it stays so.
func (b *boundary) expectTenantWithinCeilings(ctx context.Context) {
	GinkgoHelper()
	within := func(g Gomega) {
		g.Expect(len(filesOf(g, b.tenant.Namespace))).To(BeNumerically("<=", b.perNamespace),
			"the tenant's archives on the node, against the ceiling's perNamespace.checkpoints")
		g.Expect(len(checkpointsIn(ctx, g, b.tenant.Namespace))).To(BeNumerically("<=", b.perNamespace),
			"the tenant's Checkpoints, against the ceiling's perNamespace.checkpoints")
		g.Expect(len(filesOf(g, b.tenant.Namespace))+len(filesOf(g, b.victim))).To(BeNumerically("<=", b.total),
			"the archives under the ceiling, against its total.checkpoints")
	}
	Eventually(within, 90*time.Second).Should(Succeed())
	Consistently(within, 10*time.Second, 500*time.Millisecond).Should(Succeed())
}

// checkpointsIn lists the Checkpoints of ns, those being deleted included.
func checkpointsIn(ctx context.Context, g Gomega, ns string) []cqv1.Checkpoint {
	var list cqv1.CheckpointList
	g.Expect(env.Client.List(ctx, &list, client.InNamespace(ns))).To(Succeed())
	return list.Items
}

// eachNewCheckpoint calls do, acting as the tenant, once for each Checkpoint that appears
// in the tenant's namespace, until the returned stop is called; stop returns the errors do
// returned. It is what `kubectl get -w` piped into `kubectl patch` does, without the forks,
// so that it keeps up with the agent.
func (b *boundary) eachNewCheckpoint(ctx context.Context, do func(client.Client, *cqv1.Checkpoint) error) (stop func() []error) {
	c, err := b.tenant.Client()
	Expect(err).NotTo(HaveOccurred())
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan []error, 1)
	go func() {
		defer GinkgoRecover()
		seen := map[string]bool{}
		var errs []error
		for ctx.Err() == nil {
			var list cqv1.CheckpointList
			if err := c.List(ctx, &list, client.InNamespace(b.tenant.Namespace)); err == nil {
				for i := range list.Items {
					if obj := &list.Items[i]; !seen[obj.Name] && obj.DeletionTimestamp == nil {
						seen[obj.Name] = true
						if err := do(c, obj); err != nil {
							errs = append(errs, err)
						}
					}
				}
			}
			select {
			case <-ctx.Done():
			case <-time.After(50 * time.Millisecond):
			}
		}
		done <- errs
	}()
	return func() []error { cancel(); return <-done }
}
