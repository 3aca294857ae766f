package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	"github.com/checkpoint-quota/checkpoint-quota/test/localrun"
	"github.com/checkpoint-quota/checkpoint-quota/test/s3server"
	"github.com/checkpoint-quota/checkpoint-quota/test/testenv"
)

// sampleStoreName is the CheckpointStore make run offers when the S3 server is built.
const sampleStoreName = "sample"

// sampleStore is the S3 server make run started, and what it printed about it.
type sampleStore struct {
	srv  *s3server.Server
	note string
}

func (s *sampleStore) stop() {
	if s != nil && s.srv != nil {
		s.srv.Kill()
	}
}

// startSampleStore runs the test bed's S3 server (SeaweedFS, built by hack/s3server.sh) with
// its data in <local>/s3, and creates the CheckpointStore "sample" on it with its credentials
// Secret in the agent's namespace. Only on the local control plane: a cluster's own agents
// could not reach a server on this machine. Without a built server it says how to get one.
func startSampleStore(ctx context.Context, cl *cluster, local string) (*sampleStore, error) {
	if !cl.local {
		return &sampleStore{}, nil
	}
	if _, err := s3server.Binary(); err != nil {
		if errors.Is(err, s3server.ErrUnavailable) {
			return &sampleStore{note: "No sample CheckpointStore: the S3 server is not built (hack/s3server.sh builds it, many minutes, once)."}, nil
		}
		return nil, err
	}
	fmt.Println("Starting the sample S3 server (SeaweedFS) ...")
	data := filepath.Join(local, "s3")
	if err := os.MkdirAll(data, 0o700); err != nil {
		return nil, err
	}
	srv, err := s3server.Start(ctx, data)
	if err != nil {
		return nil, err
	}
	s := &sampleStore{srv: srv}
	if err := srv.MakeBucket(ctx, "archives"); err != nil && !bucketExists(err) {
		s.stop()
		return nil, err
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", cl.kubeconfig)
	if err != nil {
		s.stop()
		return nil, err
	}
	c, err := client.New(cfg, client.Options{Scheme: testenv.Scheme})
	if err != nil {
		s.stop()
		return nil, err
	}
	objs := []client.Object{
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: sampleStoreName + "-store-credentials", Namespace: localrun.OrphanNamespace},
			Data: map[string][]byte{cqv1.StoreSecretAccessKeyID: []byte(s3server.AccessKeyID), cqv1.StoreSecretSecretAccessKey: []byte(s3server.SecretAccessKey)}},
		&cqv1.CheckpointStore{ObjectMeta: metav1.ObjectMeta{Name: sampleStoreName},
			Spec: cqv1.CheckpointStoreSpec{Endpoint: srv.Endpoint, Bucket: "archives", Prefix: "make-run",
				CredentialsSecret: cqv1.SecretName{Name: sampleStoreName + "-store-credentials"}}},
	}
	for _, obj := range objs {
		if err := c.Create(ctx, obj); err != nil && !apierrors.IsAlreadyExists(err) {
			s.stop()
			return nil, fmt.Errorf("creating %s: %w", obj.GetName(), err)
		}
	}
	s.note = fmt.Sprintf(`A sample CheckpointStore %q: SeaweedFS at %s, bucket archives, its data in %s.
Only cluster quotas may name it (no namespaceSelector). To move what a quota prunes there:

  %s apply -f - <<EOF
  apiVersion: checkpointquota.dev/v1alpha1
  kind: ClusterCheckpointQuota
  metadata: {name: offload-demo}
  spec:
    limits: {perContainer: {checkpoints: 3}}
    offload: {store: %s}
  EOF
  %s get checkpointstores; %s get checkpoints -A   # the STORED-IN column`,
		sampleStoreName, srv.Endpoint, filepath.Join(local, "s3"), cl.kubectl, sampleStoreName, cl.kubectl, cl.kubectl)
	return s, nil
}

// bucketExists: the data of an earlier make run holds the bucket already.
func bucketExists(err error) bool {
	return strings.Contains(err.Error(), "BucketAlreadyOwnedByYou") || strings.Contains(err.Error(), "BucketAlreadyExists")
}
