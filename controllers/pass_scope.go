package controllers

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	"github.com/checkpoint-quota/checkpoint-quota/internal/policy"
	"github.com/checkpoint-quota/checkpoint-quota/internal/quota"
)

// passScope is what one pass of the pruning controller learns, phase by phase: load reads
// it from the cache, remember completes it with what the reconciler keeps between passes,
// and the computation, the node rules, publish and prune read it.
type passScope struct {
	now time.Time
	// full says that the pass reads every namespace; otherwise it reads those in read.
	full bool
	read map[string]bool
	// fresh are the parts the pass reads, by key (parts.go), to compute again.
	fresh map[string]*nsPart
	// live are the Checkpoints that count, aligned with archives; set by compute.
	live []liveCheckpoint
	// present holds every Checkpoint of the namespaces read, true for a terminating one.
	present map[types.UID]bool
	// releases is the view store's count of releases when the pass began reading.
	releases uint64
	// objects and policies are the quotas that parse, aligned with governance.Quotas, sorted.
	objects  []client.Object
	policies []*policy.Quota
	// invalid are quotas with a value that does not parse; unparsed their references, in
	// order.
	invalid     map[policy.Ref]error
	unparsed    []policy.Ref
	generations map[policy.Ref]int64
	// quotas fingerprints the quotas the pass reads; coupled says that a limit of theirs
	// counts several namespaces together (quota.Coupled).
	quotas  string
	coupled bool
	// archives and governance cover every archive on a node: the parts read now and those kept.
	archives   []*quota.Archive
	governance *quota.Governance
	// remote is the remote tier (prune_remote.go): the twins of the quotas that set
	// remoteLimits, which quota of policies each is, and their computation over the archives
	// in CheckpointStores, whose Checkpoints follow those on nodes in live from remoteStart.
	remote   remoteScope
	nsLabels map[string]map[string]string
	pods     map[types.NamespacedName]*metav1.PartialObjectMetadata
	// storeChecks are the nodes' last checks of the stores (CheckpointNode status.stores),
	// by node and store; read with the node rules, which alone act on them.
	storeChecks map[string]map[string]cqv1.NodeStoreCheck
	// refused is set when the pass kept archives it decided to prune because what it decided
	// with changed since the read: a Checkpoint (its delete was refused), a quota, a release.
	refused atomic.Bool
}

// liveCheckpoint is a cached Checkpoint that counts, as the pass read it: the cache's own
// object, read only. Parts keep it between passes: a pointer, where a copy of the fields
// that delete, name and size it was kept in every part and copied again into each pass's
// list. An object the cache has replaced since stays alive until
// its namespace is computed again; the pass deletes on the resourceVersion it read.
type liveCheckpoint struct {
	*cqv1.Checkpoint
}

func liveOf(c *cqv1.Checkpoint) liveCheckpoint {
	return liveCheckpoint{c}
}

// Key is the Checkpoint's namespace and name.
func (c liveCheckpoint) Key() types.NamespacedName {
	return types.NamespacedName{Namespace: c.Namespace, Name: c.Name}
}

// podState is what the cache shows of an archive's pod.
type podState uint8

const (
	// podUnknown: the archive names no pod UID, so it is never an orphan.
	podUnknown podState = iota
	// podPresent: the pod is there with the archive's UID, or the cache could not answer.
	podPresent
	// podGone: the synced cache holds no pod of that name, or one with another UID.
	podGone
)

