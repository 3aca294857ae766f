package policy

import (
	"crypto/sha256"
	"encoding/base64"
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

// keptWhole is the length up to which a name is kept as written: its digest would take as
// much memory.
const keptWhole = 24

// digestMark starts a digest. No name, label key or label value that Kubernetes accepts
// contains it, so a digest never equals a name kept whole, and a digest is kept as it is.
const digestMark = "#"

// digestBytes of SHA-256 are kept: 120 bits, which no two names of a cluster share by
// chance, in 20 characters.
const digestBytes = 15

// Compact is a name as the manager keeps it: itself when it is short or a digest already,
// else its digest. Two names compare equal exactly when their compact forms do.
func Compact(name string) string {
	if len(name) <= keptWhole || strings.HasPrefix(name, digestMark) {
		return name
	}
	sum := sha256.Sum256([]byte(name))
	return digestMark + base64.RawURLEncoding.EncodeToString(sum[:digestBytes])
}

// isDigest says whether a compact name is a digest.
func isDigest(name string) bool { return strings.HasPrefix(name, digestMark) }

// Names is a set of pod or container names, compact and sorted; empty selects every name.
type Names []string

// namesOf is the set of names, compacted.
func namesOf(names []string) Names {
	if len(names) == 0 {
		return nil
	}
	out := make(Names, 0, len(names))
	for _, n := range names {
		out = append(out, Compact(n))
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Len is the number of names.
func (n Names) Len() int { return len(n) }

// Has says whether name, as written, is in the set.
func (n Names) Has(name string) bool {
	_, ok := slices.BinarySearch(n, Compact(name))
	return ok
}

// meets says whether n and o share a name.
func (n Names) meets(o Names) bool {
	for _, name := range o {
		if _, ok := slices.BinarySearch(n, name); ok {
			return true
		}
	}
	return false
}

// covers says whether every name of o is in n.
func (n Names) covers(o Names) bool {
	for _, name := range o {
		if _, ok := slices.BinarySearch(n, name); !ok {
			return false
		}
	}
	return true
}

// CompactTarget puts the names and selectors of a quota that parses into compact form, in
// place, for the manager's cache to keep: it parses alike after (FromCheckpointQuota,
// FromClusterQuota), and its names are then no longer the ones written. Only the cache's
// own copy is compacted: nothing of it is ever written back (status patches carry status).
// Each digest that p, the quota's policy, holds already is taken from p (nil: none), so that
// the cache's copy and the policy share one string.
func CompactTarget(t *cqv1.QuotaTarget, p *Quota) {
	if t == nil {
		return
	}
	compact := sharing(p)
	for i, n := range t.PodNames {
		t.PodNames[i] = compact(n)
	}
	for i, n := range t.ContainerNames {
		t.ContainerNames[i] = compact(n)
	}
	compactSelector(t.PodSelector, compact)
}

// CompactSelector puts a label selector's keys and values into compact form, in place,
// taking the digests that p holds from p, as CompactTarget does.
func CompactSelector(ls *cqv1.LabelSelector, p *Quota) {
	compactSelector(ls, sharing(p))
}

func compactSelector(ls *cqv1.LabelSelector, compact func(string) string) {
	if ls == nil {
		return
	}
	if len(ls.MatchLabels) > 0 {
		m := make(map[string]string, len(ls.MatchLabels))
		for k, v := range ls.MatchLabels {
			m[compact(k)] = compact(v)
		}
		ls.MatchLabels = m
	}
	for i := range ls.MatchExpressions {
		e := &ls.MatchExpressions[i]
		e.Key = compact(e.Key)
		for j, v := range e.Values {
			e.Values[j] = compact(v)
		}
	}
}

// sharing is Compact, returning the digests that p holds as p holds them.
func sharing(p *Quota) func(string) string {
	if p == nil {
		return Compact
	}
	held := map[string]string{}
	for _, names := range []Names{p.PodNames, p.ContainerNames} {
		for _, n := range names {
			held[n] = n
		}
	}
	for _, sel := range []*Selector{p.PodSelector, p.NamespaceSelector} {
		if sel == nil {
			continue
		}
		for _, r := range sel.reqs {
			held[r.key] = r.key
			for _, v := range r.values {
				held[v] = v
			}
		}
	}
	return func(name string) string {
		c := Compact(name)
		if h, ok := held[c]; ok {
			return h
		}
		return c
	}
}
