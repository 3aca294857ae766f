package certs

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestWriteKeyPair(t *testing.T) {
	pair := map[string][]byte{"ca.crt": []byte("ca"), "tls.crt": []byte("crt"), "tls.key": []byte("key"), "ca.key": []byte("secret CA key")}
	renewed := map[string][]byte{"ca.crt": []byte("ca"), "tls.crt": []byte("crt2"), "tls.key": []byte("key2")}
	for name, tc := range map[string]struct {
		before      map[string][]byte // Secret data already written
		data        map[string][]byte
		wantChanged bool
		wantFiles   map[string]string
	}{
		"an empty Secret writes nothing": {
			data: map[string][]byte{}, wantFiles: map[string]string{},
		},
		"a certificate without its key writes nothing": {
			data: map[string][]byte{"tls.crt": []byte("crt")}, wantFiles: map[string]string{},
		},
		"a full Secret writes certificate, key and CA, never the CA's key": {
			data: pair, wantChanged: true,
			wantFiles: map[string]string{"ca.crt": "ca", "tls.crt": "crt", "tls.key": "key"},
		},
		"the same Secret again changes nothing": {
			before: pair, data: pair,
			wantFiles: map[string]string{"ca.crt": "ca", "tls.crt": "crt", "tls.key": "key"},
		},
		"a renewed pair replaces the files": {
			before: pair, data: renewed, wantChanged: true,
			wantFiles: map[string]string{"ca.crt": "ca", "tls.crt": "crt2", "tls.key": "key2"},
		},
	} {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "certs")
			if tc.before != nil {
				if _, err := writeKeyPair(dir, tc.before); err != nil {
					t.Fatal(err)
				}
			}
			changed, err := writeKeyPair(dir, tc.data)
			if err != nil {
				t.Fatal(err)
			}
			if changed != tc.wantChanged {
				t.Errorf("changed = %v, want %v", changed, tc.wantChanged)
			}
			got := map[string]string{}
			entries, _ := os.ReadDir(dir)
			for _, e := range entries {
				content, err := os.ReadFile(filepath.Join(dir, e.Name()))
				if err != nil {
					t.Fatal(err)
				}
				got[e.Name()] = string(content)
				if info, _ := e.Info(); info.Mode().Perm() != 0o600 {
					t.Errorf("%s has mode %v, want 0600", e.Name(), info.Mode().Perm())
				}
			}
			if diff := cmp.Diff(tc.wantFiles, got); diff != "" {
				t.Errorf("files in the certificate directory (-want +got):\n%s", diff)
			}
		})
	}
}
