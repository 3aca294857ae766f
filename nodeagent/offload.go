package nodeagent

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	"github.com/checkpoint-quota/checkpoint-quota/internal/objstore"
)

// Reasons of the offload events on Checkpoints.
const (
	ReasonOffloaded     = "Offloaded"
	ReasonOffloadFailed = "OffloadFailed"
)

var (
	offloadedArchives = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "checkpointquota_node_offloaded_archives_total",
		Help: "Archives uploaded to a CheckpointStore, verified, and removed from the node.",
	}, []string{"store"})
	offloadedBytes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "checkpointquota_node_offloaded_bytes_total",
		Help: "Bytes of the archives offloaded from the node.",
	}, []string{"store"})
	offloadFailures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "checkpointquota_node_offload_failures_total",
		Help: "Uploads that failed; the archive stays on the node and the upload is retried with backoff.",
	}, []string{"store"})
	offloadStageSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "checkpointquota_node_offload_stage_seconds",
		Help: "Time each stage of an offload took: upload (read, hashed, sent, and the store's checksum checked), record (status.location written), log (stored.log synced), remove (the file removed). The wait before an upload is the checkpoint-offload controller's workqueue_queue_duration_seconds.",
		// 1 ms to 4.4 minutes: a status write on a busy apiserver, up to a large archive's upload.
		Buckets: prometheus.ExponentialBuckets(0.001, 4, 10),
	}, []string{"store", "stage"})
	removedUnverified = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "checkpointquota_node_removed_unverified_total",
		Help: "Files of stored archives (fetched copies a rule freed) removed from the node while the store did not answer the check of their object.",
	}, []string{"store"})
)

func init() {
	metrics.Registry.MustRegister(offloadedArchives, offloadedBytes, offloadFailures, offloadStageSeconds, removedUnverified)
}

// Offloader moves the archives that the manager asked to move (status.offload) to their
// CheckpointStore: it uploads each, verifies the stored object, writes where it is
// (status.location), and only then removes the file. It deletes the stored object of an
// offloaded Checkpoint once the Checkpoint is deleted. It is keyed by Checkpoint: the
// archive's file reconciler leaves an offloaded Checkpoint to it.
type Offloader struct {
	// Client reads this node's Checkpoints and the stores from the cache, and writes status.
	Client client.Client
	// APIReader reads the stores' credentials Secrets, which the agent does not cache.
	APIReader client.Reader
	Recorder  events.EventRecorder
	Config    Config

	stores *storeClients
	// checks are told of failed uploads, to check the store again soon.
	checks *storeChecker
	// stored remembers where the archives of this node's offloaded Checkpoints are, by
	// Checkpoint, so that a deleted Checkpoint's object can be deleted after the cache
	// forgot it.
	mu     sync.Mutex
	stored map[types.NamespacedName]storedObject
	// storedLog keeps stored on the node's disk (stored.go).
	storedLog *jsonLog
	// fromStore are the archives being published again as orphans: the file reconciler
	// leaves their Checkpoints, which have no file, until they say where the archive is.
	fromStore *pathSet
}

type storedObject struct {
	uid      types.UID
	location cqv1.ArchiveLocation
	// archive and pinned are the Checkpoint's spec, to publish it again as an orphan.
	archive *cqv1.ArchiveSource
	pinned  bool
}

