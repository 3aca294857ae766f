package policy

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
)

// Selector is a label selector as a quota's policy keeps it: its requirements sorted, keys
// and values compact (Compact), so that it holds no tenant-written string longer than a
// digest. It matches labels as they are written. Quotas select by equality only (In,
// NotIn, Exists, DoesNotExist), which compact forms keep. A label of matchLabels is the
// requirement In with its one value, as Kubernetes reads it.
//
// The requirements are of the API's own type, so that the manager's cache keeps a quota's
// selector as these same requirements (ShareTarget) rather than a copy beside them.
type Selector struct {
	reqs []cqv1.LabelSelectorRequirement
}

// validDigest stands for a digest when a requirement is checked: a digest is what the
// manager made of a name that it had checked already.
const validDigest = "d"

// operators are the selection operators of the API's, for Kubernetes' own checks.
var operators = map[metav1.LabelSelectorOperator]selection.Operator{
	metav1.LabelSelectorOpIn: selection.In, metav1.LabelSelectorOpNotIn: selection.NotIn,
	metav1.LabelSelectorOpExists: selection.Exists, metav1.LabelSelectorOpDoesNotExist: selection.DoesNotExist,
}

// newSelector is the selector of ls; nil where it selects everything, so that
// `podSelector: {}` is the same as no selector. It fails as Kubernetes' own parsing does
// (labels.NewRequirement) on a key, operator or value that is not valid.
func newSelector(ls *metav1.LabelSelector, path string) (*Selector, error) {
	if selectsAll(ls) {
		return nil, nil
	}
	s := &Selector{reqs: make([]cqv1.LabelSelectorRequirement, 0, len(ls.MatchLabels)+len(ls.MatchExpressions))}
	add := func(key string, op metav1.LabelSelectorOperator, values []string) error {
		sel, ok := operators[op]
		if !ok {
			return fmt.Errorf("%s: %q is not a valid label selector operator", path, op)
		}
		checked := make([]string, 0, len(values))
		for _, v := range values {
			checked = append(checked, orValid(v))
		}
		if _, err := labels.NewRequirement(orValid(key), sel, checked); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		r := cqv1.LabelSelectorRequirement{Key: Compact(key), Operator: op}
		if len(values) > 0 {
			r.Values = make([]string, 0, len(values))
			for _, v := range values {
				r.Values = append(r.Values, Compact(v))
			}
			slices.Sort(r.Values)
		}
		s.reqs = append(s.reqs, r)
		return nil
	}
	for k, v := range ls.MatchLabels {
		if err := add(k, metav1.LabelSelectorOpIn, []string{v}); err != nil {
			return nil, err
		}
	}
	for _, e := range ls.MatchExpressions {
		if err := add(e.Key, e.Operator, e.Values); err != nil {
			return nil, err
		}
	}
	slices.SortFunc(s.reqs, func(a, b cqv1.LabelSelectorRequirement) int {
		return cmp.Or(strings.Compare(a.Key, b.Key), strings.Compare(string(a.Operator), string(b.Operator)), slices.Compare(a.Values, b.Values))
	})
	return s, nil
}

// orValid is s, or for a digest a valid value in its place.
func orValid(s string) string {
	if isDigest(s) {
		return validDigest
	}
	return s
}

// Matches says whether labels, as written, satisfy every requirement.
func (s *Selector) Matches(l map[string]string) bool {
	for i := range s.reqs {
		if !matches(&s.reqs[i], l) {
			return false
		}
	}
	return true
}

func matches(r *cqv1.LabelSelectorRequirement, l map[string]string) bool {
	v, ok := lookup(l, r.Key)
	switch r.Operator {
	case metav1.LabelSelectorOpExists:
		return ok
	case metav1.LabelSelectorOpDoesNotExist:
		return !ok
	case metav1.LabelSelectorOpNotIn:
		return !ok || !has(r.Values, v)
	default: // In
		return ok && has(r.Values, v)
	}
}

// has says whether the compact, sorted values hold value, as written.
func has(values []string, value string) bool {
	_, ok := slices.BinarySearch(values, Compact(value))
	return ok
}

// lookup finds the value of the label whose key is key in compact form.
func lookup(l map[string]string, key string) (string, bool) {
	if !isDigest(key) {
		v, ok := l[key]
		return v, ok
	}
	for k, v := range l {
		if len(k) > keptWhole && Compact(k) == key {
			return v, true
		}
	}
	return "", false
}

// Equal says whether two selectors select the same labels by the same requirements.
func (s *Selector) Equal(o *Selector) bool {
	if s == nil || o == nil {
		return s == nil && o == nil
	}
	return slices.EqualFunc(s.reqs, o.reqs, func(a, b cqv1.LabelSelectorRequirement) bool {
		return a.Key == b.Key && a.Operator == b.Operator && slices.Equal(a.Values, b.Values)
	})
}
