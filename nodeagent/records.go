package nodeagent

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"k8s.io/apimachinery/pkg/types"
)

// record is what the agent remembers, on the node's disk, of the Checkpoint it published
// for one archive. It replaces a finalizer: when that Checkpoint is gone, the record's
// witnesses tell an explicit delete (the file goes) from everything else that makes
// objects disappear (the file stays): the namespace deleted, the CRD deleted or
// reinstalled, the Node recreated (the manager released a gone node's Checkpoints).
type record struct {
	// Path is the archive.
	Path string `json:"path"`
	// Namespace, Name and UID are the Checkpoint.
	Namespace string    `json:"namespace"`
	Name      string    `json:"name"`
	UID       types.UID `json:"uid"`
	// OrphanOf is the namespace the archive was taken in, when the Checkpoint is an orphan
	// living in the agent's namespace.
	OrphanOf string `json:"orphanOf,omitempty"`
	// The witnesses: the UIDs, when the Checkpoint was created, of its namespace, of the
	// Checkpoint CRD and of this agent's Node ("" when there was no Node object).
	NamespaceUID types.UID `json:"namespaceUID"`
	CRDUID       types.UID `json:"crdUID"`
	NodeUID      types.UID `json:"nodeUID,omitempty"`
}

// records keeps one small JSON file per published archive in the agent's state directory.
// Each write goes to a temporary file that is renamed into place, so a crash leaves the
// old record or the new one, never half of one.
type records struct {
	dir string

	mu     sync.Mutex
	byPath map[string]*record
}

// openRecords loads the records in dir, creating it if needed. A record that cannot be
// read is left on disk and reported, and its archive is treated as never published:
// the agent then publishes it again, which keeps the file.
func openRecords(dir string) (*records, []error, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("creating the agent's state directory %s: %w (set --state-dir to a writable directory on the node)", dir, err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("reading the agent's state directory %s: %w", dir, err)
	}
	rs := &records{dir: dir, byPath: map[string]*record{}}
	var bad []error
	for _, e := range entries {
		if !e.Type().IsRegular() || filepath.Ext(e.Name()) != ".json" {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		var rec record
		if err == nil {
			err = json.Unmarshal(data, &rec)
		}
		if err == nil && (rec.Path == "" || rec.Name == "" || rec.Namespace == "") {
			err = errors.New("path, namespace or name is empty")
		}
		if err != nil {
			bad = append(bad, fmt.Errorf("record %s: %w", filepath.Join(dir, e.Name()), err))
			continue
		}
		rs.byPath[rec.Path] = &rec
	}
	return rs, bad, nil
}

// get returns a copy of the archive's record, or nil.
func (rs *records) get(path string) *record {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rec, ok := rs.byPath[path]; ok {
		c := *rec
		return &c
	}
	return nil
}

// paths lists the archives that have a record.
func (rs *records) paths() []string {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	out := make([]string, 0, len(rs.byPath))
	for p := range rs.byPath {
		out = append(out, p)
	}
	return out
}

// put writes rec unless the same record is already on disk. The reconciler handles one
// archive at a time, so the file is written outside the lock: the workers do not wait
// for each other's disk writes.
//
// The record is not synced to disk. A record lost to a power failure (or left empty or
// half written) can only make the agent keep a file: with no record, or an unreadable one,
// it publishes the archive again (see docs/node-agent.md), and it never removes a file
// without a record. A sync per archive cost about a third of the agent's CPU while
// publishing.
func (rs *records) put(rec record) error {
	rs.mu.Lock()
	old, ok := rs.byPath[rec.Path]
	rs.mu.Unlock()
	if ok && *old == rec {
		return nil
	}
	data, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	file := rs.file(rec.Path)
	tmp := file + ".tmp"
	err = os.WriteFile(tmp, data, 0o600)
	if err == nil {
		err = os.Rename(tmp, file)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("writing the record of %s: %w", rec.Path, err)
	}
	rs.mu.Lock()
	rs.byPath[rec.Path] = &rec
	rs.mu.Unlock()
	return nil
}

// drop removes the archive's record. The agent drops a record before it deletes the
// Checkpoint itself, so that its own deletes are never taken for a person's.
func (rs *records) drop(path string) error {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if _, ok := rs.byPath[path]; !ok {
		return nil
	}
	if err := os.Remove(rs.file(path)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing the record of %s: %w", path, err)
	}
	delete(rs.byPath, path)
	return nil
}

// file is where the record of the archive at path lives: named by a hash of the path, so
// that any path gives a valid, unique file name.
func (rs *records) file(path string) string {
	return filepath.Join(rs.dir, hashOf(path)+".json")
}
