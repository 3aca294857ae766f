package controllers_test

import (
	"encoding/json"
	"fmt"
	"runtime"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/cache"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	"github.com/checkpoint-quota/checkpoint-quota/controllers"
	"github.com/checkpoint-quota/checkpoint-quota/internal/policy"
	"github.com/checkpoint-quota/checkpoint-quota/test/testenv"
)

// maxCachedQuotaBytes bounds what the manager's cache and the parsed policies hold for one
// maximal CheckpointQuota with its status (issue 29: 5,000 of them in under 64 MiB of RSS
// for the whole manager). On main at f464d5e this test measured 11.3 KB, at 4ce4253 5.7 KB,
// now 4.0 KB; docs/admission.md, "Cost at scale", says what took it down.
const maxCachedQuotaBytes = 4352

// TestCachedQuotaCost decodes maximal quotas as the manager's informer does, passes them
// through the cache's transform (controllers.CacheOptions) and measures the heap they
// keep, with their parsed policies.
func TestCachedQuotaCost(t *testing.T) {
	const n = 500
	policies := policy.NewParsed()
	transform := quotaTransform(t, controllers.CacheOptions(policies))
	decoder := serializer.NewCodecFactory(testenv.Scheme).UniversalDeserializer()
	raws := make([][]byte, n)
	for i := range raws {
		q := maximalQuota("maximal", tenantNamespace(i), i)
		q.UID, q.Generation, q.ResourceVersion = types.UID(fmt.Sprintf("00000000-0000-0000-0000-%012d", i)), 1, fmt.Sprint(1000+i)
		q.CreationTimestamp = metav1.NewTime(time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC))
		q.Status = writtenStatus()
		var err error
		if raws[i], err = json.Marshal(q); err != nil {
			t.Fatal(err)
		}
	}
	kept := make([]any, n)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i, raw := range raws {
		obj := &cqv1.CheckpointQuota{}
		if _, _, err := decoder.Decode(raw, nil, obj); err != nil {
			t.Fatal(err)
		}
		var err error
		if kept[i], err = transform(obj); err != nil {
			t.Fatal(err)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	per := (int64(after.HeapAlloc) - int64(before.HeapAlloc)) / n
	runtime.KeepAlive(kept)
	runtime.KeepAlive(policies)
	t.Logf("a maximal CheckpointQuota (%d bytes as JSON) costs the cache and its policy %d bytes", len(raws[0]), per)
	if per > maxCachedQuotaBytes {
		t.Errorf("a maximal CheckpointQuota costs the cache and its policy %d bytes, more than %d", per, maxCachedQuotaBytes)
	}
}

// quotaTransform is the cache's transform of CheckpointQuotas in o.
func quotaTransform(t *testing.T, o cache.Options) func(any) (any, error) {
	for obj, by := range o.ByObject {
		if _, ok := obj.(*cqv1.CheckpointQuota); ok {
			return by.Transform
		}
	}
	t.Fatal("the cache options have no transform for CheckpointQuotas")
	return nil
}

// writtenStatus is a status as the manager writes it for a maximal quota without
// archives.
func writtenStatus() cqv1.QuotaStatus {
	at := metav1.NewTime(time.Date(2026, 12, 7, 0, 0, 1, 0, time.UTC))
	st := cqv1.QuotaStatus{
		ObservedGeneration: 1,
		Summary:            cqv1.UsageSummary{Checkpoints: "0/5", Storage: "0/1Gi"},
		Hard:               map[string]resource.Quantity{},
		Used:               map[string]resource.Quantity{},
		UsageTable:         []string{"LIMIT                      USED  HARD   NEAREST  STATE"},
		Pruned:             cqv1.PrunedStatus{Storage: resource.MustParse("0")},
		Conditions: []metav1.Condition{
			{Type: cqv1.ConditionReady, Status: metav1.ConditionTrue, Reason: cqv1.ReasonUsageComputed, Message: "Usage is computed from every Checkpoint the quota governs", ObservedGeneration: 1, LastTransitionTime: at},
			{Type: cqv1.ConditionOverQuota, Status: metav1.ConditionFalse, Reason: cqv1.ReasonWithinLimits, Message: "Every limit holds", ObservedGeneration: 1, LastTransitionTime: at},
			{Type: cqv1.ConditionConflict, Status: metav1.ConditionFalse, Reason: cqv1.ReasonNoConflict, Message: "No other quota of the same specificity sets the same limits for the same archives", ObservedGeneration: 1, LastTransitionTime: at},
		},
	}
	for name, hard := range map[string]string{"total.checkpoints": "100", "total.storage": "50Gi", "perPod.checkpoints": "20",
		"perPod.storage": "10Gi", "perContainer.checkpoints": "5", "perContainer.storage": "2Gi", "maxCheckpointSize": "1Gi"} {
		st.Hard[name], st.Used[name] = resource.MustParse(hard), resource.MustParse("0")
		st.EffectivePolicy = append(st.EffectivePolicy, cqv1.EffectiveLimit{Limit: name, Value: hard, State: cqv1.LimitInForce})
		st.UsageTable = append(st.UsageTable, fmt.Sprintf("%-26s 0     %-6s -        in force", name, hard))
	}
	return st
}
