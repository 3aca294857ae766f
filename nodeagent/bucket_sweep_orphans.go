package nodeagent

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	"github.com/checkpoint-quota/checkpoint-quota/internal/objstore"
	"github.com/checkpoint-quota/checkpoint-quota/internal/quota"
)

// The stored archives whose Checkpoint went with its namespace when no agent could see it
// go: the node that stored them is gone for good, its agent and stored.log with it. The
// sweeper of the store publishes each again as an orphan of the deleted namespace, as the
// agent that stored it would have (orphan_stored.go), from what the object records of its
// Checkpoint's spec.archive (objstore.MetaArchive); what records nothing is kept and
// reported (docs/offload.md, "Orphans in the store").

// ReasonUnpublishedArchives is the reason of the Warning event on a CheckpointStore whose
// bucket holds archives of deleted namespaces that no Checkpoint stands for and that cannot
// be published again.
const ReasonUnpublishedArchives = "UnpublishedArchives"

// Why a taken object is kept without a Checkpoint: the label values of unpublishedArchives.
const (
	// unpublishedNoRecord: the object records no spec.archive (an older agent stored it).
	unpublishedNoRecord = "noRecord"
	// unpublishedNodeRegistered: the node that stored it is still registered, so its agent,
	// which knows it from stored.log, publishes it.
	unpublishedNodeRegistered = "nodeRegistered"
)

var unpublishedArchives = prometheus.NewGaugeVec(prometheus.GaugeOpts{
	Name: "checkpointquota_node_unpublished_stored_archives",
	Help: "Objects of deleted namespaces' archives in a CheckpointStore that no Checkpoint stands for, kept, as the store's sweeper last counted them, by why they are not published again.",
}, []string{"store", "reason"})

func init() { metrics.Registry.MustRegister(unpublishedArchives) }

// sweepCounts is what one sweep of a store did.
type sweepCounts struct {
	deleted, kept, published int
	// waiting are taken objects whose node is still registered.
	waiting int
	// unrecorded are the keys of taken objects that record no spec.archive.
	unrecorded []string
}

// namespaceOf says whether namespace ns is gone or being deleted, and when it was created,
// read live.
func (o *Offloader) namespaceOf(ctx context.Context, ns string) (gone bool, created time.Time, err error) {
	var n corev1.Namespace
	switch err := o.APIReader.Get(ctx, client.ObjectKey{Name: ns}, &n); {
	case apierrors.IsNotFound(err):
		return true, time.Time{}, nil
	case err != nil:
		return false, time.Time{}, fmt.Errorf("reading namespace %s: %w", ns, err)
	}
	return !n.DeletionTimestamp.IsZero(), n.CreationTimestamp.Time, nil
}

// adopt deals with the objects of namespace ns whose Checkpoint went with the namespace
// (taken): it reads each (its owner and record), then the namespace's Checkpoints again, so
// that an orphan that another agent published and gave an object to meanwhile is seen
// (the object's HEAD came first). Then, for each object no Checkpoint stands for:
//   - given to an orphan (its owner is not its key's UID), or stored as an orphan's archive
//     (its record has orphanOf): that orphan lived in the agent's namespace, where only a
//     person or a rule deletes, so the object goes, once its Checkpoint, looked up by
//     name, is not there;
//   - recording no spec.archive: kept, and reported;
//   - of a node still registered: kept, its agent publishes it (stored.log);
//   - else published again as an orphan of ns (publishOrphan), the object given to it.
func (b bucketSweep) adopt(ctx context.Context, st *cqv1.CheckpointStore, s *objstore.Store, ns string, taken []sweepCandidate, n *sweepCounts) error {
	log := logf.FromContext(ctx).WithValues("store", st.Name)
	read := make([]objstore.Described, 0, len(taken))
	for _, c := range taken {
		d, err := s.Describe(ctx, c.key)
		switch {
		case objstore.IsNotFound(err):
			continue
		case err != nil:
			return err
		}
		read = append(read, d)
	}
	have, err := b.checkpointsOf(ctx, ns)
	if err != nil {
		return err
	}
	registered := map[string]bool{}
	for _, d := range read {
		_, keyUID, _ := objstore.ArchiveOfKey(st.Spec.Prefix, d.Key)
		switch {
		case have.uids[d.Owner] || have.uids[keyUID]:
			continue
		case d.Owner == "":
			continue // no agent's object; kept, as the sweep keeps it in any namespace
		case d.Archive == nil:
			n.kept++
			n.unrecorded = append(n.unrecorded, d.Key)
			continue
		case d.Owner != keyUID || d.Archive.OrphanOf != "":
			if err := b.deleteOrphans(ctx, s, d); err != nil {
				return err
			}
			n.deleted++
			continue
		}
		up, err := b.nodeRegistered(ctx, d.Archive.NodeName, registered)
		if err != nil {
			return err
		}
		if up {
			n.kept++
			n.waiting++
			continue
		}
		a := d.Archive.DeepCopy()
		a.OrphanOf, a.Size = ns, quota.Bytes(a.SizeBytes)
		loc := cqv1.ArchiveLocation{Store: st.Name, Bucket: st.Spec.Bucket, Key: d.Key, SHA256: d.SHA256,
			StoredTime: metav1.NewTime(d.Written.UTC().Truncate(time.Second))}
		orphan, err := b.o.publishOrphan(ctx, a, false, loc, keyUID)
		if err != nil {
			// Kept: the next sweep tries again.
			n.kept++
			log.Error(err, "Could not publish the stored archive of a deleted namespace again as an orphan", "key", d.Key)
			continue
		}
		n.published++
		log.Info("Published the stored archive of a deleted namespace again as an orphan, from its object's record; its node's agent is gone",
			"key", d.Key, "orphan", client.ObjectKeyFromObject(orphan), "node", a.NodeName)
	}
	return nil
}

