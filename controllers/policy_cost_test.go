package controllers_test

import (
	"runtime"
	"testing"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	"github.com/checkpoint-quota/checkpoint-quota/internal/policy"
)

// maxParsedQuotaBytes bounds what the parsed policy of one maximal CheckpointQuota keeps
// (its limits, its packed target and its twin for the stored archives), the quota's
// object aside. At ab228df it measured 2,062 bytes, when each limit kept its unit family
// as a string (48 bytes a limit, 32 now); then 1,927 (docs/admission.md, "Cost at scale").
const maxParsedQuotaBytes = 2000

// TestParsedQuotaCost parses maximal quotas as the manager's cache does and measures the
// heap their policies keep.
func TestParsedQuotaCost(t *testing.T) {
	const n = 5000
	objs := make([]*cqv1.CheckpointQuota, n)
	for i := range objs {
		objs[i] = maximalQuota("maximal", tenantNamespace(i), i)
	}
	kept := make([]*policy.Quota, n)
	per := heapKeptPer(n, func() {
		for i, obj := range objs {
			var err error
			if kept[i], err = policy.FromCheckpointQuota(obj); err != nil {
				t.Fatal(err)
			}
		}
	})
	runtime.KeepAlive(objs)
	runtime.KeepAlive(kept)
	t.Logf("the policy of a maximal CheckpointQuota keeps %d bytes", per)
	if per > maxParsedQuotaBytes {
		t.Errorf("the policy of a maximal CheckpointQuota keeps %d bytes, more than %d", per, maxParsedQuotaBytes)
	}
}

// maxReportsBytes bounds what a view keeps of a maximal quota's effective policy: a report
// per limit. At ab228df its eight reports measured 248 bytes, when each kept its state as
// a string (32 bytes a report, 24 now); then 176 (docs/admission.md, "Cost at scale").
const maxReportsBytes = 216

// TestLimitReportsCost measures the reports of the effective policy that a pass keeps in
// the view of each maximal quota.
func TestLimitReportsCost(t *testing.T) {
	const n = 5000
	quotas := make([]*policy.Quota, n)
	for i := range quotas {
		var err error
		if quotas[i], err = policy.FromCheckpointQuota(maximalQuota("maximal", tenantNamespace(i), i)); err != nil {
			t.Fatal(err)
		}
	}
	kept := make([][]policy.LimitReport, n)
	per := heapKeptPer(n, func() {
		for i, q := range quotas {
			kept[i] = policy.Effective(q, nil)
		}
	})
	runtime.KeepAlive(quotas)
	runtime.KeepAlive(kept)
	t.Logf("the %d reports of a maximal quota's effective policy keep %d bytes", len(kept[0]), per)
	if per > maxReportsBytes {
		t.Errorf("the reports of a maximal quota's effective policy keep %d bytes, more than %d", per, maxReportsBytes)
	}
}

// heapKeptPer is the heap that build keeps, per one of its n things: the heap in use after
// a collection, after build less before. What build makes must be kept reachable by the
// caller until then.
func heapKeptPer(n int, build func()) int64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	build()
	runtime.GC()
	runtime.ReadMemStats(&after)
	return (int64(after.HeapAlloc) - int64(before.HeapAlloc)) / int64(n)
}
