// Package objstore moves checkpoint archives to an S3-compatible bucket and back: keys that
// only the agent names, streamed multipart uploads verified by size and SHA-256, and deletes
// that check whose object they remove.
package objstore

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"path"
	"strings"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/minio/minio-go/v7/pkg/encrypt"
	"k8s.io/apimachinery/pkg/types"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
)

// Metadata of each stored object, as S3 user metadata (x-amz-meta-*): what a reader needs
// to verify the archive, and what a delete checks before it removes an object.
const (
	MetaSHA256    = "Checkpoint-Sha256"
	MetaUID       = "Checkpoint-Uid"
	MetaNamespace = "Checkpoint-Namespace"
	MetaFileName  = "Checkpoint-File"
)

// ErrNotOurs is returned when the object at a key does not belong to the Checkpoint that
// asked: it is left alone.
var ErrNotOurs = errors.New("the stored object belongs to another Checkpoint")

// Config is one CheckpointStore with its credentials.
type Config struct {
	Spec            cqv1.CheckpointStoreSpec
	AccessKeyID     string
	SecretAccessKey string
	// PartSize is the size of each part of a multipart upload; 16 MiB when zero. The
	// upload holds one part in memory at a time.
	PartSize uint64
	// Buffers, when set, bound the memory of this store's uploads together with those of
	// the other stores that share them.
	Buffers *Buffers
}

// Store is a client of one bucket.
type Store struct {
	client *minio.Client
	spec   cqv1.CheckpointStoreSpec
	sse    encrypt.ServerSide
	part   uint64
	// buffers bound the memory of uploads; nil: each upload holds one part.
	buffers *Buffers
}

// New returns a client for the store; it sends no request.
func New(cfg Config) (*Store, error) {
	u, err := url.Parse(cfg.Spec.Endpoint)
	if err != nil {
		return nil, fmt.Errorf("spec.endpoint %q: %w", cfg.Spec.Endpoint, err)
	}
	transport, err := Transport(u.Scheme == "https", cfg.Spec.CABundle)
	if err != nil {
		return nil, err
	}
	region := cfg.Spec.Region
	if region == "" {
		region = "us-east-1"
	}
	client, err := minio.New(u.Host, &minio.Options{
		Creds:        credentials.NewStaticV4(cfg.AccessKeyID, cfg.SecretAccessKey, ""),
		Secure:       u.Scheme == "https",
		Region:       region,
		BucketLookup: minio.BucketLookupPath,
		Transport:    http.RoundTripper(transport),
		// The agent retries a failed upload with its own backoff and reports each failure:
		// the client's ten retries would hide a store that is down for minutes.
		MaxRetries: 2,
	})
	if err != nil {
		return nil, err
	}
	s := &Store{client: client, spec: cfg.Spec, part: cfg.PartSize, buffers: cfg.Buffers}
	if s.part == 0 {
		s.part = 16 << 20
	}
	if e := cfg.Spec.Encryption; e != nil {
		switch e.Type {
		case cqv1.EncryptionS3:
			s.sse = encrypt.NewSSE()
		case cqv1.EncryptionKMS:
			if s.sse, err = encrypt.NewSSEKMS(e.KMSKeyID, nil); err != nil {
				return nil, err
			}
		}
	}
	return s, nil
}

// Transport is the HTTP transport of a store's clients: minio-go's, trusting caBundle (the
// store's spec.caBundle, PEM) when it is set.
func Transport(secure bool, caBundle string) (*http.Transport, error) {
	transport, err := minio.DefaultTransport(secure)
	if err != nil {
		return nil, err
	}
	if caBundle != "" {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM([]byte(caBundle)) {
			return nil, errors.New("spec.caBundle holds no PEM certificate")
		}
		transport.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return transport, nil
}

// Key is where the archive of a Checkpoint goes: the store's prefix, then the namespace the
// archive was taken in, its pod and container, and the Checkpoint's UID. Nothing a tenant
// writes goes into it but names Kubernetes validated (a namespace, a pod, a container), each
// one path segment, so no key of one namespace can fall under another's.
func Key(prefix, namespace, pod, container string, uid types.UID) string {
	return path.Join(prefix, namespace, pod, container, string(uid)+".tar")
}

// KeyOf is the key of a Checkpoint's archive in the store.
func KeyOf(spec cqv1.CheckpointStoreSpec, c *cqv1.Checkpoint) (string, error) {
	a := c.Spec.Archive
	if a == nil {
		return "", errors.New("the Checkpoint has no spec.archive")
	}
	for _, part := range []string{c.PodNamespace(), a.PodName, a.ContainerName, string(c.UID)} {
		if part == "" || part == "." || part == ".." || strings.ContainsAny(part, "/\\") {
			return "", fmt.Errorf("%q cannot be part of a key", part)
		}
	}
	return Key(spec.Prefix, c.PodNamespace(), a.PodName, a.ContainerName, c.UID), nil
}

// Bucket is the store's bucket.
func (s *Store) Bucket() string { return s.spec.Bucket }

// ArchiveOfKey is the namespace and Checkpoint UID that Key put into key under prefix;
// false for any key Key does not make (the agents' check objects under ".checks", anything
// else in the bucket).
func ArchiveOfKey(prefix, key string) (namespace string, uid types.UID, ok bool) {
	k, ok := parseKey(prefix, key)
	return k.namespace, k.uid, ok
}

// keyParts are the names that Key puts into a key.
type keyParts struct {
	namespace, pod, container string
	uid                       types.UID
}

// parseKey reads the names of a key that Key made under prefix; false for any other key.
func parseKey(prefix, key string) (keyParts, bool) {
	rest := key
	if p := path.Join(prefix); p != "" && p != "." {
		var ok bool
		if rest, ok = strings.CutPrefix(key, p+"/"); !ok {
			return keyParts{}, false
		}
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 4 || parts[0] == ".checks" {
		return keyParts{}, false
	}
	for _, p := range parts {
		if p == "" || p == "." || p == ".." {
			return keyParts{}, false
		}
	}
	name, found := strings.CutSuffix(parts[3], ".tar")
	if !found || name == "" {
		return keyParts{}, false
	}
	return keyParts{namespace: parts[0], pod: parts[1], container: parts[2], uid: types.UID(name)}, true
}
