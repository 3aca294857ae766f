package policy

import (
	"crypto/sha256"
	"slices"
	"strings"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
)

// What a tenant writes in a quota's target (pod and container names, label keys and values)
// is kept by the manager only to be compared for equality with what pods and archives
// carry. A maximal quota lists 76 such strings of up to 317 characters (11 KB: docs/
// admission.md, "Bounds"), and the manager kept each of them in its cache and in the
// parsed policy: most of the 40 KB a maximal quota cost it (issue 29). So a long one is
// kept as a digest, which compares equal where the strings do.

// keptWhole is the length up to which a name is kept as written: most label keys and
// values (`app: web`, `app.kubernetes.io/name`) are shorter, and matching a pod by them
// then hashes nothing.
const keptWhole = 24

// digestMark starts a digest. No name, label key or label value that Kubernetes accepts
// contains it, so a digest never equals a name kept whole, and a digest is kept as it is.
const digestMark = "#"

// digestBytes of SHA-256 are kept: 120 bits, which no two names of a cluster share by
// chance. They are kept as bytes, not as text: a digest is only ever compared, never
// shown, and the mark and 15 bytes take 16, the least the allocator gives a string
// longer than 8 (as text they took 24: 600 bytes of a maximal quota).
const digestBytes = 15

// Compact is a name as the manager keeps it: itself when it is short or a digest already,
// else its digest. Two names compare equal exactly when their compact forms do.
func Compact(name string) string {
	if len(name) <= keptWhole || strings.HasPrefix(name, digestMark) {
		return name
	}
	sum := sha256.Sum256([]byte(name))
	return digestMark + string(sum[:digestBytes])
}

// isDigest says whether a compact name is a digest.
func isDigest(name string) bool { return strings.HasPrefix(name, digestMark) }

// A quota's lists of names and its selectors are kept packed: each list in one string of
// its compact names, each preceded by its length in a byte (a compact name is at most
// keptWhole bytes), after packedMark. A maximal quota's 24 names took 24 strings and two
// slices (768 bytes), and its selector's 12 requirements and 52 keys and values a slice of
// requirements, 12 of values and 52 strings (2.2 KB); packed, they take three strings
// (1.4 KB), which the manager's cache shares (ShareTarget).

// packedMark starts a packed list or selector. No name, label key or label value that
// Kubernetes accepts contains it, so nothing a tenant can write reads as packed.
const packedMark = "\x00"

// packer writes a packed list or selector.
type packer struct{ b strings.Builder }

func newPacker(size int) *packer {
	p := &packer{}
	p.b.Grow(len(packedMark) + size)
	p.b.WriteString(packedMark)
	return p
}

// entry writes a compact name.
func (p *packer) entry(name string) {
	p.b.WriteByte(byte(len(name)))
	p.b.WriteString(name)
}

// op writes a requirement's operator.
func (p *packer) op(code byte) { p.b.WriteByte(code) }

// count writes a number of entries to come (uvarint).
func (p *packer) count(n int) {
	for ; n >= 0x80; n >>= 7 {
		p.b.WriteByte(byte(n) | 0x80)
	}
	p.b.WriteByte(byte(n))
}

func (p *packer) String() string { return p.b.String() }

// unpacker reads what a packer wrote; ok turns false, for good, at the first thing that
// is not there or not well formed.
type unpacker struct {
	s  string
	ok bool
}

// unpack reads the packed string s; ok is false when s is not one.
func unpack(s string) *unpacker {
	rest, ok := strings.CutPrefix(s, packedMark)
	return &unpacker{s: rest, ok: ok}
}

func (u *unpacker) done() bool { return u.s == "" }

func (u *unpacker) entry() string {
	if !u.ok || u.s == "" {
		u.ok = false
		return ""
	}
	n := int(u.s[0])
	if n == 0 || n > keptWhole || 1+n > len(u.s) {
		u.ok = false
		return ""
	}
	e := u.s[1 : 1+n]
	u.s = u.s[1+n:]
	return e
}

