package policy

import (
	"slices"
	"strings"
	"testing"
	"unsafe"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	"github.com/checkpoint-quota/checkpoint-quota/test/builder"
)

func TestCompact(t *testing.T) {
	long := strings.Repeat("p", 253)
	cases := map[string]struct {
		a, b  string
		equal bool
	}{
		"a short name is kept as written":       {a: "cache-0", b: "cache-0", equal: true},
		"two long names alike":                  {a: long, b: strings.Repeat("p", 253), equal: true},
		"two long names a character apart":      {a: long, b: long[:252] + "q", equal: false},
		"a long name and its digest":            {a: long, b: Compact(long), equal: true},
		"a short name and a long one":           {a: "web", b: long, equal: false},
		"names at the length kept whole, apart": {a: strings.Repeat("a", keptWhole), b: strings.Repeat("a", keptWhole-1) + "b", equal: false},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if got := Compact(tc.a) == Compact(tc.b); got != tc.equal {
				t.Errorf("Compact(%.20q...) == Compact(%.20q...) is %v, want %v", tc.a, tc.b, got, tc.equal)
			}
			if c := Compact(tc.a); len(c) > keptWhole {
				t.Errorf("Compact keeps %d bytes of a %d-byte name, want at most %d", len(c), len(tc.a), keptWhole)
			}
		})
	}
	if c := Compact(long); !strings.HasPrefix(c, digestMark) || Compact(c) != c {
		t.Errorf("the digest %q of a long name is not marked or not kept as it is", c)
	}
}

// TestSharedQuotaParsesAlike checks that a quota as the manager's cache keeps it (its
// target and namespace selector its policy's own: ShareTarget, SharedSelector) targets,
// conflicts and overlaps exactly as written: long pod and container names, label keys and
// values, by every operator.
func TestSharedQuotaParsesAlike(t *testing.T) {
	longKey := strings.Repeat("k", 60) + ".example.com/" + strings.Repeat("n", 60)
	longValue := strings.Repeat("v", 63)
	longPod := "cache-" + strings.Repeat("p", 200)
	longContainer := strings.Repeat("c", 63)
	written := builder.ClusterQuota("c").PerPod(3, "").PodNames(longPod, "web-0", longPod).ContainerNames(longContainer).Obj()
	written.Spec.Target.PodSelector = &cqv1.LabelSelector{
		MatchLabels: map[string]string{longKey: longValue, "app": "cache"},
		MatchExpressions: []cqv1.LabelSelectorRequirement{
			{Key: longKey + "x", Operator: metav1.LabelSelectorOpNotIn, Values: []string{longValue, "short"}},
			{Key: "tier", Operator: metav1.LabelSelectorOpExists},
			{Key: longKey + "y", Operator: metav1.LabelSelectorOpDoesNotExist},
			{Key: "app", Operator: metav1.LabelSelectorOpIn, Values: []string{"cache", "db"}},
		},
	}
	written.Spec.NamespaceSelector = &cqv1.LabelSelector{MatchLabels: map[string]string{longKey: longValue}}
	a, err := FromClusterQuota(written)
	if err != nil {
		t.Fatal(err)
	}
	cached := written.DeepCopy()
	ShareTarget(cached.Spec.Target, a)
	cached.Spec.NamespaceSelector = SharedSelector(a.NamespaceSelector)
	if slices.Contains(cached.Spec.Target.PodNames, longPod) || len(cached.Spec.NamespaceSelector.MatchLabels) > 0 {
		t.Fatalf("not the policy's: %+v", cached.Spec.Target)
	}
	b, err := FromClusterQuota(cached)
	if err != nil {
		t.Fatalf("the cached quota does not parse: %v", err)
	}
	if diff := cmp.Diff(a, b, cmp.AllowUnexported(Quota{}, Selector{}),
		cmp.Comparer(func(x, y *field.Path) bool { return x.String() == y.String() })); diff != "" {
		t.Errorf("the cached quota parses to another policy (-written +cached):\n%s", diff)
	}
	pod := map[string]string{longKey: longValue, "app": "cache", "tier": "db", longKey + "x": "other"}
	ns := map[string]string{longKey: longValue}
	with := func(f func(s *Subject)) Subject {
		s := Subject{Namespace: "shop", NamespaceLabels: ns, Pod: longPod, PodLabels: pod, Container: longContainer}
		f(&s)
		return s
	}
	subjects := map[string]struct {
		s    Subject
		want bool
	}{
		"every requirement met": {s: with(func(*Subject) {}), want: true},
		"the other pod named":   {s: with(func(s *Subject) { s.Pod = "web-0" }), want: true},
		"a pod a character apart": {
			s: with(func(s *Subject) { s.Pod = longPod[:len(longPod)-1] + "q" }), want: false,
		},
		"another container": {s: with(func(s *Subject) { s.Container = longContainer[1:] }), want: false},
		"a long label value apart": {
			s: with(func(s *Subject) {
				s.PodLabels = map[string]string{longKey: longValue[1:] + "w", "app": "cache", "tier": "db"}
			}), want: false,
		},
		"a value the NotIn names": {
			s: with(func(s *Subject) {
				s.PodLabels = map[string]string{longKey: longValue, "app": "cache", "tier": "db", longKey + "x": longValue}
			}), want: false,
		},
		"a label the DoesNotExist names": {
			s: with(func(s *Subject) {
				s.PodLabels = map[string]string{longKey: longValue, "app": "cache", "tier": "db", longKey + "y": "1"}
			}), want: false,
		},
		"without the label that must exist": {
			s: with(func(s *Subject) { s.PodLabels = map[string]string{longKey: longValue, "app": "cache"} }), want: false,
		},
		"a namespace not selected": {s: with(func(s *Subject) { s.NamespaceLabels = map[string]string{longKey: "v"} }), want: false},
	}
	for name, tc := range subjects {
		if got := a.Targets(tc.s); got != tc.want {
			t.Errorf("%s: the quota as written targets it: %v, want %v", name, got, tc.want)
		}
		if got := b.Targets(tc.s); got != tc.want {
			t.Errorf("%s: the quota as cached targets it: %v, want %v", name, got, tc.want)
		}
	}
	// The cache's copy holds the policy's own packed strings, not copies.
	shared := func(what string, cache []string, policy string) {
		if len(cache) != 1 || unsafe.StringData(cache[0]) != unsafe.StringData(policy) {
			t.Errorf("the cache's %s are a copy of the policy's, not the policy's own", what)
		}
	}
	shared("pod names", cached.Spec.Target.PodNames, string(a.PodNames))
	shared("container names", cached.Spec.Target.ContainerNames, string(a.ContainerNames))
	for what, sel := range map[string]struct {
		cache  *cqv1.LabelSelector
		policy *Selector
	}{"pod selector": {cached.Spec.Target.PodSelector, a.PodSelector}, "namespace selector": {cached.Spec.NamespaceSelector, a.NamespaceSelector}} {
		if len(sel.cache.MatchExpressions) != 1 {
			t.Errorf("the cache's %s has %d requirements, want the policy's packed one", what, len(sel.cache.MatchExpressions))
			continue
		}
		shared(what, []string{sel.cache.MatchExpressions[0].Key}, sel.policy.packed)
	}
	// A quota as written (an admission's candidate) and one as cached (the others) compare alike.
	if !a.PodSelector.Equal(b.PodSelector) || !a.NamespaceSelector.Equal(b.NamespaceSelector) || !surelyOverlap(a, b) || !covers(a, b) {
		t.Errorf("the quota as written and as cached differ: selectors %v/%v, overlap %v, cover %v",
			a.PodSelector.Equal(b.PodSelector), a.NamespaceSelector.Equal(b.NamespaceSelector), surelyOverlap(a, b), covers(a, b))
	}
}

