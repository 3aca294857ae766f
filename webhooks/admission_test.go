package webhooks_test

import (
	"context"
	"fmt"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
)

// badManifest is a manifest that kubectl apply must reject, with what stderr must say:
// the field path and a hint on how to fix it, for each problem.
type badManifest struct {
	cluster bool
	spec    string
	// want holds "path: ... hint" pairs; each must appear in stderr, path and hint both.
	want [][2]string
}

var _ = Describe("kubectl apply of a bad manifest", func() {
	DescribeTable("is rejected with the field path and a hint",
		func(bad badManifest) {
			ctx := context.Background()
			var manifest, header string
			var obj client.Object
			name := "bad"
			if bad.cluster {
				name = fmt.Sprintf("bad-%d", GinkgoParallelProcess())
				manifest = clusterQuotaYAML(name, bad.spec)
				header = fmt.Sprintf(`The ClusterCheckpointQuota %q is invalid:`, name)
				obj = &cqv1.ClusterCheckpointQuota{}
				obj.SetName(name)
			} else {
				ns := newNamespace()
				manifest = quotaYAML(name, ns, bad.spec)
				header = fmt.Sprintf(`The CheckpointQuota %q is invalid:`, name)
				obj = &cqv1.CheckpointQuota{}
				obj.SetName(name)
				obj.SetNamespace(ns)
			}
			_, stderr, err := apply(manifest)
			GinkgoWriter.Println(stderr)
			Expect(err).To(HaveOccurred(), "kubectl apply accepted:\n%s", manifest)
			Expect(stderr).To(ContainSubstring(header))
			for _, w := range bad.want {
				Expect(stderr).To(ContainSubstring(w[0]), "the path")
				Expect(stderr).To(ContainSubstring(w[1]), "the hint")
			}
			if len(bad.want) > 1 {
				for _, w := range bad.want {
					Expect(stderr).To(ContainSubstring("* "+w[0]), "one bullet per problem")
				}
			}
			err = env.Client.Get(ctx, client.ObjectKeyFromObject(obj), obj)
			Expect(apierrors.IsNotFound(err)).To(BeTrue(), "the object must not exist: %v", err)
		},
		Entry("2GB", badManifest{spec: "limits:\n  perPod: {storage: 2GB}",
			want: [][2]string{{`spec.limits.perPod.storage: Invalid value: "2GB"`, `did you mean "2Gi"?`}}}),
		Entry("500mb", badManifest{spec: "limits:\n  total: {storage: 500mb}",
			want: [][2]string{{`spec.limits.total.storage: Invalid value: "500mb"`, `did you mean "500Mi"?`}}}),
		Entry("1.5.Gi", badManifest{spec: "limits:\n  perContainer: {storage: 1.5.Gi}",
			want: [][2]string{{`spec.limits.perContainer.storage: Invalid value: "1.5.Gi"`, `write a number and a unit, such as "10Gi"`}}}),
		Entry("ten as a size", badManifest{spec: "maxCheckpointSize: ten",
			want: [][2]string{{`spec.maxCheckpointSize: Invalid value: "ten"`, `such as "10Gi", "500Mi" or "2G"`}}}),
		Entry("fractional bytes", badManifest{spec: "limits:\n  perPod: {storage: 500m}",
			want: [][2]string{{`spec.limits.perPod.storage: Invalid value: "500m"`, `a fraction of a byte ("m" means milli, a thousandth): sizes are whole bytes; write "500Mi"`}}}),
		Entry("negative size", badManifest{spec: "limits:\n  total: {storage: -1Gi}",
			want: [][2]string{{`spec.limits.total.storage: Invalid value: "-1Gi"`, `must not be negative`}}}),
		Entry("bare number for a size", badManifest{spec: "maxCheckpointSize: 10",
			want: [][2]string{{`spec.maxCheckpointSize: Invalid value: "10"`, `the original operator read a bare number as MB: write "10Mi"`}}}),
		Entry("fractional count", badManifest{spec: "limits:\n  total: {checkpoints: 1.5}",
			want: [][2]string{{`spec.limits.total.checkpoints`, `must be of type integer`}}}),
		Entry("count as a word", badManifest{spec: "limits:\n  perPod: {checkpoints: ten}",
			want: [][2]string{{`spec.limits.perPod.checkpoints`, `must be of type integer`}}}),
		Entry("negative count", badManifest{spec: "limits:\n  perContainer: {checkpoints: -3}",
			want: [][2]string{{`spec.limits.perContainer.checkpoints`, `must be 0 or more: 0 prunes every unpinned archive; leave the field out for no limit`}}}),
		Entry("7d", badManifest{spec: "maxAge: 7d",
			want: [][2]string{{`spec.maxAge: Invalid value: "7d"`, `Go durations have no days or weeks; write "168h"`}}}),
		Entry("-1h", badManifest{spec: "maxAge: -1h",
			want: [][2]string{{`spec.maxAge: Invalid value: "-1h"`, `must be more than 0: write a duration such as "168h"`}}}),
		Entry("0s", badManifest{spec: "maxAge: 0s",
			want: [][2]string{{`spec.maxAge: Invalid value: "0s"`, `or leave the field out for no age limit`}}}),
		Entry("negative grace period", badManifest{spec: "orphans: {policy: Delete, gracePeriod: -5m}",
			want: [][2]string{{`spec.orphans.gracePeriod: Invalid value: "-5m"`, `must not be negative: write a duration such as "10m"`}}}),
		Entry("unknown enforcement", badManifest{spec: "enforcement: Audit",
			want: [][2]string{{`spec.enforcement: Unsupported value: "Audit"`, `supported values: "Enforce", "DryRun"`}}}),
		Entry("unknown orphan policy", badManifest{spec: "orphans: {policy: Keep}",
			want: [][2]string{{`spec.orphans.policy: Unsupported value: "Keep"`, `supported values: "Retain", "Delete"`}}}),
		Entry("empty podNames", badManifest{spec: "target: {podNames: []}\nlimits:\n  perPod: {checkpoints: 3}",
			want: [][2]string{{`spec.target.podNames: Invalid value: []`, `name at least one pod, or leave the field out`}}}),
		Entry("empty containerNames", badManifest{spec: "target: {containerNames: []}",
			want: [][2]string{{`spec.target.containerNames: Invalid value: []`, `name at least one, or leave the field out`}}}),
		Entry("bad pod name", badManifest{spec: "target: {podNames: [cache-0, Cache_1]}",
			want: [][2]string{{`spec.target.podNames[1]: Invalid value: "Cache_1"`, `not a valid pod name: use lower-case letters`}}}),
		Entry("bad label selector", badManifest{spec: "target:\n  podSelector:\n    matchExpressions: [{key: app, operator: In}]",
			want: [][2]string{{`spec.target.podSelector.matchExpressions[0].values: Required value`, "must be specified when `operator` is 'In' or 'NotIn'"}}}),
		Entry("storage 0 contradicts a count", badManifest{spec: "limits:\n  perPod: {checkpoints: 5, storage: 0}",
			want: [][2]string{
				{`spec.limits.perPod.storage: Invalid value: "0"`, `keeps no archive (every archive has bytes), which contradicts checkpoints: 5`},
				{`spec.limits.perPod.checkpoints: Invalid value: 5`, `contradicts storage: 0, which keeps no archive`},
			}}),
		Entry("maxCheckpointSize 0 contradicts a count", badManifest{spec: "maxCheckpointSize: 0\nlimits:\n  total: {checkpoints: 5}",
			want: [][2]string{
				{`spec.maxCheckpointSize: Invalid value: "0"`, `prunes every archive, which contradicts spec.limits.total.checkpoints: 5`},
				{`spec.limits.total.checkpoints: Invalid value: 5`, `contradicts maxCheckpointSize: 0`},
			}}),
		Entry("several problems, one bullet each", badManifest{spec: "maxAge: 7d\nlimits:\n  perPod: {storage: 2GB}\n  perContainer: {storage: 10}",
			want: [][2]string{
				{`spec.limits.perPod.storage: Invalid value: "2GB"`, `did you mean "2Gi"?`},
				{`spec.limits.perContainer.storage: Invalid value: "10"`, `write "10Mi"`},
				{`spec.maxAge: Invalid value: "7d"`, `write "168h"`},
			}}),
		Entry("a pod name instead of a list", badManifest{spec: "target: {podNames: cache-0}",
			want: [][2]string{{`spec.target.podNames`, `must be of type array`}}}),
		Entry("a number for a duration", badManifest{spec: "maxAge: 7",
			want: [][2]string{{`spec.maxAge`, `must be of type string`}}}),
		Entry("cluster quota: 2GB per namespace", badManifest{cluster: true, spec: "limits:\n  perNamespace: {storage: 2GB}",
			want: [][2]string{{`spec.limits.perNamespace.storage: Invalid value: "2GB"`, `did you mean "2Gi"?`}}}),
		Entry("cluster quota: bad namespace selector", badManifest{cluster: true, spec: "namespaceSelector:\n  matchExpressions: [{key: team, operator: Is}]",
			want: [][2]string{{`spec.namespaceSelector.matchExpressions[0].operator: Invalid value: "Is"`, `not a valid selector operator: use In, NotIn, Exists or DoesNotExist`}}}),
	)
})
