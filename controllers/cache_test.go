package controllers

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	"github.com/checkpoint-quota/checkpoint-quota/internal/policy"
	"github.com/checkpoint-quota/checkpoint-quota/internal/quota"
	"github.com/checkpoint-quota/checkpoint-quota/test/builder"
)

// TestSlimCheckpointKeepsWhatThePassReads checks that the manager's cache keeps of a
// Checkpoint everything its decisions read: the archive the arithmetic sees, the
// identity a conditional delete needs, the finalizers of older agents and the directory of
// the node rules.
func TestSlimCheckpointKeepsWhatThePassReads(t *testing.T) {
	at := metav1.NewTime(time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC))
	full := builder.Checkpoint("c-1", "shop").Of("web-0", "uid-web", "app").On("node-a", "/var/lib/kubelet/checkpoints", "checkpoint-web-0_shop-app-2026-01-01T12:00:00Z.tar").
		Size(3<<20, "3Mi").At(at).Pinned().Obj()
	full.UID, full.ResourceVersion, full.Finalizers = "uid-c-1", "42", []string{cqv1.LegacyFinalizerArchive}
	full.Spec.Archive.Image, full.Spec.Archive.Runtime = "registry.example/web:1", "cri-o"
	full.ManagedFields = []metav1.ManagedFieldsEntry{{Manager: "node-agent"}}
	full.Annotations = map[string]string{"note": "x"}
	orphan := builder.Checkpoint("c-2", "checkpoint-quota-system").Of("web-1", "uid-web-1", "app").On("node-a", "/d", "f").OrphanOf("shop").Obj()

	for name, c := range map[string]*cqv1.Checkpoint{"pinned": full, "orphan": orphan} {
		t.Run(name, func(t *testing.T) {
			want, _ := quota.ArchiveOf(c)
			// What prune, publish and the node rules read of a liveCheckpoint.
			used := func(l liveCheckpoint) []any {
				a := l.Spec.Archive
				return []any{l.Key(), l.UID, l.ResourceVersion, l.PodNamespace(), a.Directory, a.PodName, a.PodUID, a.SizeBytes}
			}
			wantLive, wantMeta := used(liveOf(c)), []any{c.Finalizers, c.DeletionTimestamp, c.Status}
			out, err := slimCheckpoint(c.DeepCopy())
			if err != nil {
				t.Fatal(err)
			}
			s := out.(*cqv1.Checkpoint)
			got, _ := quota.ArchiveOf(s)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("archive (-full +slim):\n%s", diff)
			}
			if diff := cmp.Diff(wantLive, used(liveOf(s))); diff != "" {
				t.Errorf("what a pass keeps (-full +slim):\n%s", diff)
			}
			if diff := cmp.Diff(wantMeta, []any{s.Finalizers, s.DeletionTimestamp, s.Status}); diff != "" {
				t.Errorf("finalizers, deletion and status (-full +slim):\n%s", diff)
			}
			if s.ManagedFields != nil || s.Labels != nil || s.Annotations != nil || s.Spec.Archive.Image != "" || s.Spec.Archive.FileName != "" {
				t.Errorf("kept what no decision reads: %+v", s)
			}
		})
	}
}

// TestSlimQuotaKeepsNamesCompact checks that the cache keeps a quota's long names as
// digests that target the same pods, and a quota that does not parse as written, so that
// its status still says why.
func TestSlimQuotaKeepsNamesCompact(t *testing.T) {
	long := "cache-" + strings.Repeat("0", 200)
	written := builder.Quota("q", "shop").PerPod(1, "").PodNames(long).PodSelector(map[string]string{"app.kubernetes.io/instance": strings.Repeat("v", 63)}).Obj()
	written.Annotations = map[string]string{"kubectl.kubernetes.io/last-applied-configuration": "{}"}
	written.Status = cqv1.QuotaStatus{
		Hard:            map[string]resource.Quantity{"perPod.checkpoints": resource.MustParse("1")},
		Used:            map[string]resource.Quantity{"perPod.checkpoints": resource.MustParse("0")},
		UsageTable:      []string{"LIMIT  USED", "perPod.checkpoints  0"},
		EffectivePolicy: []cqv1.EffectiveLimit{{Limit: "perPod.checkpoints", Value: "1", State: cqv1.LimitCapped, CappedBy: "ClusterCheckpointQuota c", CappedAt: "1"}},
		Conditions:      []metav1.Condition{{Type: "Ready", Status: metav1.ConditionTrue, Reason: "UsageComputed", Message: "m"}},
	}
	obj, err := slimQuotaInto(nil, written.DeepCopy())
	if err != nil {
		t.Fatal(err)
	}
	cached := obj.(*cqv1.CheckpointQuota)
	if len(cached.Annotations) != 0 || cached.Spec.Target.PodNames[0] == long || len(cached.Spec.Target.PodNames[0]) > 24 {
		t.Errorf("cached: annotations %v, pod name %q: want none, and the name as a digest", cached.Annotations, cached.Spec.Target.PodNames[0])
	}
	wantStatus := cqv1.QuotaStatus{Summary: cqv1.UsageSummary{Checkpoints: digestMark + statusDigest(&written.Status)},
		Conditions: []metav1.Condition{{Type: "Ready", Status: metav1.ConditionTrue, Reason: "UsageComputed"}}}
	if diff := cmp.Diff(wantStatus, cached.Status); diff != "" {
		t.Errorf("the cached status keeps more or less than is read back (-want +cached):\n%s", diff)
	}
	if got, want := storedStatusDigest(&cached.Status), statusDigest(&written.Status); got != want {
		t.Errorf("the cached status's digest is %q, want %q, the written status's", got, want)
	}
	// The informer passes a watch list's objects through the transform again.
	again, err := slimQuotaInto(nil, cached)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := storedStatusDigest(&again.(*cqv1.CheckpointQuota).Status), statusDigest(&written.Status); got != want {
		t.Errorf("transformed twice, the cached status's digest is %q, want %q, the written status's", got, want)
	}
	q, err := policy.FromCheckpointQuota(cached)
	if err != nil {
		t.Fatal(err)
	}
	s := policy.Subject{Namespace: "shop", Pod: long, PodLabels: map[string]string{"app.kubernetes.io/instance": strings.Repeat("v", 63)}}
	if !q.Targets(s) {
		t.Errorf("the cached quota does not target the pod it names")
	}
	s.Pod = long + "1"
	if q.Targets(s) {
		t.Errorf("the cached quota targets a pod it does not name")
	}

	broken := builder.Quota("q", "shop").PerPod(1, "").PodNames(long).MaxAge("a fortnight").Obj()
	obj, err = slimQuotaInto(nil, broken.DeepCopy())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(broken.Spec, obj.(*cqv1.CheckpointQuota).Spec); diff != "" {
		t.Errorf("a quota that does not parse was changed (-written +cached):\n%s", diff)
	}
}
