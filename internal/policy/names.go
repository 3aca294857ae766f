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

// ShareTarget makes t, the manager's cache's copy of the target of a quota whose policy is
// p, p's own: its pod and container names are p's (compact, sorted, each once), and its
// pod selector is p's requirements (SharedSelector). It parses to p again
// (FromCheckpointQuota, FromClusterQuota), and holds no names, values or lists of its own
// beside p's: a maximal quota's target cost the cache 1.5 KB beside its policy (issue 29).
// Only the cache's copy is changed so: nothing of it is ever written back (status writes
// carry status only), and neither it nor p is ever changed.
func ShareTarget(t *cqv1.QuotaTarget, p *Quota) {
	if t == nil || p == nil {
		return
	}
	t.PodNames, t.ContainerNames, t.PodSelector = p.PodNames, p.ContainerNames, SharedSelector(p.PodSelector)
}

// SharedSelector is the label selector whose requirements are s's own (nil for nil: s
// selects everything), for the manager's cache to keep in place of the one written; it
// parses to s again. Its labels are requirements In with one value, as s holds them.
func SharedSelector(s *Selector) *cqv1.LabelSelector {
	if s == nil {
		return nil
	}
	return &cqv1.LabelSelector{MatchExpressions: s.reqs}
}
