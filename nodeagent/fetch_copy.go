package nodeagent

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
)

// Reasons of the events of a fetch to another node, on the stored Checkpoint.
const (
	ReasonCopiedToNode = "CopiedToNode"
	ReasonFetchRefused = "FetchRefused"
)

// FetchToValue is the value of LabelFetchTo that names node: the node's name, or where it
// is longer than a label value may be, a shortened form with a hash.
func FetchToValue(node string) string { return labelValue(node) }

// copyFetcher brings a copy of an offloaded archive of another node to this one, when its
// Checkpoint carries LabelFetchTo naming this node (`kubectl checkpoint-quota fetch --node`).
// The copy is a new archive of this node: downloaded and verified as a fetch to the archive's
// own node is, noted in the copy book, linked into a configured checkpoint directory under
// the archive's kubelet file name, and published by the file reconciler as a Checkpoint of
// this node with spec.archive.copyOf. The stored Checkpoint and its object stay as they are;
// only the label is removed.
type copyFetcher struct {
	o      *Offloader
	reader client.Reader // the Checkpoints that name this node in LabelFetchTo
	book   *copyBook
	files  chan<- event.TypedGenericEvent[fileKey]
}

// setupCopyFetcher watches, in a cache of its own, the Checkpoints whose LabelFetchTo names
// this node: the apiserver filters them, so no agent lists every Checkpoint.
func setupCopyFetcher(mgr manager.Manager, o *Offloader, book *copyBook, files chan<- event.TypedGenericEvent[fileKey]) error {
	selector := labels.SelectorFromSet(labels.Set{cqv1.LabelFetchTo: FetchToValue(o.Config.NodeName)})
	requests, err := cache.New(mgr.GetConfig(), cache.Options{
		Scheme: mgr.GetScheme(), Mapper: mgr.GetRESTMapper(),
		DefaultTransform: cache.TransformStripManagedFields(),
		ByObject:         map[client.Object]cache.ByObject{&cqv1.Checkpoint{}: {Label: selector}},
	})
	if err != nil {
		return fmt.Errorf("a cache of the fetches to node %s: %w", o.Config.NodeName, err)
	}
	if err := mgr.Add(requests); err != nil {
		return err
	}
	f := &copyFetcher{o: o, reader: requests, book: book, files: files}
	return builder.ControllerManagedBy(mgr).
		Named("checkpoint-fetch-to").
		WatchesRawSource(source.Kind(requests, &cqv1.Checkpoint{}, &handler.TypedEnqueueRequestForObject[*cqv1.Checkpoint]{})).
		WithOptions(controller.Options{
			MaxConcurrentReconciles: 1,
			RateLimiter:             workqueue.NewTypedItemExponentialFailureRateLimiter[reconcile.Request](o.Config.OffloadRetryBase, o.Config.OffloadRetryMax),
		}).
		Complete(f)
}

// Reconcile serves one request for a copy on this node.
func (f *copyFetcher) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	node := f.o.Config.NodeName
	var c cqv1.Checkpoint
	if err := f.reader.Get(ctx, req.NamespacedName, &c); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	a := c.Spec.Archive
	switch {
	case c.Labels[cqv1.LabelFetchTo] != FetchToValue(node) || !c.DeletionTimestamp.IsZero():
		return reconcile.Result{}, nil
	case a != nil && a.NodeName == node:
		return reconcile.Result{}, nil // the archive's own node: the Offloader's (fetch.go)
	case a == nil || c.Status.Location == nil:
		return reconcile.Result{}, f.refuse(ctx, &c, fmt.Sprintf("Checkpoint %s/%s is not in a CheckpointStore: nothing to bring to node %s", c.Namespace, c.Name, node))
	case a.CopyOf != nil:
		return reconcile.Result{}, f.refuse(ctx, &c, fmt.Sprintf("Checkpoint %s/%s is a copy on node %s; fetch its stored Checkpoint %s/%s instead",
			c.Namespace, c.Name, a.NodeName, a.CopyOf.Namespace, a.CopyOf.Name))
	}
	k := fileKey{Dir: f.destination(a.Directory), Name: a.FileName}
	switch copied, err := f.present(k, &c); {
	case err != nil:
		return reconcile.Result{}, f.refuse(ctx, &c, err.Error())
	case copied:
		return reconcile.Result{}, f.served(ctx, &c)
	}
	if err := f.fetch(ctx, &c, k); err != nil {
		f.o.Recorder.Eventf(&c, nil, corev1.EventTypeWarning, ReasonFetchFailed, "Fetch",
			"bringing a copy to node %s: %s; retried", node, eventNote(err))
		return reconcile.Result{}, err
	}
	return reconcile.Result{}, f.served(ctx, &c)
}

// destination is the checkpoint directory the copy goes to: the archive's own directory
// when this node has it, else this node's first one.
func (f *copyFetcher) destination(dir string) string {
	if f.o.Config.configured(dir) {
		return dir
	}
	return f.o.Config.Dirs[0]
}

