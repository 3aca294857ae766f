package objstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/minio/minio-go/v7"
	"k8s.io/apimachinery/pkg/types"
)

// ErrUnreachable is DownloadURL's error when no connection to the store could be made.
var ErrUnreachable = errors.New("cannot reach the CheckpointStore")

// PresignedGet checks the object at st.Key as Verify does (the Checkpoint uid's, st's size
// and SHA-256), then signs a GET of that one object, valid for expiry. Signing sends no
// request: the URL holds a signature made with the store's credentials for that method,
// bucket, key and time window only, never the credentials.
func (s *Store) PresignedGet(ctx context.Context, st Stored, uid types.UID, expiry time.Duration) (*url.URL, error) {
	if err := s.Verify(ctx, st, uid); err != nil {
		return nil, err
	}
	u, err := s.client.PresignedGetObject(ctx, s.spec.Bucket, st.Key, expiry, nil)
	if err != nil {
		return nil, fmt.Errorf("signing a download of %s/%s: %w", s.spec.Bucket, st.Key, err)
	}
	return u, nil
}

// DownloadURL writes the object that the presigned GET rawURL names to w and returns its
// SHA-256 as computed from the bytes written, and as the object's metadata records it (empty
// for an archive uploaded in parts, which records it in a tag that a GET does not show).
// Its errors never hold rawURL, which is a credential for the object.
func DownloadURL(ctx context.Context, hc *http.Client, rawURL string, w io.Writer) (computed, recorded string, n int64, err error) {
	u, err := url.Parse(rawURL)
	if err != nil || u.Host == "" {
		return "", "", 0, errors.New("the download URL is not a URL")
	}
	where := u.Scheme + "://" + u.Host
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return "", "", 0, errors.New("the download URL is not a URL")
	}
	resp, err := hc.Do(req)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err // url.Error prints the URL, signature and all
		}
		return "", "", 0, fmt.Errorf("%w at %s: %w", ErrUnreachable, where, err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return "", "", 0, fmt.Errorf("the CheckpointStore at %s answered %s%s", where, resp.Status, s3Error(resp.Body))
	}
	h := sha256.New()
	n, err = io.Copy(io.MultiWriter(w, h), resp.Body)
	if err != nil {
		return "", "", n, fmt.Errorf("downloading from the CheckpointStore at %s: %w", where, err)
	}
	return hex.EncodeToString(h.Sum(nil)), resp.Header.Get("X-Amz-Meta-" + MetaSHA256), n, nil
}

// s3Error is the code and message of an S3 error document, for an error message.
func s3Error(body io.Reader) string {
	var e minio.ErrorResponse
	if xml.NewDecoder(io.LimitReader(body, 4096)).Decode(&e) != nil || e.Code == "" {
		return ""
	}
	return ": " + e.Code + ": " + e.Message
}
