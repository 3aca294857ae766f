package main

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
)

// writeVerified puts the file in place only when its size and SHA-256 are the archive's, and
// leaves nothing behind otherwise.
func TestWriteVerifiedWritesOnlyTheArchive(t *testing.T) {
	body := "the archive's bytes"
	raw := sha256.Sum256([]byte(body))
	sum := hex.EncodeToString(raw[:])
	cp := &cqv1.Checkpoint{}
	cp.Spec.Archive = &cqv1.ArchiveSource{SizeBytes: int64(len(body))}
	cp.Status.Location = &cqv1.ArchiveLocation{SHA256: sum}
	serve := func(data, recorded string, err error) func(io.Writer) (string, string, int64, error) {
		return func(w io.Writer) (string, string, int64, error) {
			n, _ := io.WriteString(w, data)
			h := sha256.Sum256([]byte(data))
			return hex.EncodeToString(h[:]), recorded, int64(n), err
		}
	}
	cases := map[string]struct {
		download func(io.Writer) (string, string, int64, error)
		want     string // the error, "" for none
	}{
		"the archive":                        {download: serve(body, sum, nil)},
		"the archive, no SHA-256 in the GET": {download: serve(body, "", nil)},
		"shorter":                            {download: serve(body[1:], sum, nil), want: "has 18 bytes, the Checkpoint 19: nothing written"},
		"other bytes of the same size":       {download: serve(strings.ToUpper(body), sum, nil), want: "nothing written"},
		"the object records another SHA-256": {download: serve(body, strings.Repeat("0", 64), nil), want: "nothing written"},
		"the download fails":                 {download: serve(body, sum, errors.New("connection reset")), want: "connection reset: nothing written"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			file := filepath.Join(dir, "out.tar")
			got, n, err := writeVerified(file, cp, tc.download)
			entries, _ := os.ReadDir(dir)
			if tc.want != "" {
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("writeVerified = %v; want an error saying %q", err, tc.want)
				}
				if len(entries) != 0 {
					t.Fatalf("left %s behind", entries[0].Name())
				}
				return
			}
			data, rerr := os.ReadFile(file)
			if err != nil || rerr != nil || string(data) != body || got != sum || n != int64(len(body)) || len(entries) != 1 {
				t.Fatalf("writeVerified = %s, %d, %v; file %q, %v, %d entries; want the archive alone", got, n, err, data, rerr, len(entries))
			}
		})
	}
}