// Reconcile handles one Checkpoint of this node.
func (o *Offloader) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	var c cqv1.Checkpoint
	switch err := o.Client.Get(ctx, req.NamespacedName, &c); {
	case apierrors.IsNotFound(err):
		return reconcile.Result{}, o.deleteStored(ctx, req.NamespacedName, "")
	case err != nil:
		return reconcile.Result{}, err
	}
	if a := c.Spec.Archive; a == nil || a.NodeName != o.Config.NodeName {
		return reconcile.Result{}, nil
	}
	if !c.DeletionTimestamp.IsZero() {
		// Its deletion was admitted; another finalizer may hold the object a while.
		if c.Status.Location != nil {
			o.remember(&c)
		}
		return reconcile.Result{}, o.deleteStored(ctx, req.NamespacedName, c.UID)
	}
	if c.Status.Location != nil {
		o.remember(&c)
		return reconcile.Result{}, o.reconcileStored(ctx, &c)
	}
	if c.Status.Offload == nil || c.IsPinned() {
		return reconcile.Result{}, nil
	}
	if removed, err := o.removeStoredCopy(ctx, &c); removed || err != nil {
		return reconcile.Result{}, err // a copy is not stored again (fetch_copy.go)
	}
	if err := o.offload(ctx, &c); err != nil {
		if o.deletedMeanwhile(ctx, &c) {
			// A rule deleted it during its upload (a node rule, or a remote limit that would
			// prune it at once): its file goes with it, and no upload failed.
			return reconcile.Result{}, nil
		}
		offloadFailures.WithLabelValues(c.Status.Offload.Store).Inc()
		o.checks.uploadFailed(c.Status.Offload.Store)
		return reconcile.Result{}, errors.Join(err, o.reportFailure(ctx, &c, err))
	}
	return reconcile.Result{}, nil
}

// deletedMeanwhile says whether the Checkpoint c, whose upload just failed, was deleted
// since the cache showed it: then removing its file is what failed the upload.
func (o *Offloader) deletedMeanwhile(ctx context.Context, c *cqv1.Checkpoint) bool {
	var now cqv1.Checkpoint
	err := o.APIReader.Get(ctx, client.ObjectKeyFromObject(c), &now)
	return apierrors.IsNotFound(err) || (err == nil && (now.UID != c.UID || !now.DeletionTimestamp.IsZero()))
}

// offload uploads the archive, verifies it, records its location, then removes the file.
func (o *Offloader) offload(ctx context.Context, c *cqv1.Checkpoint) error {
	storeName := c.Status.Offload.Store
	store, s, err := o.stores.get(ctx, o.Client, storeName)
	if err != nil {
		return err
	}
	key, err := objstore.KeyOf(store.Spec, c)
	if err != nil {
		return err
	}
	k := fileKey{Dir: c.Spec.Archive.Directory, Name: c.Spec.Archive.FileName}
	f, err := openArchive(o.Config, k)
	if err != nil {
		return err
	}
	defer func() { _ = f.Close() }()
	stage := stageTimer(storeName)
	stored, err := s.Upload(ctx, key, objstore.Archive{File: f, Size: c.Spec.Archive.SizeBytes, UID: c.UID,
		Namespace: c.PodNamespace(), FileName: c.Spec.Archive.FileName, Record: objstore.RecordOf(c)})
	if err != nil {
		return err
	}
	stage("upload")
	// Recorded before the file goes: a crash in between leaves a file that the next
	// reconcile verifies against the store and removes (removeLocal).
	patch := client.MergeFromWithOptions(c.DeepCopy(), client.MergeFromWithOptimisticLock{})
	c.Status.Location = &cqv1.ArchiveLocation{Store: storeName, Bucket: store.Spec.Bucket, Key: stored.Key,
		SHA256: stored.SHA256, StoredTime: metav1.NewTime(o.Config.Clock.Now().UTC().Truncate(1e9))}
	meta.RemoveStatusCondition(&c.Status.Conditions, cqv1.CheckpointConditionOffloadFailed)
	if err := o.Client.Status().Patch(ctx, c, patch); err != nil {
		if apierrors.IsNotFound(err) {
			// Deleted meanwhile (a node rule, while the store seemed down, or a person): no
			// Checkpoint will name the object, so it goes now rather than stay unseen.
			if derr := s.Delete(ctx, stored.Key, c.UID); derr != nil {
				return fmt.Errorf("removing the object of Checkpoint %s, deleted during its upload: %w", client.ObjectKeyFromObject(c), derr)
			}
			return nil
		}
		return fmt.Errorf("recording where the archive is stored: %w", err)
	}
	stage("record")
	o.remember(c)
	stage("log")
	if err := removeArchive(o.Config, k); err != nil {
		return fmt.Errorf("removing the offloaded archive %s: %w", k.Path(), err)
	}
	stage("remove")
	offloadedArchives.WithLabelValues(storeName).Inc()
	offloadedBytes.WithLabelValues(storeName).Add(float64(stored.Size))
	o.Recorder.Eventf(c, nil, corev1.EventTypeNormal, ReasonOffloaded, "Offload",
		"moved from node %s to CheckpointStore %s as %s (SHA-256 %s, verified); %s",
		o.Config.NodeName, storeName, stored.Key, stored.SHA256, c.Status.Offload.Reason)
	logf.FromContext(ctx).Info("Offloaded an archive", "checkpoint", client.ObjectKeyFromObject(c), "store", storeName, "key", stored.Key, "bytes", stored.Size)
	return nil
}

