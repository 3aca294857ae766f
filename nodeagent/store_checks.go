package nodeagent

import (
	"context"
	"sort"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
)

// DefaultStoreCheckInterval is how often the agent checks that it can reach and write each
// CheckpointStore: one small object written and removed per store and interval. A store
// the agent has not checked yet, one whose spec changed, one that failed its last check and
// one an upload just failed to reach are checked within storeLookInterval.
const (
	DefaultStoreCheckInterval = 5 * time.Minute
	storeLookInterval         = 10 * time.Second
)

// storeChecker checks each CheckpointStore from this node and keeps the answers for the
// node's CheckpointNode (status.stores), from which the manager writes each store's
// Reachable and Writable conditions.
type storeChecker struct {
	cache  client.Reader
	stores *storeClients
	cfg    Config

	mu      sync.Mutex
	results map[string]storeCheck
	back    func(store string)
}

// storeCheck is the last check of a store, and which version of the store it checked.
type storeCheck struct {
	cqv1.NodeStoreCheck
	uid        types.UID
	generation int64
	// stale says that an upload failed since: the store is checked again at once.
	stale bool
}

func newStoreChecker(cache client.Reader, stores *storeClients, cfg Config) *storeChecker {
	return &storeChecker{cache: cache, stores: stores, cfg: cfg, results: map[string]storeCheck{}}
}

func (s *storeChecker) NeedLeaderElection() bool { return false }

// Start checks every store at once, then checks a store again when its last check is
// older than the interval or when it is new.
func (s *storeChecker) Start(ctx context.Context) error {
	t := s.cfg.Clock.NewTicker(storeLookInterval)
	defer t.Stop()
	for {
		s.checkDue(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C():
		}
	}
}

func (s *storeChecker) checkDue(ctx context.Context) {
	var list cqv1.CheckpointStoreList
	if err := s.cache.List(ctx, &list); err != nil {
		logf.FromContext(ctx).Error(err, "Could not list the CheckpointStores to check them")
		return
	}
	seen := map[string]bool{}
	for i := range list.Items {
		st := &list.Items[i]
		seen[st.Name] = true
		s.mu.Lock()
		last, ok := s.results[st.Name]
		s.mu.Unlock()
		// A store that failed its check is checked again at every look: the nodes' rules act
		// on a failed check (docs/offload.md), so it must not outlive the failure long.
		if ok && last.Writable && !last.stale && last.uid == st.UID && last.generation == st.Generation &&
			s.cfg.Clock.Since(last.CheckTime.Time) < s.cfg.StoreCheckInterval {
			continue
		}
		s.record(storeCheck{NodeStoreCheck: s.check(ctx, st.Name), uid: st.UID, generation: st.Generation})
	}
	s.mu.Lock()
	for name := range s.results {
		if !seen[name] {
			delete(s.results, name)
		}
	}
	s.mu.Unlock()
}

func (s *storeChecker) check(ctx context.Context, name string) cqv1.NodeStoreCheck {
	res := cqv1.NodeStoreCheck{Store: name, CheckTime: metav1.NewTime(s.cfg.Clock.Now().UTC().Truncate(time.Second))}
	_, client, err := s.stores.get(ctx, s.cache, name)
	if err != nil {
		res.Message = eventNote(err)
		return res
	}
	checkCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	res.Reachable, res.Writable, res.Message = client.Check(checkCtx, s.cfg.NodeName)
	if len(res.Message) > 1000 {
		res.Message = res.Message[:1000]
	}
	return res
}

func (s *storeChecker) record(r storeCheck) {
	s.mu.Lock()
	prev, had := s.results[r.Store]
	s.results[r.Store] = r
	back := s.back
	s.mu.Unlock()
	if had && !prev.Writable && r.Writable && back != nil {
		back(r.Store)
	}
}

// onBack sets what is called when a store that failed its check passes it again: the
// uploads that failed are tried at once, not at the end of their backoff.
func (s *storeChecker) onBack(f func(store string)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.back = f
}

// uploadFailed has the store checked again on the next look: an upload that fails may be
// the first sign that the store is down, which the store's status then says within
// storeLookInterval rather than at the next periodic check.
func (s *storeChecker) uploadFailed(name string) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if r, ok := s.results[name]; ok {
		r.stale = true
		s.results[name] = r
	}
}

// snapshot returns the last check of each store, by store name.
func (s *storeChecker) snapshot() []cqv1.NodeStoreCheck {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]cqv1.NodeStoreCheck, 0, len(s.results))
	for _, r := range s.results {
		out = append(out, r.NodeStoreCheck)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Store < out[j].Store })
	return out
}
