package nodeagent

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	"github.com/checkpoint-quota/checkpoint-quota/internal/archive"
)

// indexFile indexes the cached Checkpoints of this node by archive path.
const indexFile = "checkpointquota.dev/file"

// Reconciler brings the Checkpoint objects of one archive in line with the file: it is
// keyed by archive, not by object, because the file decides which object should exist
// and in which namespace.
type Reconciler struct {
	// Client reads Checkpoints from the cache of this node's objects and writes them.
	Client client.Client
	// APIReader reads directly from the apiserver: Nodes, namespaces and the CRD (so the
	// agent caches none of them), and a Checkpoint the cache no longer holds.
	APIReader client.Reader
	// Recorder emits events on Checkpoints and on the Node.
	Recorder events.EventRecorder
	Config   Config

	cache     *archive.Cache
	state     *nodeState
	records   *records
	witnesses *witnesses
	deletions *observedDeletions
	// fromStore are the archives the Offloader is publishing again from their store.
	fromStore *pathSet
	// copies are the archives fetched to this node as copies of stored ones.
	copies *copyBook
	legacy *legacyObjects
}

// Reconcile handles one archive.
func (r *Reconciler) Reconcile(ctx context.Context, k fileKey) (reconcile.Result, error) {
	ctx = logf.IntoContext(ctx, logf.FromContext(ctx).WithValues("archive", k.Path()))
	live, deleting, err := r.liveObjects(ctx, k)
	if err != nil {
		return reconcile.Result{}, err
	}
	info, err := r.lstat(k)
	if errors.Is(err, fs.ErrNotExist) {
		r.state.forget(k)
		r.cache.Forget(k.Path())
		r.deletions.forget(k.Path())
		if err := r.copies.forget(k.Path()); err != nil {
			return reconcile.Result{}, err
		}
		if err := r.markRemoved(ctx, deleting); err != nil {
			return reconcile.Result{}, err
		}
		// An offloaded archive's file is gone on purpose: its Checkpoint stays, and says
		// where the archive is now (the Offloader's). So does one that the Offloader is
		// publishing again as an orphan from its store (orphan_stored.go).
		if r.fromStore.has(k.Path()) {
			return reconcile.Result{}, nil
		}
		stillOnNode, err := r.onNode(ctx, live)
		if err != nil {
			return reconcile.Result{}, err
		}
		return reconcile.Result{}, r.release(ctx, k, stillOnNode...)
	}
	if err != nil {
		return reconcile.Result{}, err
	}
	res, cached, wait, readErr := r.read(k, info)
	if wait > 0 {
		return reconcile.Result{RequeueAfter: wait}, nil
	}
	ioErr := readErr != nil && archive.ReasonOf(readErr) == archive.ReasonIO
	if ioErr && (len(live) > 0 || r.records.get(k.Path()) != nil) {
		// The operating system's error says nothing about an archive published already: its
		// Checkpoint stays as it is, and the archive is read again with backoff.
		return reconcile.Result{}, fmt.Errorf("reading archive %s, whose Checkpoint is kept as it is: %w", k.Path(), readErr)
	}
	marker, err := readMarker(k.Path())
	if err != nil {
		return reconcile.Result{}, fmt.Errorf("reading the .keep marker of %s: %w", k.Path(), err)
	}

	if readErr != nil && res.Identity.Namespace == "" {
		// No namespace to publish into: report on the node, and keep the file.
		r.state.record(k, notPublished, archive.ReasonOf(readErr))
		if !cached {
			r.reportOnNode(ctx, readErr)
		}
		// A Checkpoint deleted from now on says nothing about this file, and the agent's own
		// delete below must not read as a person's, even after a power failure.
		if err := r.records.dropDurably(k.Path()); err != nil {
			return reconcile.Result{}, err
		}
		if _, err := r.keepPin(k, live, marker); err != nil {
			return reconcile.Result{}, err
		}
		if err := r.release(ctx, k, live...); err != nil {
			return reconcile.Result{}, err
		}
		if ioErr {
			// Not cached: read again, with backoff.
			return reconcile.Result{}, readErr
		}
		return reconcile.Result{}, nil
	}

	// Taken before handleGone drops the record: an orphan stays one.
	orphanOf := r.orphanOf(k, live)
	// The Checkpoint this agent published is gone: find out why before anything else. When
	// another Checkpoint stands for the file, the record is older than that one (its update
	// was lost to a crash of the node) and says nothing about a delete: it is replaced below.
	// A placeholder names no Checkpoint, so it says nothing about a delete either.
	if rec := r.records.get(k.Path()); rec != nil && !rec.placeholder() && !hasUID(live, rec.UID) {
		if len(live) > 0 {
			logf.FromContext(ctx).Info("Replaced an outdated record: another Checkpoint stands for the archive",
				"recorded", rec.Namespace+"/"+rec.Name, "live", live[0].Namespace+"/"+live[0].Name)
		} else {
			res, done, err := r.handleGone(ctx, k, rec, marker)
			if done || err != nil {
				return res, err
			}
		}
	}

	dest, err := r.destination(ctx, res.Identity.Namespace, orphanOf)
	if err != nil {
		return reconcile.Result{}, err
	}
	name := ObjectName(r.Config.NodeName, k.Dir, k.Name)
	current, stale := split(live, dest.namespace, name)
	if current == nil && hasName(deleting, dest.namespace, name) {
		// The archive's deleted Checkpoint lingers under another finalizer: its name is
		// taken until it goes, and its removal queues the archive again.
		logf.FromContext(ctx).V(1).Info("Waiting for the deleted Checkpoint of the archive to go before publishing it again",
			"checkpoint", dest.namespace+"/"+name)
		return reconcile.Result{}, nil
	}
	// An archive rewritten for another pod moves to that pod's namespace; an archive whose
	// namespace is gone moves to the agent's, pinned as it was.
	if marker, err = r.keepPin(k, stale, marker); err != nil {
		return reconcile.Result{}, err
	}
	if err := r.release(ctx, k, stale...); err != nil {
		return reconcile.Result{}, err
	}
	if err := r.publish(ctx, k, current, published{dest: dest, info: info, res: res, readErr: readErr, marker: marker}); err != nil {
		return reconcile.Result{}, err
	}
	reason := archive.Reason("")
	if readErr != nil {
		reason = archive.ReasonOf(readErr)
	}
	r.state.record(k, publishedNow, reason)
	if ioErr {
		// Not cached: read again, with backoff, until the read succeeds or fails for the archive's own reasons.
		return reconcile.Result{}, readErr
	}
	return reconcile.Result{}, nil
}