// TestSelectorRefusesWhatKubernetesRefuses checks that a selector stored past admission
// that Kubernetes' own parsing refuses does not parse here either (the quota then reports
// InvalidSpec and governs nothing), before or after the cache keeps it.
func TestSelectorRefusesWhatKubernetesRefuses(t *testing.T) {
	for name, ls := range map[string]*metav1.LabelSelector{
		"a bad key":        {MatchLabels: map[string]string{"a b": "c"}},
		"a bad value":      {MatchLabels: map[string]string{"app": "a b"}},
		"a bad operator":   {MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "app", Operator: "Like", Values: []string{"x"}}}},
		"In without value": {MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "app", Operator: metav1.LabelSelectorOpIn}}},
	} {
		if _, err := newSelector(ls, "spec.target.podSelector"); err == nil || !strings.Contains(err.Error(), "spec.target.podSelector") {
			t.Errorf("%s: %v, want an error naming spec.target.podSelector", name, err)
		}
	}
}

// TestMalformedPackedFormsAreNotPacked checks that a string that starts as a packed list or
// selector but is not one (cut short, a length past its end, an unknown operator) is read
// as what it is written as: a name, or a label key that Kubernetes refuses.
func TestMalformedPackedFormsAreNotPacked(t *testing.T) {
	good := namesOf([]string{"web-0", strings.Repeat("p", 253)})
	sel, err := newSelector(&metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}, "spec.target.podSelector")
	if err != nil {
		t.Fatal(err)
	}
	if got := namesOf(good.shared()); got != good {
		t.Errorf("a packed list read again is %q, want %q", got, good)
	}
	for name, s := range map[string]string{
		"empty":                 packedMark,
		"cut short":             string(good[:len(good)-3]),
		"a length past the end": packedMark + "\x09web",
		"a zero length":         packedMark + "\x00",
		"a name too long":       packedMark + "\x30" + strings.Repeat("a", 0x30),
		"a selector cut short":  sel.packed[:len(sel.packed)-2],
		"an unknown operator":   packedMark + "X\x03app\x01\x03web",
		"a count past the end":  packedMark + "I\x03app\x05\x03web",
		"a count never ending":  packedMark + "I\x03app\xff\xff\xff\xff\xff",
	} {
		if n := namesOf([]string{s}); n.Len() != 1 || !n.Has(s) {
			t.Errorf("%s: names [%q] read as %d names", name, s, n.Len())
		}
		ls := &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: s}}}
		if _, err := newSelector(ls, "spec.target.podSelector"); err == nil {
			t.Errorf("%s: a selector keyed %q parses", name, s)
		}
	}
}
