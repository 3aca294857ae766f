package nodeagent

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	"github.com/checkpoint-quota/checkpoint-quota/internal/objstore"
)

// DefaultBucketSweepInterval is how often one agent per CheckpointStore sweeps its bucket.
const DefaultBucketSweepInterval = time.Hour

// +kubebuilder:rbac:groups=checkpointquota.dev,resources=checkpointnodes,verbs=list

// bucketSweep deletes the objects in a store that no Checkpoint stands for: those of
// Checkpoints deleted when no agent could see it go, above all those of a node gone for
// good, whose agent and stored.log went with it (docs/offload.md, "The bucket sweep"). One
// agent sweeps each store: the first node by name whose check of the store could write
// lately (sweeperOf), so that a thousand nodes do not list one bucket a thousand times.
type bucketSweep struct {
	o *Offloader
}

func (b bucketSweep) NeedLeaderElection() bool { return false }

func (b bucketSweep) Start(ctx context.Context) error {
	cfg := b.o.Config
	if cfg.BucketSweepInterval < 0 {
		return nil
	}
	t := cfg.Clock.NewTicker(cfg.BucketSweepInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C():
		}
		b.sweepAll(ctx)
	}
}

// sweepAll sweeps each store this node is the sweeper of.
func (b bucketSweep) sweepAll(ctx context.Context) {
	log := logf.FromContext(ctx).WithName("bucket-sweep")
	o := b.o
	var stores cqv1.CheckpointStoreList
	if err := o.Client.List(ctx, &stores); err != nil {
		log.Error(err, "Could not list the CheckpointStores to sweep them")
		return
	}
	if len(stores.Items) == 0 {
		return
	}
	var nodes cqv1.CheckpointNodeList
	if err := o.APIReader.List(ctx, &nodes); err != nil {
		log.Error(err, "Could not list the CheckpointNodes to tell which agent sweeps each store")
		return
	}
	since, err := b.crdCreated(ctx)
	if err != nil {
		log.Error(err, "Could not read when the Checkpoint CRD was created; no bucket is swept")
		return
	}
	c := o.Config
	for i := range stores.Items {
		name := stores.Items[i].Name
		if sweeperOf(nodes.Items, name, c.Clock.Now(), 3*c.StoreCheckInterval+c.NodeStatusInterval) != c.NodeName {
			// Another agent counts this store now: its count is the one to read.
			unpublishedArchives.DeletePartialMatch(prometheus.Labels{"store": name})
			continue
		}
		n, err := b.sweep(ctx, name, since)
		b.report(ctx, &stores.Items[i], n, err == nil)
		if err != nil {
			log.Error(err, "Sweeping a CheckpointStore's bucket stopped", "store", name, "deleted", n.deleted, "published", n.published)
			continue
		}
		log.Info("Swept a CheckpointStore's bucket", "store", name, "deleted", n.deleted, "kept", n.kept, "published", n.published,
			"unpublished", len(n.unrecorded), "waiting", n.waiting)
	}
}

// sweeperOf is the node whose agent sweeps store: the first by name among those whose last
// check of the store, within fresh of now, could write. "" when none could.
func sweeperOf(nodes []cqv1.CheckpointNode, store string, now time.Time, fresh time.Duration) string {
	var names []string
	for i := range nodes {
		for _, c := range nodes[i].Status.Stores {
			if c.Store == store && c.Writable && now.Sub(c.CheckTime.Time) <= fresh {
				names = append(names, nodes[i].Name)
			}
		}
	}
	if len(names) == 0 {
		return ""
	}
	return slices.Min(names)
}

// crdCreated is when the Checkpoint CRD was created: an object older than it may be one
// whose Checkpoint went with an earlier CRD (an uninstall), and is kept for a person.
func (b bucketSweep) crdCreated(ctx context.Context) (time.Time, error) {
	crd := &metav1.PartialObjectMetadata{}
	crd.SetGroupVersionKind(crdKind)
	if err := b.o.APIReader.Get(ctx, client.ObjectKey{Name: CheckpointCRD}, crd); err != nil {
		return time.Time{}, err
	}
	return crd.CreationTimestamp.Time, nil
}

