package nodeagent

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	"github.com/checkpoint-quota/checkpoint-quota/internal/archive"
	"github.com/checkpoint-quota/checkpoint-quota/internal/objstore"
)

// Reasons of the Fetched condition and its events.
const (
	ReasonFetched      = "Fetched"
	ReasonFetchFailed  = "FetchFailed"
	ReasonCopyRemoved  = "CopyRemoved"
	ReasonCopyGone     = "CopyGone"
	fetchReserveFactor = 20 // a fetch leaves at least 1/20 (5%) of the filesystem free
)

// reconcileStored handles an offloaded Checkpoint of this node: a download URL asked for
// (fetch_url.go), a fetch asked for, the copy a fetch brought back, and a file left on the
// node after its upload.
func (o *Offloader) reconcileStored(ctx context.Context, c *cqv1.Checkpoint) error {
	urlErr := o.serveDownloadURL(ctx, c)
	return errors.Join(urlErr, o.reconcileStoredFile(ctx, c))
}

// reconcileStoredFile handles the file of an offloaded Checkpoint of this node.
func (o *Offloader) reconcileStoredFile(ctx context.Context, c *cqv1.Checkpoint) error {
	k := fileKey{Dir: c.Spec.Archive.Directory, Name: c.Spec.Archive.FileName}
	_, statErr := os.Lstat(k.Path())
	present := statErr == nil
	if statErr != nil && !errors.Is(statErr, fs.ErrNotExist) {
		return statErr
	}
	_, asked := c.Annotations[cqv1.AnnotationFetch]
	// The label naming this node asks for the same as the annotation (fetch_copy.go takes
	// the label naming another node than the archive's).
	asked = asked || c.Labels[cqv1.LabelFetchTo] == FetchToValue(o.Config.NodeName)
	switch {
	case present && c.IsFetchedCopy():
		if asked {
			return o.fetchServed(ctx, c)
		}
		return nil // the copy stays until a rule frees it (status.offload again)
	case present:
		// The file of an offloaded Checkpoint: left by a crash between recording the
		// location and removing it, or a fetched copy that a rule frees. The cache may not
		// show a fetch that just happened: read again before removing anything.
		current := &cqv1.Checkpoint{}
		if err := o.APIReader.Get(ctx, client.ObjectKeyFromObject(c), current); err != nil {
			return client.IgnoreNotFound(err)
		}
		if current.UID != c.UID || current.IsFetchedCopy() {
			return nil
		}
		if err := o.removeLocal(ctx, current); err != nil {
			return err
		}
		if meta.IsStatusConditionTrue(current.Status.Conditions, cqv1.CheckpointConditionFetched) {
			reason := "asked"
			if current.Status.Offload != nil {
				reason = current.Status.Offload.Reason
			}
			return o.setFetched(ctx, current, metav1.ConditionFalse, ReasonCopyRemoved,
				fmt.Sprintf("the copy on node %s was removed (%s); the archive stays in CheckpointStore %s", o.Config.NodeName, reason, current.Status.Location.Store))
		}
		return nil
	case asked:
		if err := o.fetch(ctx, c); err != nil {
			return errors.Join(err, o.setFetched(ctx, c, metav1.ConditionFalse, ReasonFetchFailed,
				fmt.Sprintf("bringing the archive back to node %s: %s; retried", o.Config.NodeName, eventNote(err))))
		}
		return nil
	case meta.IsStatusConditionTrue(c.Status.Conditions, cqv1.CheckpointConditionFetched):
		return o.setFetched(ctx, c, metav1.ConditionFalse, ReasonCopyGone,
			fmt.Sprintf("the copy on node %s is gone; the archive stays in CheckpointStore %s", o.Config.NodeName, c.Status.Location.Store))
	}
	return nil
}

// fetch brings an offloaded archive back under its own name: downloaded beside it into a
// file no watcher takes for an archive, verified (size, and the SHA-256 of the bytes
// against the Checkpoint's and the object's), recorded as a copy, and only then linked
// into place, never over a file that is there.
func (o *Offloader) fetch(ctx context.Context, c *cqv1.Checkpoint) error {
	k := fileKey{Dir: c.Spec.Archive.Directory, Name: c.Spec.Archive.FileName}
	tmp, computed, err := o.download(ctx, c, k)
	if err != nil {
		return err
	}
	defer func() { _ = os.Remove(tmp) }()
	loc := c.Status.Location
	// Recorded before the file is in place: a copy the agent sees on the node is then never
	// taken for a file left after an upload, and removed.
	msg := fmt.Sprintf("a copy is back on node %s as %s, from CheckpointStore %s (SHA-256 %s, verified); it counts there, and the limits free it first",
		o.Config.NodeName, k.Path(), loc.Store, computed)
	patch := client.MergeFromWithOptions(c.DeepCopy(), client.MergeFromWithOptimisticLock{})
	c.Status.Offload = nil
	meta.RemoveStatusCondition(&c.Status.Conditions, cqv1.CheckpointConditionOffloadFailed)
	meta.SetStatusCondition(&c.Status.Conditions, metav1.Condition{Type: cqv1.CheckpointConditionFetched, Status: metav1.ConditionTrue,
		Reason: ReasonFetched, Message: msg, ObservedGeneration: c.Generation})
	if err := o.Client.Status().Patch(ctx, c, patch); err != nil {
		return fmt.Errorf("recording the fetch: %w", err)
	}
	if err := linkInto(tmp, k); err != nil {
		return err
	}
	o.Recorder.Eventf(c, nil, corev1.EventTypeNormal, ReasonFetched, "Fetch", "%s", msg)
	logf.FromContext(ctx).Info("Fetched an archive back to the node", "checkpoint", client.ObjectKeyFromObject(c), "store", loc.Store, "path", k.Path())
	return o.fetchServed(ctx, c)
}

