package nodeagent

import (
	"context"
	"fmt"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
)

// The archives of a deleted namespace that are in a store. Deleting a namespace deletes its
// Checkpoints; on a node, the agent publishes each archive again in its own namespace as an
// orphan of the deleted one (PRODUCT.md: a deleted namespace's archives become orphans,
// still visible and manageable). A stored archive's Checkpoint goes the same way: instead
// of deleting the object, the agent that stored it publishes the Checkpoint again from what
// stored.log kept of its spec, writes the same location, and then gives the object to the
// new Checkpoint (objstore.Store.Rebind: a copy in place with the new UID), in that order,
// so that a crash at any step is taken up again from stored.log, whose entry for the
// deleted Checkpoint goes last (docs/offload.md, "Orphans in the store").

// namespaceGone says whether namespace ns is gone or being deleted, read live.
func (o *Offloader) namespaceGone(ctx context.Context, ns string) (bool, error) {
	gone, _, err := o.namespaceOf(ctx, ns)
	return gone, err
}

// keepAsOrphan publishes the deleted Checkpoint key of a deleted namespace again in the
// agent's namespace, as an orphan whose archive is in the store.
func (o *Offloader) keepAsOrphan(ctx context.Context, key types.NamespacedName, so storedObject) error {
	log := logf.FromContext(ctx).WithValues("checkpoint", key, "store", so.location.Store, "key", so.location.Key)
	if so.archive == nil {
		// Recorded before the agent kept the spec: nothing to publish it from here. The
		// object stays; the bucket sweep publishes it from its metadata if it holds the
		// archive's record, and reports it otherwise (bucket_sweep_orphans.go).
		log.Info("Kept the stored archive of a deleted namespace's Checkpoint, which cannot be published again from stored.log (recorded by an older agent)")
		return nil
	}
	a := so.archive.DeepCopy()
	if a.OrphanOf == "" {
		a.OrphanOf = key.Namespace
	}
	orphan, err := o.publishOrphan(ctx, a, so.pinned, so.location, so.uid)
	if err != nil {
		return err
	}
	o.remember(orphan)
	o.mu.Lock()
	delete(o.stored, key)
	o.storedChanged(key)
	o.mu.Unlock()
	log.Info("Published the stored archive of a deleted namespace again as an orphan", "orphan", client.ObjectKeyFromObject(orphan))
	return nil
}

// publishOrphan publishes the stored archive a (whose OrphanOf is set) in the agent's
// namespace, writes loc as its location, and gives the object from the Checkpoint from to
// it, in that order. The orphan's name is the one its node's agent gives the file
// (ObjectName), so every agent that publishes the same archive publishes one Checkpoint:
// whoever comes second finds it (AlreadyExists), checks it stands for the same archive and
// object, and finishes what is left; each step is idempotent.
func (o *Offloader) publishOrphan(ctx context.Context, a *cqv1.ArchiveSource, pinned bool, loc cqv1.ArchiveLocation, from types.UID) (*cqv1.Checkpoint, error) {
	k := fileKey{Dir: a.Directory, Name: a.FileName}
	o.fromStore.add(k.Path())
	defer o.fromStore.remove(k.Path())
	want := &cqv1.Checkpoint{
		ObjectMeta: metav1.ObjectMeta{Name: ObjectName(a.NodeName, a.Directory, a.FileName), Namespace: o.Config.OrphanNamespace,
			Labels: map[string]string{cqv1.LabelOrphanOf: a.OrphanOf}},
		Spec: cqv1.CheckpointSpec{Pinned: pinned, Archive: a},
	}
	orphan := want.DeepCopy()
	switch err := o.Client.Create(ctx, orphan); {
	case apierrors.IsAlreadyExists(err):
		// Published by an earlier try, or by another agent: the same node, directory and file name.
		if err := o.APIReader.Get(ctx, client.ObjectKeyFromObject(want), orphan); err != nil {
			return nil, err
		}
		if orphan.Spec.Archive == nil || orphan.Spec.Archive.FileName != a.FileName || orphan.Spec.Archive.NodeName != a.NodeName ||
			(orphan.Status.Location != nil && orphan.Status.Location.Key != loc.Key) {
			return nil, fmt.Errorf("publishing the stored archive %s as an orphan: Checkpoint %s/%s stands for another archive", loc.Key, want.Namespace, want.Name)
		}
	case err != nil:
		return nil, fmt.Errorf("publishing the stored archive %s, whose namespace %s is deleted, in namespace %s: %w", loc.Key, a.OrphanOf, want.Namespace, err)
	}
	_, s, err := o.stores.get(ctx, o.Client, loc.Store)
	if err != nil {
		return nil, err
	}
	if orphan.Status.Location == nil {
		if loc.SHA256 == "" || loc.StoredTime.IsZero() {
			// An entry that stored.log gave back after a restart holds the object's key
			// only; a location needs the SHA-256 and the time, which the object has.
			d, err := s.Describe(ctx, loc.Key)
			if err != nil {
				return nil, err
			}
			loc.SHA256, loc.StoredTime = d.SHA256, metav1.NewTime(d.Written.UTC().Truncate(time.Second))
		}
		patch := client.MergeFromWithOptions(orphan.DeepCopy(), client.MergeFromWithOptimisticLock{})
		orphan.Status.Location = &loc
		if err := o.Client.Status().Patch(ctx, orphan, patch); err != nil {
			return nil, fmt.Errorf("recording where the orphan %s/%s is stored: %w", orphan.Namespace, orphan.Name, err)
		}
	}
	if err := s.Rebind(ctx, loc.Key, from, orphan.UID); err != nil {
		return nil, err
	}
	return orphan, nil
}

// pathSet is a set of archive paths, shared by the agent's reconcilers.
type pathSet struct {
	mu    sync.Mutex
	paths map[string]int
}

func newPathSet() *pathSet { return &pathSet{paths: map[string]int{}} }

func (p *pathSet) add(path string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.paths[path]++
}

func (p *pathSet) remove(path string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.paths[path]--; p.paths[path] <= 0 {
		delete(p.paths, path)
	}
}

func (p *pathSet) has(path string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.paths[path] > 0
}
