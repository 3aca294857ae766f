package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	"github.com/checkpoint-quota/checkpoint-quota/internal/objstore"
)

func newFetch(o *options) *cobra.Command {
	var file, credentialsNamespace string
	cmd := &cobra.Command{
		Use:   "fetch CHECKPOINT -o FILE",
		Short: "Copy an offloaded archive from its CheckpointStore to a local file, its SHA-256 verified",
		Long: "Copy an offloaded archive from its CheckpointStore to a local file. The bytes' SHA-256 must be the one " +
			"the Checkpoint and the stored object record, or nothing is written. It reads the store's credentials " +
			"Secret, which cluster admins can read (docs/offload.md).",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if file == "" {
				return errors.New("-o FILE is required: the file to write the archive to")
			}
			return o.fetch(cmd.Context(), args[0], file, credentialsNamespace)
		},
	}
	cmd.Flags().StringVarP(&file, "output", "o", "", "the file to write the archive to")
	cmd.Flags().StringVar(&credentialsNamespace, "credentials-namespace", "checkpoint-quota-system",
		"the node agent's namespace, which holds the stores' credentials Secrets")
	return cmd
}

func (o *options) fetch(ctx context.Context, name, file, credentialsNamespace string) error {
	c, err := o.client()
	if err != nil {
		return err
	}
	ns, err := o.namespace()
	if err != nil {
		return err
	}
	var cp cqv1.Checkpoint
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &cp); err != nil {
		return err
	}
	loc := cp.Status.Location
	if loc == nil {
		node := ""
		if cp.Spec.Archive != nil {
			node = cp.Spec.Archive.NodeName
		}
		return fmt.Errorf("checkpoint %s/%s is on node %s, not in a CheckpointStore: nothing to fetch", ns, name, node)
	}
	var store cqv1.CheckpointStore
	if err := c.Get(ctx, client.ObjectKey{Name: loc.Store}, &store); err != nil {
		return fmt.Errorf("reading CheckpointStore %s: %w", loc.Store, err)
	}
	var secret corev1.Secret
	ref := client.ObjectKey{Namespace: credentialsNamespace, Name: store.Spec.CredentialsSecret.Name}
	if err := c.Get(ctx, ref, &secret); err != nil {
		return fmt.Errorf("reading the credentials of CheckpointStore %s (Secret %s): %w", loc.Store, ref, err)
	}
	spec := store.Spec
	spec.Bucket = loc.Bucket // where it was written, should the store have moved since
	st, err := objstore.New(objstore.Config{Spec: spec,
		AccessKeyID: string(secret.Data[cqv1.StoreSecretAccessKeyID]), SecretAccessKey: string(secret.Data[cqv1.StoreSecretSecretAccessKey])})
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(file), "."+filepath.Base(file)+".fetch-*")
	if err != nil {
		return err
	}
	defer func() { _ = os.Remove(tmp.Name()) }()
	computed, recorded, n, err := st.Download(ctx, loc.Key, tmp)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("downloading %s/%s: %w", loc.Bucket, loc.Key, err)
	}
	if computed != loc.SHA256 || recorded != loc.SHA256 {
		return fmt.Errorf("the downloaded archive's SHA-256 is %s; the Checkpoint records %s and the object %s: nothing written", computed, loc.SHA256, recorded)
	}
	if err := os.Rename(tmp.Name(), file); err != nil {
		return err
	}
	_, err = fmt.Fprintf(o.streams.Out, "%s: %d bytes from CheckpointStore %s, SHA-256 %s verified\n", file, n, loc.Store, computed)
	return err
}
