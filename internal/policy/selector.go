package policy

import (
	"fmt"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
)

// Selector is a label selector as a quota's policy keeps it: its requirements sorted by
// key, keys and values compact (Compact), so that it holds no tenant-written string longer
// than a digest. It matches labels as they are written. Quotas select by equality only (In,
// NotIn, Exists, DoesNotExist), which compact forms keep.
type Selector struct {
	reqs []requirement
}

type requirement struct {
	key    string
	op     selection.Operator
	values []string // compact and sorted
}

// validDigest stands for a digest when a requirement is checked: a digest is what the
// manager made of a name that it had checked already.
const validDigest = "d"

// newSelector is the selector of ls; nil where it selects everything, so that
// `podSelector: {}` is the same as no selector. It fails as Kubernetes' own parsing does
// (labels.NewRequirement) on a key, operator or value that is not valid.
func newSelector(ls *metav1.LabelSelector, path string) (*Selector, error) {
	if selectsAll(ls) {
		return nil, nil
	}
	s := &Selector{reqs: make([]requirement, 0, len(ls.MatchLabels)+len(ls.MatchExpressions))}
	add := func(key string, op selection.Operator, values []string) error {
		checked := make([]string, 0, len(values))
		for _, v := range values {
			checked = append(checked, orValid(v))
		}
		if _, err := labels.NewRequirement(orValid(key), op, checked); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		r := requirement{key: Compact(key), op: op, values: make([]string, 0, len(values))}
		for _, v := range values {
			r.values = append(r.values, Compact(v))
		}
		slices.Sort(r.values)
		s.reqs = append(s.reqs, r)
		return nil
	}
	for k, v := range ls.MatchLabels {
		if err := add(k, selection.Equals, []string{v}); err != nil {
			return nil, err
		}
	}
	for _, e := range ls.MatchExpressions {
		var op selection.Operator
		switch e.Operator {
		case metav1.LabelSelectorOpIn:
			op = selection.In
		case metav1.LabelSelectorOpNotIn:
			op = selection.NotIn
		case metav1.LabelSelectorOpExists:
			op = selection.Exists
		case metav1.LabelSelectorOpDoesNotExist:
			op = selection.DoesNotExist
		default:
			return nil, fmt.Errorf("%s: %q is not a valid label selector operator", path, e.Operator)
		}
		if err := add(e.Key, op, e.Values); err != nil {
			return nil, err
		}
	}
	slices.SortFunc(s.reqs, func(a, b requirement) int {
		return strings.Compare(a.key+"\x00"+string(a.op), b.key+"\x00"+string(b.op))
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
		if !s.reqs[i].matches(l) {
			return false
		}
	}
	return true
}

func (r *requirement) matches(l map[string]string) bool {
	v, ok := lookup(l, r.key)
	switch r.op {
	case selection.Exists:
		return ok
	case selection.DoesNotExist:
		return !ok
	case selection.NotIn:
		return !ok || !r.has(v)
	default: // Equals, In
		return ok && r.has(v)
	}
}

func (r *requirement) has(value string) bool {
	_, ok := slices.BinarySearch(r.values, Compact(value))
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
	return slices.EqualFunc(s.reqs, o.reqs, func(a, b requirement) bool {
		return a.key == b.key && a.op == b.op && slices.Equal(a.values, b.values)
	})
}
