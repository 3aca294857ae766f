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
// and values compact (Compact), packed into one string (names.go), so that it holds no
// tenant-written string longer than a digest. It matches labels as they are written.
// Quotas select by equality only (In, NotIn, Exists, DoesNotExist), which compact forms
// keep. A label of matchLabels is the requirement In with its one value, as Kubernetes
// reads it.
//
// Packed, a requirement is its operator (a byte of opCodes), its key, the number of its
// values and its values, sorted. The manager's cache keeps a quota's selector as this same
// string (SharedSelector) rather than a copy beside it.
type Selector struct {
	packed string
}

// validDigest stands for a digest when a requirement is checked: a digest is what the
// manager made of a name that it had checked already.
const validDigest = "d"

// operators are the selection operators of the API's, for Kubernetes' own checks.
var operators = map[metav1.LabelSelectorOperator]selection.Operator{
	metav1.LabelSelectorOpIn: selection.In, metav1.LabelSelectorOpNotIn: selection.NotIn,
	metav1.LabelSelectorOpExists: selection.Exists, metav1.LabelSelectorOpDoesNotExist: selection.DoesNotExist,
}

// opCodes are the operators as a packed selector writes them.
var opCodes = map[metav1.LabelSelectorOperator]byte{
	metav1.LabelSelectorOpIn: 'I', metav1.LabelSelectorOpNotIn: 'N',
	metav1.LabelSelectorOpExists: 'E', metav1.LabelSelectorOpDoesNotExist: 'D',
}

// newSelector is the selector of ls; nil where it selects everything, so that
// `podSelector: {}` is the same as no selector. It fails as Kubernetes' own parsing does
// (labels.NewRequirement) on a key, operator or value that is not valid. A selector of one
// requirement whose key is a packed selector (the manager's cache's copy: SharedSelector)
// is that selector.
func newSelector(ls *metav1.LabelSelector, path string) (*Selector, error) {
	if selectsAll(ls) {
		return nil, nil
	}
	if s, ok := sharedSelector(ls); ok {
		return s, nil
	}
	reqs := make([]cqv1.LabelSelectorRequirement, 0, len(ls.MatchLabels)+len(ls.MatchExpressions))
	size := 0
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
		size += 2 + len(r.Key) + 1
		for _, v := range values {
			r.Values = append(r.Values, Compact(v))
			size += 1 + len(r.Values[len(r.Values)-1])
		}
		slices.Sort(r.Values)
		reqs = append(reqs, r)
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
	slices.SortFunc(reqs, func(a, b cqv1.LabelSelectorRequirement) int {
		return cmp.Or(strings.Compare(a.Key, b.Key), strings.Compare(string(a.Operator), string(b.Operator)), slices.Compare(a.Values, b.Values))
	})
	p := newPacker(size)
	for _, r := range reqs {
		p.op(opCodes[r.Operator])
		p.entry(r.Key)
		p.count(len(r.Values))
		for _, v := range r.Values {
			p.entry(v)
		}
	}
	return &Selector{packed: p.String()}, nil
}

// sharedSelector is the selector that ls holds packed (SharedSelector), if it holds one.
func sharedSelector(ls *metav1.LabelSelector) (*Selector, bool) {
	if len(ls.MatchLabels) > 0 || len(ls.MatchExpressions) != 1 {
		return nil, false
	}
	if r := ls.MatchExpressions[0]; r.Operator == "" && len(r.Values) == 0 && wellFormedSelector(r.Key) {
		return &Selector{packed: r.Key}, true
	}
	return nil, false
}

// wellFormedSelector says whether s is a packed selector of at least one requirement.
func wellFormedSelector(s string) bool {
	return wellFormed(s, func(u *unpacker) { u.requirement() })
}

// requirement reads one requirement of a packed selector: its operator, its key and its
// values, as the entries of a packed list without its mark.
func (u *unpacker) requirement() (op byte, key, values string) {
	op, key = u.op(), u.entry()
	switch op {
	case 'I', 'N', 'E', 'D':
	default:
		u.ok = false
	}
	n := u.count()
	rest := u.s
	for range n {
		u.entry()
	}
	return op, key, rest[:len(rest)-len(u.s)]
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
	for u := unpack(s.packed); !u.done(); {
		op, key, values := u.requirement()
		if !u.ok || !matches(op, key, values, l) {
			return false
		}
	}
	return true
}

func matches(op byte, key, values string, l map[string]string) bool {
	v, ok := lookup(l, key)
	switch op {
	case 'E':
		return ok
	case 'D':
		return !ok
	case 'N':
		return !ok || !has(values, v)
	default: // In
		return ok && has(values, v)
	}
}

// has says whether the compact values, the entries of a packed list, hold value, as written.
func has(values, value string) bool {
	c := Compact(value)
	for u := (&unpacker{s: values, ok: true}); u.ok && !u.done(); {
		if e := u.entry(); u.ok && e == c {
			return true
		}
	}
	return false
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
	return s.packed == o.packed
}
