package nodeagent

import (
	"context"
	"errors"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	"github.com/checkpoint-quota/checkpoint-quota/internal/objstore"
	"github.com/checkpoint-quota/checkpoint-quota/internal/sealedurl"
)

// DownloadURLExpiry is how long a download URL that the agent hands out works: long enough
// for the asker to start the download at once, short enough that a URL seen later is dead.
const DownloadURLExpiry = 5 * time.Minute

// serveDownloadURL answers AnnotationFetchURL on an offloaded Checkpoint of this node
// (`kubectl checkpoint-quota fetch -o FILE` by someone who cannot read the store's
// credentials): a presigned GET of the Checkpoint's own object, checked first (its UID,
// size and SHA-256), sealed to the request's public key, into status.downloadURL, which
// only agents write. A request that is not a key, or an object that is not this
// Checkpoint's, gets a message and no URL. The answer goes once the request is gone.
func (o *Offloader) serveDownloadURL(ctx context.Context, c *cqv1.Checkpoint) error {
	request, asked := c.Annotations[cqv1.AnnotationFetchURL]
	answer := c.Status.DownloadURL
	switch {
	case !asked && answer == nil:
		return nil
	case !asked:
		return o.setDownloadURL(ctx, c, nil)
	case answer != nil && answer.PublicKey == sealedurl.Ref(request) && answer.Sealed != "":
		return nil // answered; the asker removes the request when done
	}
	next := &cqv1.SealedDownloadURL{PublicKey: sealedurl.Ref(request)}
	expires := time.Now().Add(DownloadURLExpiry)
	sealed, err := o.sealDownloadURL(ctx, c, request)
	var retry error
	switch {
	case errors.Is(err, errNotAKey):
		next.Message = eventNote(err) // final: the request, not the store, is wrong
	case err != nil:
		next.Message = fmt.Sprintf("node %s gives no download URL: %s", o.Config.NodeName, eventNote(err))
		retry = err
	default:
		next.Sealed = sealed
		next.Expires = &metav1.Time{Time: expires.Truncate(time.Second)}
		logf.FromContext(ctx).Info("Handed out a download URL of a stored archive, sealed to the request's key",
			"checkpoint", client.ObjectKeyFromObject(c), "store", c.Status.Location.Store, "expires", expires.Truncate(time.Second))
	}
	return errors.Join(retry, o.setDownloadURL(ctx, c, next))
}

// errNotAKey is sealDownloadURL's error for a request that is not a public key: no store
// answer changes it, so it is not retried. (Its messages never quote the request.)
var errNotAKey = errors.New("the request")

// sealDownloadURL checks the object and signs a GET of it, sealed to the request's key.
func (o *Offloader) sealDownloadURL(ctx context.Context, c *cqv1.Checkpoint, request string) (string, error) {
	pub, err := sealedurl.ParsePublicKey(request)
	if err != nil {
		return "", fmt.Errorf("%w (annotation %s) is %w: no URL", errNotAKey, cqv1.AnnotationFetchURL, err)
	}
	loc := c.Status.Location
	store, s, err := o.stores.get(ctx, o.Client, loc.Store)
	if err != nil {
		return "", err
	}
	if s.Bucket() != loc.Bucket {
		return "", fmt.Errorf("CheckpointStore %s now names bucket %s, the archive is in %s", loc.Store, s.Bucket(), loc.Bucket)
	}
	u, err := s.PresignedGet(ctx, objstore.Stored{Key: loc.Key, SHA256: loc.SHA256, Size: c.Spec.Archive.SizeBytes}, c.UID, DownloadURLExpiry)
	if err != nil {
		return "", err
	}
	return sealedurl.Seal(pub, sealedurl.Grant{URL: u.String(), CABundle: store.Spec.CABundle})
}

// setDownloadURL writes status.downloadURL when it changes.
func (o *Offloader) setDownloadURL(ctx context.Context, c *cqv1.Checkpoint, answer *cqv1.SealedDownloadURL) error {
	if equality.Semantic.DeepEqual(c.Status.DownloadURL, answer) {
		return nil
	}
	patch := client.MergeFrom(c.DeepCopy())
	c.Status.DownloadURL = answer
	return client.IgnoreNotFound(o.Client.Status().Patch(ctx, c, patch))
}