// deleteOrphans deletes the object d of an orphan that is gone, after a live lookup of the
// orphan by the name every agent gives it: one that is there with the object's owner UID
// keeps it (its label, by which checkpointsOf found none, may have been changed).
func (b bucketSweep) deleteOrphans(ctx context.Context, s *objstore.Store, d objstore.Described) error {
	a := d.Archive
	key := client.ObjectKey{Namespace: b.o.Config.OrphanNamespace, Name: ObjectName(a.NodeName, a.Directory, a.FileName)}
	c := &metav1.PartialObjectMetadata{}
	c.SetGroupVersionKind(cqv1.GroupVersion.WithKind("Checkpoint"))
	switch err := b.o.APIReader.Get(ctx, key, c); {
	case err == nil && c.UID == d.Owner:
		return nil
	case err != nil && !apierrors.IsNotFound(err):
		return err
	}
	switch err := s.Delete(ctx, d.Key, d.Owner); {
	case errors.Is(err, objstore.ErrNotOurs):
		return nil
	case err != nil:
		return err
	}
	logf.FromContext(ctx).Info("Deleted the stored archive of a deleted orphan", "key", d.Key, "uid", d.Owner, "orphan", key)
	return nil
}

// nodeRegistered says whether node has a Node object, read live once per sweep of a
// namespace (memo).
func (b bucketSweep) nodeRegistered(ctx context.Context, node string, memo map[string]bool) (bool, error) {
	if up, ok := memo[node]; ok {
		return up, nil
	}
	n := &metav1.PartialObjectMetadata{}
	n.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Node"))
	err := b.o.APIReader.Get(ctx, client.ObjectKey{Name: node}, n)
	if err != nil && !apierrors.IsNotFound(err) {
		return false, fmt.Errorf("reading node %s: %w", node, err)
	}
	memo[node] = err == nil
	return err == nil, nil
}

// report sets the store's unpublished gauge from a whole sweep, and, while some objects
// record nothing to publish them from, emits a Warning event on the store naming a few.
func (b bucketSweep) report(ctx context.Context, st *cqv1.CheckpointStore, n sweepCounts, whole bool) {
	if !whole {
		return // a partial count would say fewer than there are
	}
	unpublishedArchives.WithLabelValues(st.Name, unpublishedNoRecord).Set(float64(len(n.unrecorded)))
	unpublishedArchives.WithLabelValues(st.Name, unpublishedNodeRegistered).Set(float64(n.waiting))
	if len(n.unrecorded) == 0 {
		return
	}
	some := n.unrecorded[:min(len(n.unrecorded), 3)]
	b.o.Recorder.Eventf(st, nil, corev1.EventTypeWarning, ReasonUnpublishedArchives, "Sweep",
		"%d stored archives of deleted namespaces have no Checkpoint and record nothing to publish one from (stored by an older agent, or too long for S3's metadata, and their node is gone): kept in bucket %s for a person to delete, such as %s",
		len(n.unrecorded), st.Spec.Bucket, strings.Join(some, ", "))
	logf.FromContext(ctx).Info("Kept stored archives of deleted namespaces that cannot be published again", "store", st.Name, "count", len(n.unrecorded), "keys", some)
}
