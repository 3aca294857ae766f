package v1alpha1_test

import (
	"context"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	"github.com/checkpoint-quota/checkpoint-quota/test/builder"
)

var _ = Describe("The CRDs on a real kube-apiserver", func() {
	var (
		ctx context.Context
		ns  string
	)
	BeforeEach(func() {
		ctx = context.Background()
		var err error
		ns, err = env.CreateNamespace(ctx, "schema")
		Expect(err).NotTo(HaveOccurred())
	})

	It("stores one object of each kind and reads it back", func() {
		quota := builder.Quota("default", ns).PerContainer(10, "1Gi").PodNames("cache-0").MaxAge("168h").
			Orphans(cqv1.OrphanDelete, "10m").Enforcement(cqv1.EnforcementDryRun).Obj()
		Expect(env.Client.Create(ctx, quota)).To(Succeed())
		cluster := builder.ClusterQuota("default-"+ns).PerNamespace(50, "10Gi").MaxCheckpointSize("2Gi").Obj()
		Expect(env.Client.Create(ctx, cluster)).To(Succeed())
		DeferCleanup(env.Client.Delete, ctx, cluster)
		ckpt := builder.Checkpoint("node-1-cache-0-redis", ns).Pinned().Obj()
		Expect(env.Client.Create(ctx, ckpt)).To(Succeed())

		var gotQuota cqv1.CheckpointQuota
		Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(quota), &gotQuota)).To(Succeed())
		Expect(gotQuota.Spec).To(Equal(quota.Spec))
		var gotCluster cqv1.ClusterCheckpointQuota
		Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(cluster), &gotCluster)).To(Succeed())
		Expect(gotCluster.Spec).To(Equal(cluster.Spec))
		var gotCkpt cqv1.Checkpoint
		Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(ckpt), &gotCkpt)).To(Succeed())
		Expect(gotCkpt.Spec.Pinned).To(BeTrue())
	})

	It("keeps a malformed size for the webhook to explain, rather than failing on a schema pattern", func() {
		for _, size := range []string{"2GB", "500mb", "ten"} {
			q := builder.Quota("size-"+sanitize(size), ns).PerPod(-1, size).Obj()
			Expect(env.Client.Create(ctx, q)).To(Succeed(), "size %q", size)
		}
		_, stderr, err := env.Kubectl("apiVersion: checkpointquota.dev/v1alpha1\nkind: CheckpointQuota\nmetadata: {name: bare, namespace: "+ns+"}\nspec: {maxCheckpointSize: 10}\n", "apply", "-f", "-")
		Expect(err).NotTo(HaveOccurred(), stderr)
		var bare cqv1.CheckpointQuota
		Expect(env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "bare"}, &bare)).To(Succeed())
		Expect(*bare.Spec.MaxCheckpointSize).To(Equal(cqv1.Size("10")))
	})

	It("rejects unknown enum values with the supported ones", func() {
		manifest := `apiVersion: checkpointquota.dev/v1alpha1
kind: CheckpointQuota
metadata: {name: bad-enum, namespace: ` + ns + `}
spec:
  enforcement: Sometimes
  orphans: {policy: Forget}
`
		_, stderr, err := env.Kubectl(manifest, "apply", "-f", "-")
		Expect(err).To(HaveOccurred())
		Expect(stderr).To(ContainSubstring(`The CheckpointQuota "bad-enum" is invalid`))
		Expect(stderr).To(ContainSubstring(`spec.enforcement: Unsupported value: "Sometimes": supported values: "Enforce", "DryRun"`))
		Expect(stderr).To(ContainSubstring(`spec.orphans.policy: Unsupported value: "Forget": supported values: "Retain", "Delete"`))
	})

	It("rejects a negative count with a message that says what 0 and no value mean", func() {
		manifest := `apiVersion: checkpointquota.dev/v1alpha1
kind: ClusterCheckpointQuota
metadata: {name: bad-count-` + ns + `}
spec:
  limits:
    perNamespace: {checkpoints: -3}
`
		_, stderr, err := env.Kubectl(manifest, "apply", "-f", "-")
		Expect(err).To(HaveOccurred())
		Expect(stderr).To(ContainSubstring(`The ClusterCheckpointQuota "bad-count-` + ns + `" is invalid`))
		Expect(stderr).To(ContainSubstring(`spec.limits.perNamespace.checkpoints: Invalid value: -3: must be 0 or more: 0 prunes every unpinned archive; leave the field out for no limit`))
	})

	It("keeps spec.archive as the agent wrote it and lets only spec.pinned change", func() {
		ckpt := builder.Checkpoint("node-1-fixed", ns).Of("cache-0", "uid-1", "redis").On("node-1", "/var/lib/kubelet/checkpoints", "checkpoint-cache-0_"+ns+"-redis-2026-11-24T10:30:00Z.tar").
			Size(1024, "1Ki").At(metav1.Now()).Obj()
		Expect(env.Client.Create(ctx, ckpt)).To(Succeed())

		for patch, wantErr := range map[string]string{
			`{"spec":{"archive":{"sizeBytes":1}}}`: "spec.archive: Invalid value: spec.archive is written by the node agent from the archive on the node and cannot change; only spec.pinned can",
			`{"spec":{"archive":null}}`:            "spec: Invalid value: spec.archive is written by the node agent and cannot be removed; only spec.pinned can change",
			`{"spec":{"pinned":true}}`:             "",
		} {
			out, stderr, err := env.Kubectl("", "patch", "checkpoint", ckpt.Name, "-n", ns, "--type", "merge", "-p", patch)
			if wantErr == "" {
				Expect(err).NotTo(HaveOccurred(), patch+": "+stderr)
				continue
			}
			Expect(err).To(HaveOccurred(), patch+": "+out)
			Expect(stderr).To(ContainSubstring(wantErr), patch)
		}
		Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(ckpt), ckpt)).To(Succeed())
		Expect(ckpt.Spec.Pinned).To(BeTrue())
		Expect(ckpt.Spec.Archive.SizeBytes).To(Equal(int64(1024)))
	})

	It("shows the printer columns in kubectl get", func() {
		quota := builder.Quota("shown", ns).Total(50, "10Gi").Enforcement(cqv1.EnforcementEnforce).Obj()
		Expect(env.Client.Create(ctx, quota)).To(Succeed())
		quota.Status.Summary = cqv1.UsageSummary{Checkpoints: "12/50", Storage: "1200Mi/10Gi"}
		quota.Status.Conditions = []metav1.Condition{{Type: cqv1.ConditionReady, Status: metav1.ConditionTrue,
			Reason: cqv1.ReasonUsageComputed, Message: "computed", LastTransitionTime: metav1.Now()}}
		Expect(env.Client.Status().Update(ctx, quota)).To(Succeed())

		taken := metav1.NewTime(time.Now().Add(-3 * time.Hour))
		ckpt := builder.Checkpoint("node-1-shown", ns).Of("cache-0", "uid-1", "redis").On("node-1", "/var/lib/kubelet/checkpoints", "checkpoint-cache-0_"+ns+"-redis-2026-11-24T10:30:00Z.tar").
			Size(1288490189, "1.2Gi").At(taken).Obj()
		Expect(env.Client.Create(ctx, ckpt)).To(Succeed())
		ckpt.Status.Pinned = true
		Expect(env.Client.Status().Update(ctx, ckpt)).To(Succeed())

		out, stderr, err := env.Kubectl("", "get", "checkpointquotas,clustercheckpointquotas,checkpoints", "-A")
		Expect(err).NotTo(HaveOccurred(), stderr)
		GinkgoWriter.Println(out)
		Expect(out).To(MatchRegexp(`NAMESPACE\s+NAME\s+CHECKPOINTS\s+STORAGE\s+STORED\s+ENFORCEMENT\s+READY\s+AGE`))
		Expect(out).To(MatchRegexp(ns + `\s+checkpointquota.checkpointquota.dev/shown\s+12/50\s+1200Mi/10Gi\s+Enforce\s+True\s+\d+s`))
		Expect(out).To(MatchRegexp(`NAMESPACE\s+NAME\s+POD\s+CONTAINER\s+NODE\s+SIZE\s+PINNED\s+STORED-IN\s+ORPHAN-OF\s+AGE`))
		Expect(out).To(MatchRegexp(ns + `\s+checkpoint.checkpointquota.dev/node-1-shown\s+cache-0\s+redis\s+node-1\s+1.2Gi\s+true\s+3h`))

		out, stderr, err = env.Kubectl("", "get", "cpq,ckpt", "-n", ns)
		Expect(err).NotTo(HaveOccurred(), stderr)
		Expect(out).To(ContainSubstring("checkpointquota.checkpointquota.dev/shown"))
		Expect(out).To(ContainSubstring("checkpoint.checkpointquota.dev/node-1-shown"))
	})
})

func sanitize(s string) string {
	out := []byte{}
	for _, c := range []byte(s) {
		if c >= 'a' && c <= 'z' || c >= '0' && c <= '9' {
			out = append(out, c)
		} else if c >= 'A' && c <= 'Z' {
			out = append(out, c+'a'-'A')
		}
	}
	return string(out)
}
