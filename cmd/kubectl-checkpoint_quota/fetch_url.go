package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	"github.com/checkpoint-quota/checkpoint-quota/internal/objstore"
	"github.com/checkpoint-quota/checkpoint-quota/internal/sealedurl"
)

// fetchByURL copies an offloaded archive to file for someone who may not read the store's
// credentials: it asks the agent of the archive's node for a short-lived download URL of its
// object (AnnotationFetchURL, a patch, which the edit role holds), sealed to a key made for
// this request whose private half never leaves this process, downloads through it and
// verifies the bytes. The request is removed whatever happens.
func (o *options) fetchByURL(ctx context.Context, c client.Client, cp *cqv1.Checkpoint, file string, timeout time.Duration) error {
	ns, name, node, loc := cp.Namespace, cp.Name, cp.Spec.Archive.NodeName, cp.Status.Location
	key, err := sealedurl.NewKey()
	if err != nil {
		return err
	}
	pub := key.Public()
	asked := cp.DeepCopy()
	patch := client.MergeFrom(cp.DeepCopy())
	if asked.Annotations == nil {
		asked.Annotations = map[string]string{}
	}
	asked.Annotations[cqv1.AnnotationFetchURL] = pub
	if err := c.Patch(ctx, asked, patch); err != nil {
		if apierrors.IsForbidden(err) {
			return fmt.Errorf("asking the node agent of %s for a download URL of %s/%s: %w\n"+
				"-o FILE reads the store and its credentials Secret (a cluster admin's) or asks the node agent, "+
				"which needs patch on the Checkpoint (the edit role)", node, ns, name, err)
		}
		return fmt.Errorf("asking the node agent of %s for a download URL of %s/%s: %w", node, ns, name, err)
	}
	defer withdraw(c, cp, pub)

	var sealed string
	_, err = o.waitForAgent(ctx, timeout, func(ctx context.Context) (bool, string, error) {
		now := &cqv1.Checkpoint{}
		if err := c.Get(ctx, client.ObjectKeyFromObject(cp), now); err != nil {
			return false, "", err
		}
		a := now.Status.DownloadURL
		switch {
		case now.Annotations[cqv1.AnnotationFetchURL] != pub:
			return false, "", fmt.Errorf("another request for a download URL of %s/%s replaced this one (annotation %s): try again; nothing written",
				ns, name, cqv1.AnnotationFetchURL)
		case a == nil || a.PublicKey != pub:
			return false, "", nil
		case a.Sealed == "":
			return false, "", fmt.Errorf("the node agent of %s gives no download URL of %s/%s: %s; nothing written", node, ns, name, a.Message)
		}
		sealed = a.Sealed
		return true, "", nil
	})
	switch {
	case errors.Is(err, errAgentTooSlow):
		return fmt.Errorf("the node agent of %s gave no download URL of %s/%s within %s (is node %s there, and its agent running?); nothing written. "+
			"The agent of the archive's node answers: for an archive whose node is gone, --node NODE brings a copy to a node that is there",
			node, ns, name, timeout, node)
	case err != nil:
		return err
	}
	grant, err := key.Open(sealed)
	if err != nil {
		return err
	}
	u, err := url.Parse(grant.URL)
	if err != nil {
		return errors.New("the node agent's download URL is not a URL")
	}
	transport, err := objstore.Transport(u.Scheme == "https", grant.CABundle)
	if err != nil {
		return err
	}
	hc := &http.Client{Transport: transport}
	sum, n, err := writeVerified(file, cp, func(w io.Writer) (string, string, int64, error) {
		return objstore.DownloadURL(ctx, hc, grant.URL, w)
	})
	if errors.Is(err, objstore.ErrUnreachable) {
		return fmt.Errorf("%w\n-o FILE downloads from CheckpointStore %s's endpoint, which this machine must reach; "+
			"--node NODE brings the archive to a node instead", err, loc.Store)
	}
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(o.streams.Out, "%s: %d bytes from CheckpointStore %s through a download URL from the node agent of %s, SHA-256 %s verified\n",
		file, n, loc.Store, node, sum)
	return err
}

// withdraw removes the request for a download URL, if it is still the one with the key pub.
func withdraw(c client.Client, cp *cqv1.Checkpoint, pub string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	path := "/metadata/annotations/" + strings.NewReplacer("~", "~0", "/", "~1").Replace(cqv1.AnnotationFetchURL)
	ops, _ := json.Marshal([]map[string]string{{"op": "test", "path": path, "value": pub}, {"op": "remove", "path": path}})
	// A request that another asker replaced is theirs: the test fails and nothing changes.
	_ = c.Patch(ctx, cp.DeepCopy(), client.RawPatch(types.JSONPatchType, ops))
}
