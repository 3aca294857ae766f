package policy

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	"github.com/checkpoint-quota/checkpoint-quota/test/builder"
)

func mustQuota(t *testing.T, b *builder.QuotaBuilder) *Quota {
	t.Helper()
	q, err := FromCheckpointQuota(b.Obj())
	if err != nil {
		t.Fatalf("FromCheckpointQuota: %v", err)
	}
	return q
}

func mustCluster(t *testing.T, b *builder.ClusterQuotaBuilder) *Quota {
	t.Helper()
	q, err := FromClusterQuota(b.Obj())
	if err != nil {
		t.Fatalf("FromClusterQuota: %v", err)
	}
	return q
}

// summary is what a test compares of a normalised quota.
type summary struct {
	Ref         string
	Specificity Specificity
	Fields      map[Key]string
	Limits      map[Key]int64
	MaxAge      time.Duration
	Orphans     *OrphanRule
}

func summarize(q *Quota) summary {
	s := summary{Ref: q.Ref.String(), Specificity: q.Specificity, Fields: map[Key]string{}, Limits: map[Key]int64{}, Orphans: q.Orphans}
	for _, l := range q.limits {
		s.Fields[l.Key] = l.Path.String()
		if l.Resource != "" {
			s.Limits[l.Key] = l.Value
		}
	}
	if q.MaxAge != nil {
		s.MaxAge = *q.MaxAge
	}
	return s
}

func TestFromCheckpointQuota(t *testing.T) {
	cases := map[string]struct {
		in   *builder.QuotaBuilder
		want summary
	}{
		"untargeted total is the namespace level": {
			in: builder.Quota("q", "shop").Total(50, "10Gi").PerContainer(10, "").MaxAge("168h"),
			want: summary{
				Ref: "CheckpointQuota shop/q", Specificity: NamespaceUntargeted,
				Fields: map[Key]string{
					NamespaceCheckpoints: "spec.limits.total.checkpoints", NamespaceStorage: "spec.limits.total.storage",
					ContainerCheckpoints: "spec.limits.perContainer.checkpoints", MaxAge: "spec.maxAge",
				},
				Limits: map[Key]int64{NamespaceCheckpoints: 50, NamespaceStorage: 10 << 30, ContainerCheckpoints: 10},
				MaxAge: 168 * time.Hour,
			},
		},
		"pod names make total a group limit": {
			in: builder.Quota("q", "shop").PodNames("cache-0").Total(5, "").PerPod(3, "1Gi"),
			want: summary{
				Ref: "CheckpointQuota shop/q", Specificity: PodTargeted,
				Fields: map[Key]string{
					GroupCheckpoints: "spec.limits.total.checkpoints",
					PodCheckpoints:   "spec.limits.perPod.checkpoints", PodStorage: "spec.limits.perPod.storage",
				},
				Limits: map[Key]int64{GroupCheckpoints: 5, PodCheckpoints: 3, PodStorage: 1 << 30},
			},
		},
		"a pod selector is pod-targeted": {
			in:   builder.Quota("q", "shop").PodSelector(map[string]string{"app": "redis"}),
			want: summary{Ref: "CheckpointQuota shop/q", Specificity: PodTargeted, Fields: map[Key]string{}, Limits: map[Key]int64{}},
		},
		"container names win over pod names": {
			in: builder.Quota("q", "shop").PodNames("a").ContainerNames("redis").MaxCheckpointSize("2Gi").
				Orphans(cqv1.OrphanDelete, "1h"),
			want: summary{
				Ref: "CheckpointQuota shop/q", Specificity: ContainerTargeted,
				Fields:  map[Key]string{MaxCheckpointSize: "spec.maxCheckpointSize", Orphans: "spec.orphans"},
				Limits:  map[Key]int64{MaxCheckpointSize: 2 << 30},
				Orphans: &OrphanRule{Policy: cqv1.OrphanDelete, GracePeriod: time.Hour},
			},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, summarize(mustQuota(t, tc.in))); diff != "" {
				t.Errorf("quota (-want +got):\n%s", diff)
			}
		})
	}
}

func TestFromClusterQuota(t *testing.T) {
	cases := map[string]struct {
		in   *builder.ClusterQuotaBuilder
		want summary
	}{
		"perNamespace and total": {
			in: builder.ClusterQuota("default").PerNamespace(100, "50Gi").Total(1000, "").NamespaceSelector(map[string]string{"team": "a"}),
			want: summary{
				Ref: "ClusterCheckpointQuota default", Specificity: ClusterUntargeted,
				Fields: map[Key]string{
					NamespaceCheckpoints: "spec.limits.perNamespace.checkpoints", NamespaceStorage: "spec.limits.perNamespace.storage",
					GroupCheckpoints: "spec.limits.total.checkpoints",
				},
				Limits: map[Key]int64{NamespaceCheckpoints: 100, NamespaceStorage: 50 << 30, GroupCheckpoints: 1000},
			},
		},
		"a target": {
			in: builder.ClusterQuota("redis").ContainerNames("redis").PerContainer(5, ""),
			want: summary{
				Ref: "ClusterCheckpointQuota redis", Specificity: ClusterTargeted,
				Fields: map[Key]string{ContainerCheckpoints: "spec.limits.perContainer.checkpoints"},
				Limits: map[Key]int64{ContainerCheckpoints: 5},
			},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, summarize(mustCluster(t, tc.in))); diff != "" {
				t.Errorf("quota (-want +got):\n%s", diff)
			}
		})
	}
}

