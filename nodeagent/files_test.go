package nodeagent

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	testarchive "github.com/checkpoint-quota/checkpoint-quota/test/archive"
)

func TestRemoveArchive(t *testing.T) {
	tests := map[string]struct {
		// setup writes what the case needs into dir and returns the key to remove.
		setup      func(t *testing.T, dir string) fileKey
		wantUnsafe bool
		wantGone   bool
	}{
		"regular archive": {
			setup: func(_ *testing.T, dir string) fileKey {
				return keyFromPath(testarchive.New("shop", "p", "c").MustWrite(dir))
			},
			wantGone: true,
		},
		"already gone": {
			setup: func(_ *testing.T, dir string) fileKey {
				return fileKey{Dir: dir, Name: testarchive.New("shop", "p", "c").FileName()}
			},
			wantGone: true,
		},
		"symlink to an archive outside": {
			setup: func(_ *testing.T, dir string) fileKey {
				path := testarchive.New("shop", "p", "c").Damaged(testarchive.Symlink).MustWrite(dir)
				target, _ := os.Readlink(path)
				t.Cleanup(func() { _ = os.RemoveAll(filepath.Dir(target)) })
				return keyFromPath(path)
			},
			wantUnsafe: true,
		},
		"directory with an archive's name": {
			setup: func(_ *testing.T, dir string) fileKey {
				return keyFromPath(testarchive.New("shop", "p", "c").Damaged(testarchive.Directory).MustWrite(dir))
			},
			wantUnsafe: true,
		},
		"file not named like an archive": {
			setup: func(_ *testing.T, dir string) fileKey {
				path := filepath.Join(dir, "notes.txt")
				if err := os.WriteFile(path, []byte("keep me"), 0o600); err != nil {
					t.Fatal(err)
				}
				return keyFromPath(path)
			},
			wantUnsafe: true,
		},
		"archive in a directory that is not configured": {
			setup: func(_ *testing.T, dir string) fileKey {
				other := filepath.Join(dir, "sub")
				if err := os.Mkdir(other, 0o700); err != nil {
					t.Fatal(err)
				}
				return keyFromPath(testarchive.New("shop", "p", "c").MustWrite(other))
			},
			wantUnsafe: true,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			k := tc.setup(t, dir)
			cfg, _ := Config{NodeName: "n", Dirs: []string{dir}}.withDefaults()
			err := removeArchive(cfg, k)
			if got := errors.Is(err, errUnsafe); got != tc.wantUnsafe {
				t.Fatalf("removeArchive: %v; want unsafe %v", err, tc.wantUnsafe)
			}
			if !tc.wantUnsafe && err != nil {
				t.Fatalf("removeArchive: %v", err)
			}
			_, statErr := os.Lstat(k.Path())
			if gone := errors.Is(statErr, os.ErrNotExist); gone != tc.wantGone {
				t.Errorf("after removeArchive the entry is gone: %v, want %v", gone, tc.wantGone)
			}
			if tc.wantUnsafe {
				if target, err := os.Readlink(k.Path()); err == nil {
					if _, err := os.Stat(target); err != nil {
						t.Errorf("the symlink's target %s is gone: %v", target, err)
					}
				}
			}
		})
	}
}

func TestMarkers(t *testing.T) {
	dir := t.TempDir()
	path := testarchive.New("shop", "p", "c").MustWrite(dir)
	if kind, err := readMarker(path); err != nil || kind != markerNone {
		t.Fatalf("no marker: got %v, %v", kind, err)
	}
	if err := writeAgentMarker(path, "shop/x"); err != nil {
		t.Fatal(err)
	}
	if kind, _ := readMarker(path); kind != markerAgent {
		t.Errorf("after writeAgentMarker: kind %v, want markerAgent", kind)
	}
	if err := removeAgentMarker(path); err != nil {
		t.Fatal(err)
	}
	if kind, _ := readMarker(path); kind != markerNone {
		t.Errorf("after removeAgentMarker: kind %v, want markerNone", kind)
	}

	// A marker a person wrote is theirs: the agent never overwrites or removes it.
	if err := os.WriteFile(path+".keep", nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := writeAgentMarker(path, "shop/x"); err != nil {
		t.Fatal(err)
	}
	if err := removeAgentMarker(path); err != nil {
		t.Fatal(err)
	}
	if kind, _ := readMarker(path); kind != markerUser {
		t.Errorf("a person's marker: kind %v, want markerUser", kind)
	}
}
