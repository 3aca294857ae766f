package certs

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"
)

// The Secret keys written into the certificate directory: the layout of a kubelet Secret volume
// and of cert-manager's Secret, so the webhook server reads the same files either way. The CA's
// private key stays in the Secret.
var mirroredKeys = []string{"ca.crt", "tls.key", "tls.crt"}

// addSecretMirror keeps dir in step with the Secret key: the rotator writes certificates into
// the Secret only, and waiting for the kubelet to project a Secret volume can take a minute or
// more, during which the webhook (failing closed) would be down.
func addSecretMirror(ctx context.Context, mgr manager.Manager, key types.NamespacedName, dir string) error {
	// A cache of this one Secret, so that the manager needs no cluster-wide Secret access.
	c, err := cache.New(mgr.GetConfig(), cache.Options{
		Scheme:            mgr.GetScheme(),
		Mapper:            mgr.GetRESTMapper(),
		DefaultNamespaces: map[string]cache.Config{key.Namespace: {}},
		ByObject: map[client.Object]cache.ByObject{
			&corev1.Secret{}: {Field: fields.OneTermEqualSelector("metadata.name", key.Name)},
		},
	})
	if err != nil {
		return err
	}
	inf, err := c.GetInformer(ctx, &corev1.Secret{}, cache.BlockUntilSynced(false))
	if err != nil {
		return err
	}
	log := logf.Log.WithName("cert-rotation").WithValues("secret", key.String(), "dir", dir)
	write := func(obj any) {
		s, ok := obj.(*corev1.Secret)
		if !ok || s.Name != key.Name {
			return
		}
		changed, err := writeKeyPair(dir, s.Data)
		if err != nil {
			log.Error(err, "Could not write the serving certificate")
			return
		}
		if changed {
			log.Info("Wrote the serving certificate")
		}
	}
	if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    write,
		UpdateFunc: func(_, obj any) { write(obj) },
	}); err != nil {
		return err
	}
	return mgr.Add(everyReplica{c})
}

// everyReplica runs the cache on every replica, leader or not, as the webhook server does.
type everyReplica struct{ cache.Cache }

func (everyReplica) NeedLeaderElection() bool { return false }

// writeKeyPair writes the mirrored keys of data into dir, each by rename so that a reader never
// sees half a file, the key before the certificate so that a complete certificate always has
// its key beside it. It writes nothing while the Secret lacks a certificate or key, and reports
// whether any file changed.
func writeKeyPair(dir string, data map[string][]byte) (bool, error) {
	if len(data["tls.crt"]) == 0 || len(data["tls.key"]) == 0 {
		return false, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return false, err
	}
	changed := false
	for _, name := range mirroredKeys {
		content, ok := data[name]
		if !ok {
			continue
		}
		path := filepath.Join(dir, name)
		if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, content) {
			continue
		}
		if err := writeFileAtomic(path, content); err != nil {
			return changed, fmt.Errorf("writing %s: %w", path, err)
		}
		changed = true
	}
	return changed, nil
}

func writeFileAtomic(path string, content []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-")
	if err != nil {
		return err
	}
	defer func() { _ = os.Remove(tmp.Name()) }()
	if _, err := tmp.Write(content); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o600); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
