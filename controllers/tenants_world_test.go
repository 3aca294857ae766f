package controllers_test

import (
	"fmt"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	"github.com/checkpoint-quota/checkpoint-quota/test/builder"
	"github.com/checkpoint-quota/checkpoint-quota/webhooks"
)

// Maximal quotas: every list at its bound and every string at its longest, valid for the
// webhooks (docs/admission.md, "Bounds"). Each is distinct (seed), so that none conflicts
// with another and nothing is shared between them.

// padded is s followed by fill up to n characters.
func padded(s string, n int, fill byte) string {
	return s + strings.Repeat(string(fill), n-len(s))
}

// labelKeyOf is a label key of 317 characters: a 253-character DNS prefix, '/', a
// 63-character name.
func labelKeyOf(seed, i int) string {
	label := func(j int) string { return padded(fmt.Sprintf("k%d-%d-%d", seed, i, j), 63, 'k') }
	prefix := label(0) + "." + label(1) + "." + label(2) + "." + padded(fmt.Sprintf("k%d", i), 61, 'k')
	return prefix + "/" + padded(fmt.Sprintf("n%d-%d", seed, i), 63, 'n')
}

// labelValueOf is a label value of 63 characters.
func labelValueOf(seed, i, j int) string {
	return padded(fmt.Sprintf("v%d-%d-%d", seed, i, j), 63, 'v')
}

// maximalTarget names 16 pods of 253 characters and 8 containers of 63, and selects pods
// by 8 labels and 4 expressions of 8 values each.
func maximalTarget(seed int) *cqv1.QuotaTarget {
	t := &cqv1.QuotaTarget{PodSelector: maximalSelector(seed)}
	for i := range 16 {
		t.PodNames = append(t.PodNames, padded(fmt.Sprintf("pod-%d-%d-", seed, i), 253, 'p'))
	}
	for i := range 8 {
		t.ContainerNames = append(t.ContainerNames, padded(fmt.Sprintf("c-%d-%d-", seed, i), 63, 'c'))
	}
	return t
}

// maximalSelector has 8 labels and 4 expressions of 8 values, each key and value at its longest.
func maximalSelector(seed int) *cqv1.LabelSelector {
	s := &cqv1.LabelSelector{MatchLabels: map[string]string{}}
	for i := range 8 {
		s.MatchLabels[labelKeyOf(seed, i)] = labelValueOf(seed, i, 0)
	}
	for i := range 4 {
		r := cqv1.LabelSelectorRequirement{Key: labelKeyOf(seed, 8+i), Operator: metav1.LabelSelectorOpIn}
		for j := range 8 {
			r.Values = append(r.Values, labelValueOf(seed, 8+i, j))
		}
		s.MatchExpressions = append(s.MatchExpressions, r)
	}
	return s
}

// maximalQuota is a CheckpointQuota with every list at its bound.
func maximalQuota(name, namespace string, seed int) *cqv1.CheckpointQuota {
	q := builder.Quota(name, namespace).PerPod(20, "10Gi").PerContainer(5, "2Gi").Total(100, "50Gi").
		MaxCheckpointSize("1Gi").MaxAge("168h").Obj()
	q.Spec.Target = maximalTarget(seed)
	return q
}

// maximalClusterQuota is a ClusterCheckpointQuota with every list at its bound.
func maximalClusterQuota(name string, seed int) *cqv1.ClusterCheckpointQuota {
	q := builder.ClusterQuota(name).PerNamespace(50, "20Gi").PerPod(20, "10Gi").PerContainer(5, "2Gi").
		MaxCheckpointSize("1Gi").MaxAge("168h").Obj()
	q.Spec.NamespaceSelector = maximalSelector(seed)
	q.Spec.Target = maximalTarget(seed)
	return q
}

// The benchmark's maximal quotas pass the webhooks' validation, so that they measure what a
// tenant can really store.
func TestMaximalQuotasAreValid(t *testing.T) {
	if errs := webhooks.ValidateCheckpointQuota(maximalQuota("q", "shop", 1)); len(errs) > 0 {
		t.Errorf("maximal CheckpointQuota: %v", errs)
	}
	if errs := webhooks.ValidateClusterCheckpointQuota(maximalClusterQuota("c", 1)); len(errs) > 0 {
		t.Errorf("maximal ClusterCheckpointQuota: %v", errs)
	}
}