func TestFromQuotaErrors(t *testing.T) {
	cases := map[string]struct {
		in   *cqv1.CheckpointQuota
		want string
	}{
		"bad size":     {in: builder.Quota("q", "s").PerPod(-1, "2GB").Obj(), want: `spec.limits.perPod.storage: "2GB" is not a quantity`},
		"bad max age":  {in: builder.Quota("q", "s").MaxAge("7d").Obj(), want: `spec.maxAge: time: unknown unit "d" in duration "7d"`},
		"bad grace":    {in: builder.Quota("q", "s").Orphans(cqv1.OrphanDelete, "soon").Obj(), want: `spec.orphans.gracePeriod: time: invalid duration "soon"`},
		"bad max size": {in: builder.Quota("q", "s").MaxCheckpointSize("ten").Obj(), want: `spec.maxCheckpointSize: "ten" is not a quantity`},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := FromCheckpointQuota(tc.in)
			got := ""
			if err != nil {
				got = err.Error()
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
		})
	}
}

func TestTargets(t *testing.T) {
	redis := map[string]string{"app": "redis"}
	subject := Subject{Namespace: "shop", NamespaceLabels: map[string]string{"team": "a"}, Pod: "cache-0", PodLabels: redis, Container: "redis"}
	unknownPod := subject
	unknownPod.PodLabels = nil
	notWeb := builder.Quota("q", "shop").Obj()
	notWeb.Spec.Target = &cqv1.QuotaTarget{PodSelector: &cqv1.LabelSelector{MatchExpressions: []cqv1.LabelSelectorRequirement{
		{Key: "app", Operator: metav1.LabelSelectorOpNotIn, Values: []string{"web"}},
	}}}
	cases := map[string]struct {
		q    *builder.QuotaBuilder
		c    *builder.ClusterQuotaBuilder
		obj  *cqv1.CheckpointQuota
		s    Subject
		want bool
	}{
		// "not web" matches a pod without labels; an unknown pod must still not match.
		"unknown pod never matches a NotIn selector": {obj: notWeb, s: unknownPod, want: false},
		"a known pod matches a NotIn selector":       {obj: notWeb, s: subject, want: true},
		"same namespace":                             {q: builder.Quota("q", "shop"), s: subject, want: true},
		"other namespace":                            {q: builder.Quota("q", "shop-prod"), s: subject, want: false},
		"pod selector matches":                       {q: builder.Quota("q", "shop").PodSelector(redis), s: subject, want: true},
		"pod selector does not match":                {q: builder.Quota("q", "shop").PodSelector(map[string]string{"app": "web"}), s: subject, want: false},
		"unknown pod never matches a selector":       {q: builder.Quota("q", "shop").PodSelector(redis), s: unknownPod, want: false},
		"unknown pod matches by name":                {q: builder.Quota("q", "shop").PodNames("cache-0"), s: unknownPod, want: true},
		"other pod name":                             {q: builder.Quota("q", "shop").PodNames("cache-1"), s: subject, want: false},
		"container name":                             {q: builder.Quota("q", "shop").ContainerNames("redis"), s: subject, want: true},
		"other container":                            {q: builder.Quota("q", "shop").ContainerNames("sidecar"), s: subject, want: false},
		"cluster quota without selector":             {c: builder.ClusterQuota("c"), s: subject, want: true},
		"cluster namespace selector":                 {c: builder.ClusterQuota("c").NamespaceSelector(map[string]string{"team": "a"}), s: subject, want: true},
		"cluster namespace selector misses":          {c: builder.ClusterQuota("c").NamespaceSelector(map[string]string{"team": "b"}), s: subject, want: false},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			var q *Quota
			if tc.obj != nil {
				var err error
				if q, err = FromCheckpointQuota(tc.obj); err != nil {
					t.Fatal(err)
				}
			} else if tc.q != nil {
				q = mustQuota(t, tc.q)
			} else {
				q = mustCluster(t, tc.c)
			}
			if got := q.Targets(tc.s); got != tc.want {
				t.Errorf("Targets = %v, want %v", got, tc.want)
			}
		})
	}
}