// present says whether the copy of c is at k already; an error when another file is there.
func (f *copyFetcher) present(k fileKey, c *cqv1.Checkpoint) (bool, error) {
	switch _, err := os.Lstat(k.Path()); {
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	case err != nil:
		return false, err
	}
	if of := f.book.of(k.Path(), c.Spec.Archive.SizeBytes); of != nil && of.UID == c.UID {
		return true, nil
	}
	return false, fmt.Errorf("node %s has another archive at %s: the copy of Checkpoint %s/%s is not put over it",
		f.o.Config.NodeName, k.Path(), c.Namespace, c.Name)
}

// fetch downloads and verifies the archive, notes it as a copy, and links it into place.
func (f *copyFetcher) fetch(ctx context.Context, c *cqv1.Checkpoint, k fileKey) error {
	tmp, sum, err := f.o.download(ctx, c, k)
	if err != nil {
		return err
	}
	defer func() { _ = os.Remove(tmp) }()
	entry := copyEntry{Path: k.Path(), Size: c.Spec.Archive.SizeBytes,
		CopyOf: cqv1.ArchiveCopy{Namespace: c.Namespace, Name: c.Name, UID: c.UID, NodeName: c.Spec.Archive.NodeName}}
	// Noted before the file is in place: the Checkpoint the file reconciler publishes for it
	// is a copy from its first write.
	if err := f.book.begin(entry); err != nil {
		return fmt.Errorf("noting the copy in the agent's state: %w", err)
	}
	err = linkInto(tmp, k)
	f.book.done(k.Path(), err == nil)
	if err != nil {
		return err
	}
	select {
	case f.files <- event.TypedGenericEvent[fileKey]{Object: k}:
	default: // the watcher sees the new file too
	}
	f.o.Recorder.Eventf(c, nil, corev1.EventTypeNormal, ReasonCopiedToNode, "Fetch",
		"a copy is on node %s as %s, from CheckpointStore %s (SHA-256 %s, verified); it is a new archive of that node, marked a copy of this one: it counts there, and the limits free it first",
		f.o.Config.NodeName, k.Path(), c.Status.Location.Store, sum)
	logf.FromContext(ctx).Info("Fetched a copy of another node's stored archive", "checkpoint", client.ObjectKeyFromObject(c),
		"store", c.Status.Location.Store, "path", k.Path())
	return nil
}

// served removes the request.
func (f *copyFetcher) served(ctx context.Context, c *cqv1.Checkpoint) error {
	patch := client.MergeFromWithOptions(c.DeepCopy(), client.MergeFromWithOptimisticLock{})
	delete(c.Labels, cqv1.LabelFetchTo)
	if err := f.o.Client.Patch(ctx, c, patch); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("removing the label %s of Checkpoint %s/%s: %w", cqv1.LabelFetchTo, c.Namespace, c.Name, err)
	}
	return nil
}

// refuse says why a request cannot be served, and removes it.
func (f *copyFetcher) refuse(ctx context.Context, c *cqv1.Checkpoint, why string) error {
	f.o.Recorder.Eventf(c, nil, corev1.EventTypeWarning, ReasonFetchRefused, "Fetch", "%s", why)
	logf.FromContext(ctx).Info("Refused a fetch to the node", "checkpoint", client.ObjectKeyFromObject(c), "why", why)
	return f.served(ctx, c)
}

// removeStoredCopy removes, instead of storing it, a copy fetched to this node that a quota
// asks to move (an older manager's request: the manager deletes such a copy's Checkpoint)
// while its stored Checkpoint is there: its bytes are in the store already, so moving it is
// removing it, and the file reconciler then deletes its Checkpoint, as for any file gone. A
// copy whose stored Checkpoint is gone holds the archive's last bytes: false, and it is
// stored as any archive.
func (o *Offloader) removeStoredCopy(ctx context.Context, c *cqv1.Checkpoint) (bool, error) {
	of := c.Spec.Archive.CopyOf
	if of == nil {
		return false, nil
	}
	var stored cqv1.Checkpoint
	switch err := o.APIReader.Get(ctx, client.ObjectKey{Namespace: of.Namespace, Name: of.Name}, &stored); {
	case apierrors.IsNotFound(err):
		return false, nil
	case err != nil:
		return false, err
	case stored.UID != of.UID || !stored.IsOffloaded() || !stored.DeletionTimestamp.IsZero():
		return false, nil
	}
	k := fileKey{Dir: c.Spec.Archive.Directory, Name: c.Spec.Archive.FileName}
	if err := removeArchive(o.Config, k); err != nil {
		return false, fmt.Errorf("removing the copy %s: %w", k.Path(), err)
	}
	logf.FromContext(ctx).Info("Removed a fetched copy that a quota moves: it is in the store already", "checkpoint", client.ObjectKeyFromObject(c),
		"copyOf", of.Namespace+"/"+of.Name, "reason", c.Status.Offload.Reason)
	return true, nil
}