// liveObjects returns the archive's Checkpoints that are not being deleted, and apart those
// that are. A Checkpoint being deleted is deleted for the agent, whatever finalizer still
// holds it: its deletion was admitted. The agent removes the finalizer of its older versions
// wherever it finds it, and the archive's record, not a finalizer, decides what happens to
// the file.
func (r *Reconciler) liveObjects(ctx context.Context, k fileKey) (live, deleting []*cqv1.Checkpoint, err error) {
	objs, err := r.objectsFor(ctx, k)
	if err != nil {
		return nil, nil, err
	}
	for _, obj := range objs {
		if err := r.dropLegacyFinalizer(ctx, obj); err != nil {
			return nil, nil, err
		}
		if obj.DeletionTimestamp.IsZero() {
			live = append(live, obj)
		} else {
			deleting = append(deleting, obj)
		}
	}
	return live, deleting, nil
}

// onNode leaves out the Checkpoints whose archives were offloaded. The Offloader removes
// the file right after it records the location, so the cache may not show the location yet
// when the file's removal arrives: a Checkpoint that the manager asked to move is read from
// the apiserver before it is taken for one whose file went by other means.
func (r *Reconciler) onNode(ctx context.Context, objs []*cqv1.Checkpoint) ([]*cqv1.Checkpoint, error) {
	out := objs[:0:0]
	for _, obj := range objs {
		// An orphan the Offloader published from its store says so a moment after it exists.
		if (obj.Status.Offload != nil || obj.Labels[cqv1.LabelOrphanOf] != "") && !obj.IsOffloaded() {
			current := &cqv1.Checkpoint{}
			switch err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(obj), current); {
			case apierrors.IsNotFound(err):
				continue
			case err != nil:
				return nil, err
			}
			obj = current
		}
		if !obj.IsOffloaded() {
			out = append(out, obj)
		}
	}
	return out, nil
}

func hasName(objs []*cqv1.Checkpoint, namespace, name string) bool {
	for _, obj := range objs {
		if obj.Namespace == namespace && obj.Name == name {
			return true
		}
	}
	return false
}

func hasUID(objs []*cqv1.Checkpoint, uid types.UID) bool {
	for _, obj := range objs {
		if obj.UID == uid {
			return true
		}
	}
	return false
}

// read returns the archive's identity once it has settled, or how long to wait before it
// has. cached says the result came from the cache, without reading the file.
func (r *Reconciler) read(k fileKey, info os.FileInfo) (res archive.Result, cached bool, wait time.Duration, readErr error) {
	v := archive.VersionOf(info)
	if wait := r.state.settle(k, v, r.Config.Clock.Now(), r.Config.SettleTime); wait > 0 {
		return res, false, wait, nil
	}
	res, cached, readErr = r.cache.Get(k.Path(), v, r.Config.Limits)
	if !cached {
		r.state.reads.Add(1)
		r.state.bytesRead.Add(res.BytesRead)
		// The archive changed while it was read: what was read may mix two versions.
		if after, err := os.Lstat(k.Path()); err != nil || archive.VersionOf(after) != v {
			r.cache.Forget(k.Path())
			return res, false, r.Config.SettleTime, nil
		}
	}
	// The runtimes write the archive in place, and its end-of-archive marker last: without
	// the marker, a recent archive is taken for one still being written (a writer that
	// paused longer than the settle time), and is read again rather than published.
	if !res.Ended && r.Config.Clock.Since(info.ModTime()) < r.Config.UnfinishedWait {
		r.cache.Forget(k.Path())
		return res, false, r.Config.SettleTime, nil
	}
	return res, cached, 0, readErr
}