// download brings the stored archive of the offloaded Checkpoint c into a hidden file in
// k.Dir, a configured checkpoint directory, on its way to k: a store that is down, or an
// object that is not c's, costs the node nothing; the download must leave 5% of the
// filesystem free; the size and the bytes' SHA-256 must be the Checkpoint's and the
// object's. It returns the hidden file, which the caller removes, and the SHA-256.
func (o *Offloader) download(ctx context.Context, c *cqv1.Checkpoint, k fileKey) (tmp, sum string, err error) {
	if !o.Config.configured(k.Dir) || !archive.IsArchiveName(k.Name) || filepath.Base(k.Name) != k.Name {
		return "", "", fmt.Errorf("%w %s: not a kubelet archive in a configured checkpoint directory", errUnsafe, k.Path())
	}
	loc := c.Status.Location
	_, s, err := o.stores.get(ctx, o.Client, loc.Store)
	if err != nil {
		return "", "", err
	}
	size := c.Spec.Archive.SizeBytes
	var st unix.Statfs_t
	if err := unix.Statfs(k.Dir, &st); err != nil {
		return "", "", err
	}
	capacity, free := int64(st.Blocks)*st.Bsize, int64(st.Bavail)*st.Bsize
	if free-size < capacity/fetchReserveFactor {
		return "", "", fmt.Errorf("the archive (%d bytes) would leave less than 5%% of the filesystem of %s free (%d bytes free)", size, k.Dir, free)
	}
	// The object is looked at before anything is written on the node.
	if err := s.Verify(ctx, objstore.Stored{Key: loc.Key, SHA256: loc.SHA256, Size: size}, c.UID); err != nil {
		return "", "", err
	}
	tmp = filepath.Join(k.Dir, ".fetch-"+string(c.UID))
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return "", "", err
	}
	computed, recorded, n, err := s.Download(ctx, loc.Key, f)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	switch {
	case err != nil:
		err = fmt.Errorf("downloading %s/%s: %w", loc.Bucket, loc.Key, err)
	case n != size:
		err = fmt.Errorf("the stored object has %d bytes, the archive %d: nothing is put back", n, size)
	case computed != loc.SHA256 || recorded != loc.SHA256:
		err = fmt.Errorf("the downloaded bytes' SHA-256 is %s; the Checkpoint records %s and the object %s: nothing is put back", computed, loc.SHA256, recorded)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return "", "", err
	}
	return tmp, computed, nil
}

// linkInto puts a downloaded archive in place under k, never over a file that is there,
// and makes the new name durable.
func linkInto(tmp string, k fileKey) error {
	if err := os.Link(tmp, k.Path()); err != nil {
		return fmt.Errorf("putting the archive at %s: %w", k.Path(), err)
	}
	syncDir(k.Dir)
	return nil
}

// fetchServed removes the fetch request, now that its copy is on the node.
func (o *Offloader) fetchServed(ctx context.Context, c *cqv1.Checkpoint) error {
	patch := client.MergeFromWithOptions(c.DeepCopy(), client.MergeFromWithOptimisticLock{})
	delete(c.Annotations, cqv1.AnnotationFetch)
	delete(c.Labels, cqv1.LabelFetchTo)
	return client.IgnoreNotFound(o.Client.Patch(ctx, c, patch))
}

// setFetched sets the Fetched condition, with an event when it changes.
func (o *Offloader) setFetched(ctx context.Context, c *cqv1.Checkpoint, status metav1.ConditionStatus, reason, msg string) error {
	patch := client.MergeFrom(c.DeepCopy())
	if !meta.SetStatusCondition(&c.Status.Conditions, metav1.Condition{Type: cqv1.CheckpointConditionFetched, Status: status,
		Reason: reason, Message: msg, ObservedGeneration: c.Generation}) {
		return nil
	}
	kind := corev1.EventTypeNormal
	if reason == ReasonFetchFailed {
		kind = corev1.EventTypeWarning
	}
	o.Recorder.Eventf(c, nil, kind, reason, "Fetch", "%s", msg)
	return client.IgnoreNotFound(o.Client.Status().Patch(ctx, c, patch))
}
