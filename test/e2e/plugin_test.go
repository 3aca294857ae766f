package e2e

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/checkpoint-quota/checkpoint-quota/test/archive"
	"github.com/checkpoint-quota/checkpoint-quota/test/testenv"
)

// The kubectl plugin, built and run as kubectl runs it (kubectl checkpoint-quota ... execs
// kubectl-checkpoint_quota with the same flags), against the real manager and agent.
var _ = Describe("kubectl checkpoint-quota", func() {
	var plugin string
	BeforeEach(func(ctx SpecContext) {
		plugin = filepath.Join(GinkgoT().TempDir(), "kubectl-checkpoint_quota")
		cmd := exec.CommandContext(ctx, "go", "build", "-o", plugin, "./cmd/kubectl-checkpoint_quota")
		cmd.Dir = testenv.RepoRoot()
		out, err := cmd.CombinedOutput()
		Expect(err).NotTo(HaveOccurred(), string(out))
	})
	run := func(stdin string, args ...string) (string, string) {
		GinkgoHelper()
		cmd := exec.Command(plugin, append([]string{"--kubeconfig", env.Kubeconfig}, args...)...)
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr, cmd.Stdin = &out, &errOut, strings.NewReader(stdin)
		Expect(cmd.Run()).To(Succeed(), errOut.String())
		return out.String(), errOut.String()
	}

	It("prints status, nodes and explain from what the manager and agent published", func(ctx context.Context) {
		ns, err := env.CreateNamespace(ctx, "plugin")
		Expect(err).NotTo(HaveOccurred())
		uid := createPod(ctx, ns, "cache-0", "redis")
		_, stderr, err := env.Kubectl("apiVersion: checkpointquota.dev/v1alpha1\nkind: CheckpointQuota\nmetadata: {name: preview, namespace: "+ns+"}\n"+
			"spec: {enforcement: DryRun, limits: {perContainer: {checkpoints: 2}}}\n", "apply", "-f", "-")
		Expect(err).NotTo(HaveOccurred(), stderr)
		base := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
		var files []string
		for i := range 3 {
			files = append(files, filepath.Base(archive.New(ns, "cache-0", "redis").WithUID(uid).WithSize(1<<20).At(base.Add(time.Duration(i)*time.Minute)).MustWrite(ckptDir)))
		}
		Eventually(func() string {
			out, _ := run("", "status", "-n", ns)
			return out
		}, 60*time.Second, time.Second).Should(SatisfyAll(
			ContainSubstring("CheckpointQuota "+ns+"/preview (DryRun)"),
			MatchRegexp(`(?m)^\s+LIMIT\s+USED\s+HARD\s+NEAREST\s+POLICY$`),
			MatchRegexp(`(?m)^\s+perContainer\.checkpoints\s+3\s+2\s+`+ns+`/cache-0/redis\s+in force$`),
			ContainSubstring("OverQuota: DryRun: Enforce would prune 1"),
		))
		// -A shows the quota from any namespace; -o json is a List.
		out, _ := run("", "status", "-A", "-o", "json")
		Expect(out).To(SatisfyAll(ContainSubstring(`"kind": "List"`), ContainSubstring(`"name": "preview"`)))

		By("nodes")
		out, _ = run("", "nodes")
		Expect(out).To(MatchRegexp(`(?m)^NODE\s+ARCHIVES\s+BYTES\s+UNREADABLE\s+PINNED\s+ORPHANS\s+FS-FREE\s+FS-FREE%$`))
		// The free space comes from the agent's CheckpointNode.
		Expect(out).To(MatchRegexp(`(?m)^` + nodeName + `\s+\d+\s+\S+\s+\d+\s+\d+\s+\d+\s+\d[\d.]*[KMGTPE]i\s+\d+%$`))
		out, _ = run("", "nodes", "-o", "yaml")
		Expect(out).To(ContainSubstring("node: " + nodeName))

		By("explain of the oldest archive, which Enforce would prune, and of the newest, which stays")
		oldest, newest := checkpointName(ctx, Default, ns, files[0]), checkpointName(ctx, Default, ns, files[2])
		out, _ = run("", "explain", oldest, "-n", ns)
		Expect(out).To(SatisfyAll(
			ContainSubstring("archive    "+ns+"/cache-0/redis on node "+nodeName+", 1Mi"),
			MatchRegexp(`perContainer\.checkpoints\s+2 from CheckpointQuota `+ns+`/preview: 3 of 3 newest in `+ns+`/cache-0/redis, 3 of 2 used`),
			ContainSubstring("kept: CheckpointQuota "+ns+"/preview is DryRun; under Enforce it would prune this archive: perContainer.checkpoints 3/2"),
		))
		out, _ = run("", "explain", newest, "-n", ns)
		Expect(out).To(SatisfyAll(
			ContainSubstring(": 1 of 3 newest in "+ns+"/cache-0/redis"),
			ContainSubstring("kept: every limit above holds with it"),
		))
	})

	It("explains an archive held because its pod went before a quota selecting pods by label could see it", func(ctx context.Context) {
		ns, err := env.CreateNamespace(ctx, "held")
		Expect(err).NotTo(HaveOccurred())
		_, stderr, err := env.Kubectl("apiVersion: checkpointquota.dev/v1alpha1\nkind: CheckpointQuota\nmetadata: {name: db, namespace: "+ns+"}\n"+
			"spec: {target: {podSelector: {matchLabels: {app: db}}}, limits: {perContainer: {checkpoints: 5}}}\n---\n"+
			"apiVersion: checkpointquota.dev/v1alpha1\nkind: CheckpointQuota\nmetadata: {name: default, namespace: "+ns+"}\n"+
			"spec: {limits: {perContainer: {checkpoints: 1}}}\n", "apply", "-f", "-")
		Expect(err).NotTo(HaveOccurred(), stderr)
		base := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
		var files []string
		for i := range 2 {
			files = append(files, filepath.Base(archive.New(ns, "db-0", "pg").WithUID("0b3c6d9e-1f2a-4b5c-8d7e-00000000dead").
				At(base.Add(time.Duration(i)*time.Minute)).MustWrite(ckptDir)))
		}
		Eventually(func() string {
			out, _ := run("", "status", "-n", ns)
			return out
		}, 60*time.Second, time.Second).Should(ContainSubstring("OverQuota: perContainer.checkpoints of " + ns + "/db-0/pg stays at 2/1"))
		out, _ := run("", "explain", checkpointName(ctx, Default, ns, files[0]), "-n", ns)
		Expect(out).To(ContainSubstring("kept: held, since their pods are gone and a quota that selects pods by label might govern them"))
		Expect(checkpointName(ctx, Default, ns, files[1])).NotTo(BeEmpty())
	})

	It("converts a CheckpointRestoreOperator into quotas the webhooks admit, with warnings", func() {
		ns, err := env.CreateNamespace(context.Background(), "convert")
		Expect(err).NotTo(HaveOccurred())
		cr := `apiVersion: criu.org/v1
kind: CheckpointRestoreOperator
metadata: {name: migrated}
spec:
  applyPoliciesImmediately: false
  containerPolicies:
  - {namespace: ` + ns + `, pod: cache-0, container: redis, maxCheckpoints: 4, maxTotalSize: 16}
  podPolicies:
  - {namespace: ` + ns + `, pod: web-0, maxCheckpoints: 6, maxCheckpointSize: 10}
  namespacePolicies:
  - {namespace: ` + ns + `, maxCheckpoints: 20, retainOrphan: false}
`
		out, warnings := run(cr, "convert", "-f", "-")
		Expect(warnings).To(SatisfyAll(
			ContainSubstring("Warning: spec.applyPoliciesImmediately: quotas always apply at once"),
			ContainSubstring("Warning: spec.podPolicies[0].maxCheckpointSize: 10 became 10Mi"),
			ContainSubstring("Warning: spec.namespacePolicies[0].retainOrphan: false became orphans.policy: Delete"),
		))
		applied, stderr, err := env.Kubectl(out, "apply", "-f", "-")
		Expect(err).NotTo(HaveOccurred(), stderr)
		Expect(applied).To(SatisfyAll(
			ContainSubstring("checkpointquota.checkpointquota.dev/migrated created"),
			ContainSubstring("checkpointquota.checkpointquota.dev/migrated-pod-web-0 created"),
			ContainSubstring("checkpointquota.checkpointquota.dev/migrated-container-cache-0-redis created"),
		))
		applied, stderr, err = env.Kubectl(out, "apply", "-f", "-")
		Expect(err).NotTo(HaveOccurred(), stderr)
		Expect(strings.Count(applied, " unchanged")).To(Equal(3), applied)
	})
})