// load reads what a pass needs from the cache and changes nothing: what the reconciler
// remembers between passes is updated by remember and compute. It reads every quota, and
// the Checkpoints of the namespaces that changed (changed, everything: ViewStore.takeChanged)
// or whose computation expires; all of them when the quotas changed, a limit couples
// namespaces, the reconciler keeps no parts or the resync period is over. Objects are
// shared with the cache and must not be modified.
func (r *PruneReconciler) load(ctx context.Context, now time.Time, changed map[string]bool, everything bool) (*passScope, error) {
	s := &passScope{now: now, releases: r.Views.releases(), invalid: map[policy.Ref]error{},
		generations: map[policy.Ref]int64{}, pods: map[types.NamespacedName]*metav1.PartialObjectMetadata{},
		read: map[string]bool{}, fresh: map[string]*nsPart{}, present: map[types.UID]bool{},
		nsLabels: map[string]map[string]string{}}
	if err := r.loadQuotas(ctx, s); err != nil {
		return nil, err
	}
	s.full = everything || !r.parts.current(s, r.ResyncPeriod)
	cs := checkpointStore{client: r.Client, store: r.checkpoints}
	var cps []*cqv1.Checkpoint
	if s.full {
		var err error
		if cps, err = cs.all(ctx); err != nil {
			return nil, fmt.Errorf("listing Checkpoints: %w", err)
		}
	} else {
		for ns := range changed {
			s.read[ns] = true
		}
		for key, p := range r.parts.byKey {
			if next := p.nextExpiry(); !next.IsZero() && !now.Before(next) {
				s.read[key] = true
			}
		}
		for ns := range s.read {
			var err error
			if cps, err = cs.namespace(ctx, ns, cps); err != nil {
				return nil, fmt.Errorf("listing the Checkpoints of namespace %q: %w", ns, err)
			}
		}
	}
	partKey := func(c *cqv1.Checkpoint) string { return s.partKey(c.PodNamespace()) }
	// Each part's slices are allocated once, at most at its size.
	sizes := map[string]int{}
	// A copy on another node is one only while its stored Checkpoint is (in the same part):
	// once that is deleted, the copy holds the archive's last bytes.
	var stored map[types.UID]bool
	for _, c := range cps {
		sizes[partKey(c)]++
		if c.IsOffloaded() && c.DeletionTimestamp.IsZero() {
			if stored == nil {
				stored = map[types.UID]bool{}
			}
			stored[c.UID] = true
		}
	}
	for _, c := range cps {
		s.present[c.UID] = !c.DeletionTimestamp.IsZero()
		key := partKey(c)
		p := s.fresh[key]
		if p == nil {
			n := sizes[key]
			p = &nsPart{live: make([]liveCheckpoint, 0, n), podStates: make([]podState, 0, n), archives: make([]quota.Archive, 0, n)}
			s.fresh[key] = p
		}
		// A Checkpoint being deleted that a finalizer holds counts, never pruned again, until
		// the agent says its file is gone (ArchiveRemoved): usage counts files, not live
		// objects. One this manager deleted is hidden until the cache shows its deletion.
		// A Checkpoint without spec.archive, which an agent before v0.3 published, is left
		// out until its agent adopts it: without its time it would be taken for the newest
		// and spare an older archive.
		if c.IsArchiveRemoved() || (c.DeletionTimestamp.IsZero() && r.Views.isGone(c.UID)) || c.Spec.Archive == nil {
			continue
		}
		// An offloaded archive counts in the remote tier, until its Checkpoint is deleted (its
		// agent then deletes the object). It is no longer on its node, unless a copy was
		// fetched back there: the copy counts on its node too (quota.Archive.Copy).
		if c.IsOffloaded() {
			if c.DeletionTimestamp.IsZero() {
				r.addStored(ctx, s, p, c)
			}
			if !c.IsFetchedCopy() {
				continue
			}
		}
		r.learnNamespace(ctx, s, c)
		a, _ := quota.ArchiveOf(c) // spec.archive is set: checked above
		if of := c.Spec.Archive.CopyOf; of != nil && !stored[of.UID] {
			a.Copy = false
		}
		p.live = append(p.live, liveOf(c))
		p.podStates = append(p.podStates, r.podState(ctx, s, c))
		p.archives = append(p.archives, a)
	}
	// A namespace read that holds no Checkpoint any more has an empty part, which compute drops.
	for ns := range s.read {
		if s.fresh[ns] == nil {
			s.fresh[ns] = &nsPart{}
		}
	}
	return s, nil
}

// loadQuotas reads both kinds of quota, in the order of their names, so that a quota keeps
// its index from one pass to the next while the quotas stay the same.
func (r *PruneReconciler) loadQuotas(ctx context.Context, s *passScope) error {
	cqs, ccqs, err := r.listQuotas(ctx)
	if err != nil {
		return err
	}
	if r.Policies == nil {
		r.Policies = policy.NewParsed()
	}
	for _, cq := range cqs {
		ref := policy.Ref{Kind: policy.KindQuota, Namespace: cq.Namespace, Name: cq.Name}
		q, err := r.Policies.Quota(cq, func() (*policy.Quota, error) { return policy.FromCheckpointQuota(cq) })
		s.addQuota(cq, ref, q, err)
	}
	for _, ccq := range ccqs {
		ref := policy.Ref{Kind: policy.KindClusterQuota, Name: ccq.Name}
		q, err := r.Policies.Quota(ccq, func() (*policy.Quota, error) { return policy.FromClusterQuota(ccq) })
		s.addQuota(ccq, ref, q, err)
	}
	// The policies of quotas gone go; admission parses again one that it reads meanwhile.
	listed := make(map[types.UID]bool, len(cqs)+len(ccqs))
	for _, q := range cqs {
		listed[q.UID] = true
	}
	for _, q := range ccqs {
		listed[q.UID] = true
	}
	r.Policies.Keep(func(uid types.UID) bool { return listed[uid] })
	s.remote.policies, s.remote.of = quota.Remote(s.policies)
	s.quotas, s.coupled = quotasPrint(cqs, ccqs), quota.Coupled(s.policies) || quota.Coupled(s.remote.policies)
	s.unparsed = slices.SortedFunc(maps.Keys(s.invalid), func(a, b policy.Ref) int { return strings.Compare(a.String(), b.String()) })
	return nil
}