// stageTimer returns a function that observes, for each stage of an offload to store it is
// called with, the time since the previous stage ended (or since stageTimer).
func stageTimer(store string) func(stage string) {
	last := time.Now()
	return func(stage string) {
		now := time.Now()
		offloadStageSeconds.WithLabelValues(store, stage).Observe(now.Sub(last).Seconds())
		last = now
	}
}

// removeLocal removes the file of an offloaded Checkpoint that is still on the node: a copy
// fetched back that a rule frees, or a file left when the agent stopped between recording
// the location and removing it. Its bytes are in the store, verified when they were stored
// and, for a copy, again when they were fetched; the object is checked once more first. A
// store that answers that the object is not there, or not this archive, keeps the file (it
// holds the last bytes). A store that does not answer within checkBeforeRemoval keeps
// nothing: the manager counts the file as gone from its node once a rule frees it, so its
// node rules (perNode, minFree) would count as free a disk that is not; the file is removed
// all the same, and unverified says why the object could not be checked
// (docs/offload.md, "A copy freed while its store is down").
func (o *Offloader) removeLocal(ctx context.Context, c *cqv1.Checkpoint) (unverified error, err error) {
	k := fileKey{Dir: c.Spec.Archive.Directory, Name: c.Spec.Archive.FileName}
	if _, err := os.Lstat(k.Path()); errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	loc := c.Status.Location
	_, s, checked := o.stores.get(ctx, o.Client, loc.Store)
	if checked == nil {
		check, cancel := context.WithTimeout(ctx, checkBeforeRemoval)
		checked = s.Verify(check, objstore.Stored{Key: loc.Key, SHA256: loc.SHA256, Size: c.Spec.Archive.SizeBytes}, c.UID)
		cancel()
	}
	if objstore.NotStored(checked) {
		return nil, fmt.Errorf("keeping %s on the node: %w", k.Path(), checked)
	}
	if err := removeArchive(o.Config, k); err != nil {
		return nil, err
	}
	if checked != nil {
		removedUnverified.WithLabelValues(loc.Store).Inc()
	}
	return checked, nil
}

// checkBeforeRemoval bounds the check of the stored object before the file of an
// offloaded Checkpoint leaves its node.
const checkBeforeRemoval = 10 * time.Second

// deleteStored deletes the stored object of a deleted Checkpoint, if this agent stored it.
func (o *Offloader) deleteStored(ctx context.Context, key types.NamespacedName, uid types.UID) error {
	o.mu.Lock()
	so, ok := o.stored[key]
	o.mu.Unlock()
	if !ok || (uid != "" && so.uid != uid) {
		return nil
	}
	// Deleted with its namespace: an orphan, as the archive of a deleted namespace on a node
	// is, never a loss (orphan_stored.go).
	if key.Namespace != o.Config.OrphanNamespace {
		switch gone, err := o.namespaceGone(ctx, key.Namespace); {
		case err != nil:
			return err
		case gone:
			return o.keepAsOrphan(ctx, key, so)
		}
	}
	_, s, err := o.stores.get(ctx, o.Client, so.location.Store)
	if err != nil {
		return err
	}
	// The object's metadata names its Checkpoint: one of another UID is never deleted.
	if err := s.Delete(ctx, so.location.Key, so.uid); err != nil {
		return err
	}
	o.mu.Lock()
	delete(o.stored, key)
	o.storedChanged(key)
	o.mu.Unlock()
	logf.FromContext(ctx).Info("Deleted the stored archive of a deleted Checkpoint", "checkpoint", key, "store", so.location.Store, "key", so.location.Key)
	return nil
}

