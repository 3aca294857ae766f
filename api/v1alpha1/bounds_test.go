package v1alpha1_test

import (
	"context"
	"fmt"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

// names are n distinct names of the given length, as a YAML flow list.
func names(n, length int) string {
	out := make([]string, n)
	for i := range out {
		s := fmt.Sprintf("n%d-", i)
		out[i] = s + strings.Repeat("x", length-len(s))
	}
	return "[" + strings.Join(out, ", ") + "]"
}

// labelMap is n distinct labels, as a YAML flow map.
func labelMap(n int) string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("k%d: v", i)
	}
	return "{" + strings.Join(out, ", ") + "}"
}

var _ = Describe("The bounds of what a tenant writes", func() {
	var ns string
	BeforeEach(func() {
		var err error
		ns, err = env.CreateNamespace(context.Background(), "bounds")
		Expect(err).NotTo(HaveOccurred())
	})

	quota := func(name, spec string) string {
		return fmt.Sprintf("apiVersion: checkpointquota.dev/v1alpha1\nkind: CheckpointQuota\nmetadata: {name: %s, namespace: %s}\nspec:\n%s", name, ns, spec)
	}

	It("stores a quota with every list at its bound", func() {
		expr := fmt.Sprintf("{key: %s, operator: In, values: %s}", strings.Repeat("k", 317), names(8, 63))
		exprs := "[" + strings.TrimSuffix(strings.Repeat(expr+", ", 4), ", ") + "]"
		spec := fmt.Sprintf("  target:\n    podNames: %s\n    containerNames: %s\n    podSelector:\n      matchLabels: %s\n      matchExpressions: %s\n",
			names(16, 253), names(8, 63), labelMap(8), exprs)
		_, stderr, err := env.Kubectl(quota("maximal", spec), "create", "-f", "-")
		Expect(err).NotTo(HaveOccurred(), stderr)
	})

	It("refuses a list or a string over its bound, naming the field and the bound", func() {
		for spec, want := range map[string]string{
			"  target: {podNames: " + names(17, 10) + "}":                                                          "spec.target.podNames: Too many: 17: must have at most 16 items",
			"  target: {podNames: [" + strings.Repeat("a", 254) + "]}":                                             "spec.target.podNames[0]: Too long: may not be more than 253 bytes",
			"  target: {containerNames: " + names(9, 10) + "}":                                                     "spec.target.containerNames: Too many: 9: must have at most 8 items",
			"  target: {containerNames: [" + strings.Repeat("a", 64) + "]}":                                        "spec.target.containerNames[0]: Too long: may not be more than 63 bytes",
			"  target: {podSelector: {matchLabels: " + labelMap(9) + "}}":                                          "spec.target.podSelector.matchLabels: Too many: 9: must have at most 8 items",
			"  target: {podSelector: {matchLabels: {app: " + strings.Repeat("v", 64) + "}}}":                       "spec.target.podSelector.matchLabels: Invalid value: a label key is at most 317 characters",
			"  target: {podSelector: {matchExpressions: [{key: app, operator: In, values: " + names(9, 5) + "}]}}": "spec.target.podSelector.matchExpressions[0].values: Too many: 9: must have at most 8 items",
			"  maxAge: " + strings.Repeat("1", 65) + "h":                                                           "spec.maxAge: Too long: may not be more than 64 bytes",
			"  orphans: {gracePeriod: " + strings.Repeat("1", 65) + "m}":                                           "spec.orphans.gracePeriod: Too long: may not be more than 64 bytes",
			"  limits: {perPod: {storage: \"" + strings.Repeat("1", 65) + "Gi\"}}":                                 `spec.limits.perPod.storage: Invalid value: "` + strings.Repeat("1", 65) + `Gi": a size is at most 64 characters: write a quantity such as "10Gi"`,
			"  remoteLimits: {maxAge: " + strings.Repeat("1", 65) + "h}":                                           "spec.remoteLimits.maxAge: Too long: may not be more than 64 bytes",
			"  remoteLimits: {perPod: {storage: \"" + strings.Repeat("1", 65) + "Gi\"}}":                           `spec.remoteLimits.perPod.storage: Invalid value: "` + strings.Repeat("1", 65) + `Gi": a size is at most 64 characters`,
			"  remoteLimits: {total: {checkpoints: -1}}":                                                           "spec.remoteLimits.total.checkpoints: Invalid value: -1: must be 0 or more",
		} {
			_, stderr, err := env.Kubectl(quota("over", spec+"\n"), "create", "-f", "-")
			Expect(err).To(HaveOccurred(), spec)
			Expect(stderr).To(ContainSubstring(`The CheckpointQuota "over" is invalid`), spec)
			Expect(stderr).To(ContainSubstring(want), spec)
		}
	})

	It("refuses a cluster quota's namespace selector over its bound", func() {
		manifest := fmt.Sprintf("apiVersion: checkpointquota.dev/v1alpha1\nkind: ClusterCheckpointQuota\nmetadata: {name: over-%s}\nspec:\n  namespaceSelector:\n    matchExpressions: [%s]\n",
			ns, strings.TrimSuffix(strings.Repeat("{key: team, operator: Exists}, ", 5), ", "))
		_, stderr, err := env.Kubectl(manifest, "create", "-f", "-")
		Expect(err).To(HaveOccurred())
		Expect(stderr).To(ContainSubstring("spec.namespaceSelector.matchExpressions: Too many: 5: must have at most 4 items"))
	})
})