// split picks the object that should stand for the archive; the others are stale.
func split(live []*cqv1.Checkpoint, namespace, name string) (current *cqv1.Checkpoint, stale []*cqv1.Checkpoint) {
	for _, obj := range live {
		if obj.Namespace == namespace && obj.Name == name {
			current = obj
		} else {
			stale = append(stale, obj)
		}
	}
	return current, stale
}

// lstat looks at the archive's entry itself, and treats an archive outside the configured
// directories (an object left from an older configuration) as gone.
func (r *Reconciler) lstat(k fileKey) (os.FileInfo, error) {
	if !r.Config.configured(k.Dir) || !archive.IsArchiveName(k.Name) {
		return nil, fs.ErrNotExist
	}
	return os.Lstat(k.Path())
}

func (r *Reconciler) objectsFor(ctx context.Context, k fileKey) ([]*cqv1.Checkpoint, error) {
	var list cqv1.CheckpointList
	if err := r.Client.List(ctx, &list, client.MatchingFields{indexFile: k.Path()}); err != nil {
		return nil, err
	}
	out := make([]*cqv1.Checkpoint, 0, len(list.Items))
	for i := range list.Items {
		out = append(out, &list.Items[i])
	}
	return r.legacy.add(ctx, k, out)
}

// release deletes objects that no longer stand for the archive k. The record of one of
// them goes first, so that the agent never takes its own delete for a person's. These are
// the agent's only deletes, and the pinned-checkpoint policy lets them through even for a
// pinned Checkpoint: none removes a file.
func (r *Reconciler) release(ctx context.Context, k fileKey, objs ...*cqv1.Checkpoint) error {
	if rec := r.records.get(k.Path()); rec != nil {
		stillStands := false
		for _, obj := range objs {
			stillStands = stillStands || obj.UID == rec.UID
		}
		_, statErr := os.Lstat(k.Path())
		fileGone := errors.Is(statErr, fs.ErrNotExist)
		// Durably: come back after a power failure, the record would read as a person's
		// delete of its Checkpoint once the file is there (it stayed, or came back).
		if stillStands || fileGone {
			if err := r.records.dropDurably(k.Path()); err != nil {
				return err
			}
		}
	}
	for _, obj := range objs {
		uid := obj.UID
		err := r.Client.Delete(ctx, obj, client.Preconditions{UID: &uid})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			return fmt.Errorf("deleting Checkpoint %s/%s: %w", obj.Namespace, obj.Name, err)
		}
		logf.FromContext(ctx).V(1).Info("Deleted a Checkpoint that no longer stands for the archive", "checkpoint", client.ObjectKeyFromObject(obj))
	}
	return nil
}

func (r *Reconciler) dropLegacyFinalizer(ctx context.Context, obj *cqv1.Checkpoint) error {
	if !controllerutil.ContainsFinalizer(obj, cqv1.LegacyFinalizerArchive) {
		return nil
	}
	// Locked, because the patch carries the whole finalizer list.
	patch := client.MergeFromWithOptions(obj.DeepCopy(), client.MergeFromWithOptimisticLock{})
	controllerutil.RemoveFinalizer(obj, cqv1.LegacyFinalizerArchive)
	if err := r.Client.Patch(ctx, obj, patch); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("removing the finalizer of Checkpoint %s/%s: %w", obj.Namespace, obj.Name, err)
	}
	return nil
}

// now is the clock's time, to the second, as the API stores it.
func (r *Reconciler) now() metav1.Time {
	return metav1.NewTime(r.Config.Clock.Now().UTC().Truncate(time.Second))
}

// unseenRecords returns the archives whose record names a Checkpoint that the cache does
// not hold. A Checkpoint created and deleted while the watch was broken off never shows in
// the cache, and no event comes for it: its archive stays until a reconcile asks the
// apiserver (whyGone). A Checkpoint created a moment ago and not cached yet costs that
// reconcile one lookup.
func (r *Reconciler) unseenRecords(ctx context.Context) []fileKey {
	var cached cqv1.CheckpointList
	if err := r.Client.List(ctx, &cached, client.UnsafeDisableDeepCopy); err != nil {
		logf.FromContext(ctx).Error(err, "Could not compare the records with the cache; comparing again at the next rescan")
		return nil
	}
	held := make(map[types.UID]bool, len(cached.Items))
	for i := range cached.Items {
		held[cached.Items[i].UID] = true
	}
	var keys []fileKey
	for _, p := range r.records.paths() {
		if rec := r.records.get(p); rec != nil && !held[rec.UID] {
			keys = append(keys, keyFromPath(p))
		}
	}
	return keys
}
