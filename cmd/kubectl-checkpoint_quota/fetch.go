package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	"github.com/checkpoint-quota/checkpoint-quota/internal/objstore"
	"github.com/checkpoint-quota/checkpoint-quota/nodeagent"
)

func newFetch(o *options) *cobra.Command {
	var file, node, credentialsNamespace string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "fetch CHECKPOINT (--node NODE | -o FILE)",
		Short: "Bring an offloaded archive back to its node, or copy it to a local file, its SHA-256 verified",
		Long: "Bring an offloaded archive back from its CheckpointStore.\n\n" +
			"--node NODE asks a node agent to put it into the node's checkpoint directory under its kubelet file name, " +
			"where a restore can use it: the agent downloads it and checks its SHA-256 against the Checkpoint's and the stored " +
			"object's. On the archive's own node the Checkpoint (same name and UID) then says Fetched; on another node the " +
			"copy is a new archive of that node, whose Checkpoint (spec.archive.copyOf) names the stored one. It needs only " +
			"patch on the Checkpoint (the edit role): the agent holds the store's credentials. The copy counts on the node, " +
			"and the limits free it before any other archive; the archive stays stored (docs/offload.md, \"Fetch\").\n\n" +
			"-o FILE copies it to a local file, written only when its size is the Checkpoint's and the bytes' SHA-256 the one " +
			"the Checkpoint and the stored object record. Whoever may read the CheckpointStore and its credentials Secret (a " +
			"cluster admin) downloads with them. Anyone else with patch on the Checkpoint (the edit role) gets, from the node " +
			"agent of the archive's node, a download URL of that one object that works for 5 minutes, sealed to a key this " +
			"command makes for the request, so that only it can read the URL; the request is removed afterwards. The download " +
			"goes from this machine to the store's endpoint, which must be reachable from here (docs/offload.md, \"Fetch\").",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			switch {
			case (file == "") == (node == ""):
				return errors.New("give one of --node NODE (back into the node's checkpoint directory) and -o FILE (a local file)")
			case node != "":
				return o.fetchToNode(cmd.Context(), args[0], node, timeout)
			}
			return o.fetch(cmd.Context(), args[0], file, credentialsNamespace, timeout)
		},
	}
	cmd.Flags().StringVarP(&file, "output", "o", "", "the file to write the archive to")
	cmd.Flags().StringVar(&node, "node", "", "bring the archive into this node's checkpoint directory: its own node, or a copy to another")
	cmd.Flags().DurationVar(&timeout, "timeout", 5*time.Minute, "how long to wait for the node agent (--node, or -o without the store's credentials)")
	cmd.Flags().StringVar(&credentialsNamespace, "credentials-namespace", "checkpoint-quota-system",
		"with -o, the node agent's namespace, which holds the stores' credentials Secrets")
	return cmd
}

// fetch copies an offloaded archive to a local file: straight from the store for whoever may
// read the store and its credentials Secret (a cluster admin), else through a download URL
// that the archive's node agent hands out (fetch_url.go).
func (o *options) fetch(ctx context.Context, name, file, credentialsNamespace string, timeout time.Duration) error {
	c, ns, cp, err := o.checkpoint(ctx, name)
	if err != nil {
		return err
	}
	loc := cp.Status.Location
	switch a := cp.Spec.Archive; {
	case a == nil:
		return fmt.Errorf("checkpoint %s/%s has no spec.archive: no node agent has published it", ns, name)
	case loc == nil && a.CopyOf != nil:
		return fmt.Errorf("checkpoint %s/%s is a copy on node %s, not in a CheckpointStore: fetch its stored Checkpoint %s/%s",
			ns, name, a.NodeName, a.CopyOf.Namespace, a.CopyOf.Name)
	case loc == nil:
		return fmt.Errorf("checkpoint %s/%s is on node %s, not in a CheckpointStore: nothing to fetch", ns, name, a.NodeName)
	}
	st, err := storeOf(ctx, c, loc, credentialsNamespace)
	switch {
	case apierrors.IsForbidden(err):
		return o.fetchByURL(ctx, c, cp, file, timeout)
	case err != nil:
		return err
	}
	sum, n, err := writeVerified(file, cp, func(w io.Writer) (string, string, int64, error) {
		computed, recorded, n, err := st.Download(ctx, loc.Key, w)
		switch {
		case err != nil:
			err = fmt.Errorf("downloading %s/%s: %w", loc.Bucket, loc.Key, err)
		case recorded == "":
			err = fmt.Errorf("the object %s/%s records no SHA-256", loc.Bucket, loc.Key)
		}
		return computed, recorded, n, err
	})
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(o.streams.Out, "%s: %d bytes from CheckpointStore %s, SHA-256 %s verified\n", file, n, loc.Store, sum)
	return err
}

// storeOf is a client of the store that holds loc, made with its credentials Secret in
// credentialsNamespace; Forbidden for whoever may not read them.
func storeOf(ctx context.Context, c client.Client, loc *cqv1.ArchiveLocation, credentialsNamespace string) (*objstore.Store, error) {
	var store cqv1.CheckpointStore
	if err := c.Get(ctx, client.ObjectKey{Name: loc.Store}, &store); err != nil {
		return nil, fmt.Errorf("reading CheckpointStore %s: %w", loc.Store, err)
	}
	var secret corev1.Secret
	ref := client.ObjectKey{Namespace: credentialsNamespace, Name: store.Spec.CredentialsSecret.Name}
	if err := c.Get(ctx, ref, &secret); err != nil {
		return nil, fmt.Errorf("reading the credentials of CheckpointStore %s (Secret %s): %w", loc.Store, ref, err)
	}
	spec := store.Spec
	spec.Bucket = loc.Bucket // where it was written, should the store have moved since
	return objstore.New(objstore.Config{Spec: spec,
		AccessKeyID: string(secret.Data[cqv1.StoreSecretAccessKeyID]), SecretAccessKey: string(secret.Data[cqv1.StoreSecretSecretAccessKey])})
}