// sweep deletes the objects of store that no Checkpoint has the UID of, namespace by
// namespace, but for objects older than the Checkpoint CRD and those whose Checkpoint went
// with its namespace (taken): the objects of a namespace are listed first, then its
// Checkpoints (and its orphans, in the agent's namespace), so that every object listed was
// written for a Checkpoint that existed before the Checkpoints were read. A Checkpoint that
// is still being uploaded has no object yet; one whose upload ends after the listing is not
// listed. The taken ones are published again as orphans where they can be
// (bucket_sweep_orphans.go), and kept and reported where they cannot.
func (b bucketSweep) sweep(ctx context.Context, store string, since time.Time) (n sweepCounts, err error) {
	o := b.o
	st, s, err := o.stores.get(ctx, o.Client, store)
	if err != nil {
		return n, err
	}
	var (
		ns    string
		batch []sweepCandidate
	)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		have, err := b.checkpointsOf(ctx, ns)
		if err != nil {
			return err
		}
		// A deleted namespace's stored archives become orphans, published again under a new
		// UID by the agent that stored them, or by this sweep from the object's record: what
		// is left of such a namespace is never deleted as a Checkpoint deleted by a person.
		// An object written before its namespace was created was an earlier namespace's of
		// the same name.
		gone, created, err := o.namespaceOf(ctx, ns)
		if err != nil {
			return err
		}
		var taken []sweepCandidate
		for _, c := range batch {
			switch {
			case have.has(c.uid, c.key, c.written):
				continue
			case c.written.Before(since):
				n.kept++
				continue
			case gone || c.written.Before(created):
				taken = append(taken, c)
				continue
			}
			// Delete reads the object's UID metadata first: an object that is not the
			// archive of the Checkpoint its key names (or no agent's) stays.
			switch err := s.Delete(ctx, c.key, c.uid); {
			case errors.Is(err, objstore.ErrNotOurs):
			case err != nil:
				return err
			default:
				n.deleted++
				logf.FromContext(ctx).Info("Deleted a stored archive that no Checkpoint stands for", "store", store, "key", c.key, "uid", c.uid)
			}
		}
		batch = batch[:0]
		if len(taken) > 0 {
			return b.adopt(ctx, st, s, ns, taken, &n)
		}
		return nil
	}
	var stop error
	err = s.Objects(ctx, func(obj objstore.Object) bool {
		objNS, uid, ok := objstore.ArchiveOfKey(st.Spec.Prefix, obj.Key)
		if !ok {
			return true
		}
		if objNS != ns {
			if stop = flush(); stop != nil {
				return false
			}
			ns = objNS
		}
		batch = append(batch, sweepCandidate{key: obj.Key, uid: uid, written: obj.LastModified})
		return true
	})
	if err == nil {
		err = stop
	}
	if err == nil {
		err = flush()
	}
	return n, err
}

type sweepCandidate struct {
	key     string
	uid     types.UID
	written time.Time
}

// namespaceCheckpoints are the Checkpoints of the archives of one namespace, read live:
// the UIDs of those in the namespace and of its orphans (in the agent's namespace), and the
// keys of the objects the orphans' locations name, with when each orphan was created (an
// object given to an orphan keeps the key of the Checkpoint it was stored for).
type namespaceCheckpoints struct {
	uids map[types.UID]bool
	keys map[string]time.Time
}

// has says whether a Checkpoint stands for the object at key, of the UID in the key, written
// at written. An object older than the orphan whose location names it was not given to that
// orphan yet (its publisher stopped between the location and Rebind): it is looked at
// again, and the publication finished.
func (h namespaceCheckpoints) has(uid types.UID, key string, written time.Time) bool {
	if h.uids[uid] {
		return true
	}
	created, ok := h.keys[key]
	return ok && !written.Before(created)
}

// checkpointsOf reads, live, the Checkpoints of the archives of namespace ns: those in ns
// (metadata only), and the orphans of ns in the agent's namespace.
func (b bucketSweep) checkpointsOf(ctx context.Context, ns string) (namespaceCheckpoints, error) {
	have := namespaceCheckpoints{uids: map[types.UID]bool{}, keys: map[string]time.Time{}}
	cont := ""
	for {
		list := &metav1.PartialObjectMetadataList{}
		list.SetGroupVersionKind(cqv1.GroupVersion.WithKind("CheckpointList"))
		if err := b.o.APIReader.List(ctx, list, client.InNamespace(ns), client.Limit(500), client.Continue(cont)); err != nil {
			return have, err
		}
		for i := range list.Items {
			have.uids[list.Items[i].UID] = true
		}
		if cont = list.Continue; cont == "" {
			break
		}
	}
	for {
		var list cqv1.CheckpointList
		if err := b.o.APIReader.List(ctx, &list, client.InNamespace(b.o.Config.OrphanNamespace),
			client.MatchingLabels{cqv1.LabelOrphanOf: ns}, client.Limit(500), client.Continue(cont)); err != nil {
			return have, err
		}
		for i := range list.Items {
			have.uids[list.Items[i].UID] = true
			if loc := list.Items[i].Status.Location; loc != nil {
				have.keys[loc.Key] = list.Items[i].CreationTimestamp.Time
			}
		}
		if cont = list.Continue; cont == "" {
			break
		}
	}
	return have, nil
}
