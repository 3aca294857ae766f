package controllers

import (
	"fmt"
	"runtime"
	"testing"

	"k8s.io/apimachinery/pkg/types"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	"github.com/checkpoint-quota/checkpoint-quota/test/builder"
)

// TestQuotasPrintKeepsLittle checks that the fingerprint a pass keeps of the quotas it read
// tells apart what it must (a quota added, gone, re-created or changed) and costs little:
// as the text of every name, UID and generation it kept 96 bytes per quota for 5,000
// quotas (it was grown to that), which fails here; as their digest, 32 bytes in all.
func TestQuotasPrintKeepsLittle(t *testing.T) {
	const n = 5000
	cqs := make([]*cqv1.CheckpointQuota, n)
	for i := range cqs {
		cqs[i] = builder.Quota("quota", fmt.Sprintf("tenant-%05d", i)).Total(5, "1Gi").Obj()
		cqs[i].UID, cqs[i].Generation = types.UID(fmt.Sprintf("00000000-0000-0000-0000-%012d", i)), 1
	}
	ccq := builder.ClusterQuota("all").PerNamespace(5, "1Gi").Obj()
	ccq.UID, ccq.Generation = "cluster-uid", 1
	ccqs := []*cqv1.ClusterCheckpointQuota{ccq}

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	fp := quotasPrint(cqs, ccqs)
	runtime.GC()
	runtime.ReadMemStats(&after)
	kept := (int64(after.HeapAlloc) - int64(before.HeapAlloc)) / n
	runtime.KeepAlive(fp)
	t.Logf("the fingerprint of %d quotas keeps %d bytes per quota (%d in all)", n, kept, len(fp))
	if kept > 1 {
		t.Errorf("the fingerprint of %d quotas keeps %d bytes per quota, want at most 1", n, kept)
	}

	// In this order: each change is to quotas that the ones before left in the lists.
	differs := []struct {
		name   string
		change func()
	}{
		{"a generation", func() { cqs[7].Generation = 2 }},
		{"a UID (re-created)", func() { cqs[7].UID = "other" }},
		{"a cluster quota's UID", func() { ccq.UID = "other" }},
		{"a name", func() { cqs[0].Name = "quota2" }},
		{"a quota gone", func() { cqs = cqs[1:] }},
		{"a quota moved to the cluster list", func() {
			ccqs = append(ccqs, &cqv1.ClusterCheckpointQuota{ObjectMeta: cqs[0].ObjectMeta})
			cqs = cqs[1:]
		}},
		{"the cluster quotas gone", func() { ccqs = nil }},
	}
	for _, d := range differs {
		name, change := d.name, d.change
		was := quotasPrint(cqs, ccqs)
		if again := quotasPrint(cqs, ccqs); again != was {
			t.Fatalf("%s: the same quotas fingerprint differently", name)
		}
		change()
		if quotasPrint(cqs, ccqs) == was {
			t.Errorf("%s: the fingerprint did not change", name)
		}
	}
}