// remember notes where a Checkpoint's archive is stored, on the node too (stored.go).
func (o *Offloader) remember(c *cqv1.Checkpoint) {
	o.mu.Lock()
	defer o.mu.Unlock()
	k, so := client.ObjectKeyFromObject(c), storedObject{uid: c.UID, location: *c.Status.Location,
		archive: c.Spec.Archive.DeepCopy(), pinned: c.Spec.Pinned}
	if old, ok := o.stored[k]; ok && old.uid == so.uid && old.location.Key == so.location.Key &&
		old.location.Store == so.location.Store && old.location.Bucket == so.location.Bucket &&
		old.archive != nil && old.pinned == so.pinned {
		return
	}
	o.stored[k] = so
	o.storedChanged(k)
}

// logSaveError reports a failed write of stored.log: the objects of Checkpoints deleted
// while the agent is down then stay in the store.
func (o *Offloader) logSaveError(err error) {
	logf.Log.WithName("offload").Error(err, "Could not record where the node's offloaded archives are stored", "stateDir", o.Config.StateDir)
}

// reportFailure sets OffloadFailed on the Checkpoint and emits an event when it turns true.
func (o *Offloader) reportFailure(ctx context.Context, c *cqv1.Checkpoint, cause error) error {
	msg := fmt.Sprintf("uploading to CheckpointStore %s: %s; the archive stays on node %s and the upload is retried",
		c.Status.Offload.Store, eventNote(cause), o.Config.NodeName)
	// Written against the version the upload was tried from: a cache that has not yet shown
	// this agent's last pass, which stored the archive and removed its file, makes the next
	// pass fail on the missing file, and that failure must not land on the stored Checkpoint
	// (nothing would ever clear it). A conflict leaves the condition to the retry.
	patch := client.MergeFromWithOptions(c.DeepCopy(), client.MergeFromWithOptimisticLock{})
	was := meta.IsStatusConditionTrue(c.Status.Conditions, cqv1.CheckpointConditionOffloadFailed)
	changed := meta.SetStatusCondition(&c.Status.Conditions, metav1.Condition{Type: cqv1.CheckpointConditionOffloadFailed,
		Status: metav1.ConditionTrue, Reason: ReasonOffloadFailed, Message: msg, ObservedGeneration: c.Generation})
	logf.FromContext(ctx).Info("Could not offload an archive; it stays on the node", "checkpoint", client.ObjectKeyFromObject(c), "error", cause.Error())
	if !changed {
		return nil
	}
	if err := o.Client.Status().Patch(ctx, c, patch); err != nil {
		if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
			return nil
		}
		return err
	}
	if !was {
		o.Recorder.Eventf(c, nil, corev1.EventTypeWarning, ReasonOffloadFailed, "Offload", "%s", msg)
	}
	return nil
}

// openArchive opens an archive for reading if it is a regular file directly inside a
// configured checkpoint directory, never through a symlink.
func openArchive(cfg Config, k fileKey) (*os.File, error) {
	if !cfg.configured(k.Dir) {
		return nil, fmt.Errorf("%w %s: %s is not a configured checkpoint directory", errUnsafe, k.Path(), k.Dir)
	}
	f, err := os.OpenFile(k.Path(), os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, err
	}
	info, err := f.Stat()
	if err == nil && !info.Mode().IsRegular() {
		err = fmt.Errorf("%w %s: it is not a regular file", errUnsafe, k.Path())
	}
	if err != nil {
		_ = f.Close()
		return nil, err
	}
	return f, nil
}