// remember updates, from what the pass read, what the reconciler keeps between passes: the
// orphan clocks, which give each orphan the time this manager first saw it orphaned, the
// labels of gone pods, kept while an archive is theirs, and the view store's deleted set,
// whose entries go once the cache shows the deletion.
func (r *PruneReconciler) remember(s *passScope) {
	var pods map[types.UID]bool // the pods of every archive, read by a full pass
	if s.full {
		pods = map[types.UID]bool{}
	}
	for _, p := range s.fresh {
		r.rememberOrphans(s, pods, p.live, p.podStates, p.archives)
		r.rememberOrphans(s, pods, p.stored, p.storedPodStates, p.storedArchives)
	}
	if s.full {
		r.orphans.keepOnly(func(uid types.UID) bool { _, ok := s.present[uid]; return ok })
		r.gone.keepOnly(func(uid types.UID) bool { return pods[uid] })
	}
	r.Views.forgetGone(func(ns string) bool { return s.full || s.read[ns] },
		func(uid types.UID) bool { terminating, ok := s.present[uid]; return ok && !terminating })
}

// rememberOrphans times the orphans among archives, from when this manager first saw
// each one's pod gone: the clock is the Checkpoint's, so an archive offloaded meanwhile
// keeps its time (docs/offload.md, "Orphans in the store"). pods, when not nil, collects
// their pods.
func (r *PruneReconciler) rememberOrphans(s *passScope, pods map[types.UID]bool, live []liveCheckpoint, states []podState, archives []quota.Archive) {
	for i, c := range live {
		if pods != nil {
			pods[types.UID(archives[i].PodUID)] = true
		}
		switch states[i] {
		case podPresent:
			r.orphans.forget(c.UID)
		case podGone:
			archives[i].OrphanSince = r.orphans.since(c.UID, s.now)
		}
	}
}

// learnNamespace reads the labels of the namespace that c counts against, once per pass.
// An orphan's namespace was deleted: one of that name now is another namespace.
func (r *PruneReconciler) learnNamespace(ctx context.Context, s *passScope, c *cqv1.Checkpoint) {
	ns := c.PodNamespace()
	if _, ok := s.nsLabels[ns]; !ok && c.Spec.Archive.OrphanOf == "" {
		if labels, ok := r.namespaceLabels(ctx, ns); ok {
			s.nsLabels[ns] = labels
		}
	}
}

func (s *passScope) addQuota(obj client.Object, ref policy.Ref, q *policy.Quota, err error) {
	s.generations[ref] = obj.GetGeneration()
	if err != nil {
		s.invalid[ref] = err
		return
	}
	s.objects = append(s.objects, obj)
	s.policies = append(s.policies, q)
}

func (r *PruneReconciler) namespaceLabels(ctx context.Context, name string) (map[string]string, bool) {
	ns := &metav1.PartialObjectMetadata{}
	ns.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Namespace"))
	if err := r.Client.Get(ctx, client.ObjectKey{Name: name}, ns, client.UnsafeDisableDeepCopy); err != nil {
		return nil, false
	}
	if ns.Labels == nil {
		return map[string]string{}, true
	}
	return ns.Labels, true
}

// pod returns the cached metadata of a pod, nil when the cache does not hold it; the
// error is set when the cache could not answer.
func (r *PruneReconciler) pod(ctx context.Context, s *passScope, key types.NamespacedName) (*metav1.PartialObjectMetadata, error) {
	if p, ok := s.pods[key]; ok {
		return p, nil
	}
	p, err := r.cachedPod(ctx, key)
	if err != nil {
		return nil, err
	}
	s.pods[key] = p
	return p, nil
}

// cachedPod reads a pod's metadata from the cache: the cache's own object where the
// reconciler has the informer's store, nil when the cache does not hold it.
func (r *PruneReconciler) cachedPod(ctx context.Context, key types.NamespacedName) (*metav1.PartialObjectMetadata, error) {
	if r.pods != nil {
		item, found, err := r.pods.GetByKey(key.String())
		if err != nil || !found {
			return nil, err
		}
		p, ok := item.(*metav1.PartialObjectMetadata)
		if !ok {
			return nil, fmt.Errorf("the cache holds a %T for pod %s", item, key)
		}
		return p, nil
	}
	p := metadataOf("Pod")
	switch err := r.Client.Get(ctx, key, p, client.UnsafeDisableDeepCopy); {
	case apierrors.IsNotFound(err):
		return nil, nil
	case err != nil:
		return nil, err
	}
	return p, nil
}

// podState says whether the synced pod cache shows the archive's pod gone. An archive
// without a pod UID is never an orphan, but its pod is still looked up, so that it gets
// the labels of the pod of its name (quota.PodLabelsFrom); a cache that cannot answer
// keeps the archive.
func (r *PruneReconciler) podState(ctx context.Context, s *passScope, c *cqv1.Checkpoint) podState {
	a := c.Spec.Archive
	if a.PodName == "" {
		return podUnknown
	}
	p, err := r.pod(ctx, s, types.NamespacedName{Namespace: c.PodNamespace(), Name: a.PodName})
	if a.PodUID == "" {
		return podUnknown
	}
	if err != nil || (p != nil && p.UID == a.PodUID) {
		return podPresent
	}
	return podGone
}