// writeVerified writes what download writes into a temporary file beside file, and renames
// it into place only when its size is the archive's and its SHA-256 the one the Checkpoint
// records and the object records (where download could read it): otherwise nothing is
// written.
func writeVerified(file string, cp *cqv1.Checkpoint, download func(io.Writer) (computed, recorded string, n int64, err error)) (string, int64, error) {
	want, size := cp.Status.Location.SHA256, cp.Spec.Archive.SizeBytes
	tmp, err := os.CreateTemp(filepath.Dir(file), "."+filepath.Base(file)+".fetch-*")
	if err != nil {
		return "", 0, err
	}
	defer func() { _ = os.Remove(tmp.Name()) }()
	computed, recorded, n, err := download(tmp)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	switch {
	case err != nil:
		return "", n, fmt.Errorf("%w: nothing written", err)
	case n != size:
		return "", n, fmt.Errorf("the downloaded archive has %d bytes, the Checkpoint %d: nothing written", n, size)
	case computed != want || (recorded != "" && recorded != want):
		return "", n, fmt.Errorf("the downloaded archive's SHA-256 is %s; the Checkpoint records %s and the object %s: nothing written", computed, want, recorded)
	}
	return computed, n, os.Rename(tmp.Name(), file)
}

// fetchToNode asks the agent of the archive's node to bring it back (AnnotationFetch) and
// waits until the Checkpoint says the copy is there.
func (o *options) fetchToNode(ctx context.Context, name, node string, timeout time.Duration) error {
	c, ns, cp, err := o.checkpoint(ctx, name)
	if err != nil {
		return err
	}
	a := cp.Spec.Archive
	switch {
	case a == nil:
		return fmt.Errorf("checkpoint %s/%s has no spec.archive: no node agent has published it", ns, name)
	case cp.Status.Location == nil:
		return fmt.Errorf("checkpoint %s/%s is on node %s, not in a CheckpointStore: nothing to fetch", ns, name, a.NodeName)
	case a.NodeName != node:
		return o.fetchToOtherNode(ctx, c, cp, node, timeout)
	case cp.IsFetchedCopy():
		_, err := fmt.Fprintf(o.streams.Out, "%s/%s is on node %s already: %s\n", ns, name, node, fetchedMessage(cp))
		return err
	}
	patch := client.MergeFrom(cp.DeepCopy())
	if cp.Annotations == nil {
		cp.Annotations = map[string]string{}
	}
	cp.Annotations[cqv1.AnnotationFetch] = "kubectl checkpoint-quota fetch at " + time.Now().UTC().Format(time.RFC3339)
	if err := c.Patch(ctx, cp, patch); err != nil {
		return fmt.Errorf("asking for the fetch of %s/%s: %w", ns, name, err)
	}
	said, err := o.waitForAgent(ctx, timeout, func(ctx context.Context) (bool, string, error) {
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, cp); err != nil {
			return false, "", err
		}
		_, pending := cp.Annotations[cqv1.AnnotationFetch]
		if !pending && cp.IsFetchedCopy() {
			_, err := fmt.Fprintf(o.streams.Out, "%s/%s (UID %s) is back on node %s: %s\n", ns, name, cp.UID, node, fetchedMessage(cp))
			return true, "", err
		}
		if f := meta.FindStatusCondition(cp.Status.Conditions, cqv1.CheckpointConditionFetched); f != nil &&
			f.Status == metav1.ConditionFalse && f.Reason == nodeagent.ReasonFetchFailed {
			return false, f.Message, nil
		}
		return false, "", nil
	})
	switch {
	case !errors.Is(err, errAgentTooSlow):
		return err
	case said != "":
		return fmt.Errorf("the node agent of %s did not bring %s/%s back within %s: %s", node, ns, name, timeout, said)
	}
	return fmt.Errorf("the node agent of %s did not bring %s/%s back within %s (is it running?); the request stays (annotation %s)",
		node, ns, name, timeout, cqv1.AnnotationFetch)
}

// errAgentTooSlow is waitForAgent's answer when its time is up (or the wait is cancelled)
// before check said done.
var errAgentTooSlow = errors.New("the node agent did not answer in time")

// waitForAgent asks check after 100 ms, then twice as long each time up to once a second, for
// at most timeout, until it says done or fails. What check gives as the agent's reason for not yet is printed each time it changes, and
// the last one is returned with errAgentTooSlow when the time is up, for the caller to say
// what did not happen.
func (o *options) waitForAgent(ctx context.Context, timeout time.Duration, check func(context.Context) (done bool, notYet string, err error)) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	said := ""
	every := 100 * time.Millisecond // an agent often answers within a second: ask sooner at first
	for {
		done, notYet, err := check(ctx)
		if done || err != nil {
			return said, err
		}
		if notYet != "" && notYet != said {
			said = notYet
			_, _ = fmt.Fprintf(o.streams.ErrOut, "not yet: %s\n", said)
		}
		select {
		case <-ctx.Done():
			return said, errAgentTooSlow
		case <-time.After(every):
		}
		every = min(2*every, time.Second)
	}
}

func fetchedMessage(cp *cqv1.Checkpoint) string {
	if f := meta.FindStatusCondition(cp.Status.Conditions, cqv1.CheckpointConditionFetched); f != nil {
		return f.Message
	}
	return ""
}
