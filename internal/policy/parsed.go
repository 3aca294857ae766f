package policy

import (
	"sync"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Parsed holds the policy of each quota, parsed once for each generation of the quota and
// shared by everything in the manager that reads it: the pruning pass and admission. A
// policy follows the spec alone, and a spec change raises the generation, so a policy is
// never changed once parsed and its readers share one copy. Admission parsed every other
// quota of its scope on each request (its selectors' syntax checked by regular
// expressions: most of a cluster quota's admission time), and the manager kept a second
// copy of each policy beside the pass's (issue 29).
//
// A nil *Parsed parses every time.
type Parsed struct {
	mu    sync.Mutex
	byUID map[types.UID]parsedQuota
}

// parsedQuota is a quota's policy, or why it does not parse, for one generation.
type parsedQuota struct {
	generation int64
	quota      *Quota
	err        error
}

// NewParsed returns an empty Parsed.
func NewParsed() *Parsed {
	return &Parsed{byUID: map[types.UID]parsedQuota{}}
}

// Quota is the policy of the quota obj: the one parsed before while its UID and generation
// stay, else what parse gives, which is kept for the next reader.
func (p *Parsed) Quota(obj metav1.Object, parse func() (*Quota, error)) (*Quota, error) {
	if p == nil {
		return parse()
	}
	p.mu.Lock()
	pq, ok := p.byUID[obj.GetUID()]
	p.mu.Unlock()
	if ok && pq.generation == obj.GetGeneration() {
		return pq.quota, pq.err
	}
	pq = parsedQuota{generation: obj.GetGeneration()}
	pq.quota, pq.err = parse()
	p.mu.Lock()
	p.byUID[obj.GetUID()] = pq
	p.mu.Unlock()
	return pq.quota, pq.err
}

// Forget drops the policy of a deleted quota.
func (p *Parsed) Forget(uid types.UID) {
	if p == nil {
		return
	}
	p.mu.Lock()
	delete(p.byUID, uid)
	p.mu.Unlock()
}

// Keep drops the policies of every quota that keep says is gone.
func (p *Parsed) Keep(keep func(types.UID) bool) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for uid := range p.byUID {
		if !keep(uid) {
			delete(p.byUID, uid)
		}
	}
}

// Len is the number of policies held.
func (p *Parsed) Len() int {
	if p == nil {
		return 0
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.byUID)
}