func (u *unpacker) count() int {
	n, shift := 0, 0
	for u.ok && u.s != "" && shift < 28 {
		b := u.s[0]
		u.s = u.s[1:]
		n |= int(b&0x7f) << shift
		if b < 0x80 {
			return n
		}
		shift += 7
	}
	u.ok = false
	return 0
}

func (u *unpacker) op() byte {
	if !u.ok || u.s == "" {
		u.ok = false
		return 0
	}
	b := u.s[0]
	u.s = u.s[1:]
	return b
}

// Names is a set of pod or container names, compact, sorted and each once, as a packed
// list; empty selects every name.
type Names string

// namesOf is the set of names, compacted; a list of one packed list (the manager's
// cache's copy: ShareTarget) is that list.
func namesOf(names []string) Names {
	if len(names) == 0 {
		return ""
	}
	if len(names) == 1 && wellFormedNames(names[0]) {
		return Names(names[0])
	}
	compact := make([]string, 0, len(names))
	size := 0
	for _, n := range names {
		c := Compact(n)
		compact = append(compact, c)
		size += 1 + len(c)
	}
	slices.Sort(compact)
	p := newPacker(size)
	for _, c := range slices.Compact(compact) {
		p.entry(c)
	}
	return Names(p.String())
}

// wellFormedNames says whether s is a packed list of at least one name.
func wellFormedNames(s string) bool {
	return wellFormed(s, func(u *unpacker) { u.entry() })
}

// wellFormed says whether s is packed and holds at least one item, each of which item reads.
func wellFormed(s string, item func(*unpacker)) bool {
	u := unpack(s)
	if !u.ok || u.done() {
		return false
	}
	for u.ok && !u.done() {
		item(u)
	}
	return u.ok
}

// all calls yield with each compact name of the set, in order.
func (n Names) all(yield func(string) bool) {
	for u := unpack(string(n)); u.ok && !u.done(); {
		if e := u.entry(); u.ok && !yield(e) {
			return
		}
	}
}

// Len is the number of names.
func (n Names) Len() int {
	if n == "" {
		return 0
	}
	count := 0
	for range n.all {
		count++
	}
	return count
}

// Has says whether name, as written, is in the set.
func (n Names) Has(name string) bool {
	return n.hasCompact(Compact(name))
}

func (n Names) hasCompact(c string) bool {
	for e := range n.all {
		if e == c {
			return true
		}
	}
	return false
}

// meets says whether n and o share a name.
func (n Names) meets(o Names) bool {
	for name := range o.all {
		if n.hasCompact(name) {
			return true
		}
	}
	return false
}

// covers says whether every name of o is in n.
func (n Names) covers(o Names) bool {
	for name := range o.all {
		if !n.hasCompact(name) {
			return false
		}
	}
	return true
}

// ShareTarget makes t, the manager's cache's copy of the target of a quota whose policy is
// p, p's own: its pod and container names are each a list of one string, p's packed list,
// and its pod selector holds p's packed selector (SharedSelector). It parses to p again
// (FromCheckpointQuota, FromClusterQuota), and holds no names or values of its own beside
// p's: a maximal quota's target cost the cache 1.5 KB beside its policy (issue 29). Only
// the cache's copy is changed so: nothing of it is ever written back (status writes carry
// status only), and neither it nor p is ever changed.
func ShareTarget(t *cqv1.QuotaTarget, p *Quota) {
	if t == nil || p == nil {
		return
	}
	t.PodNames, t.ContainerNames, t.PodSelector = p.PodNames.shared(), p.ContainerNames.shared(), SharedSelector(p.PodSelector)
}

// shared is the list that parses to n again (namesOf): nil, or n's packed list alone.
func (n Names) shared() []string {
	if n == "" {
		return nil
	}
	return []string{string(n)}
}

// SharedSelector is the label selector that holds s's packed form (nil for nil: s selects
// everything), for the manager's cache to keep in place of the one written; it parses to s
// again (newSelector).
func SharedSelector(s *Selector) *cqv1.LabelSelector {
	if s == nil {
		return nil
	}
	return &cqv1.LabelSelector{MatchExpressions: []cqv1.LabelSelectorRequirement{{Key: s.packed}}}
}
