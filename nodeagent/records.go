package nodeagent

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
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
	// living in the agent's namespace. It outlives the record: dropping the record of an
	// orphan leaves a placeholder that keeps only Path and OrphanOf (see placeholder).
	OrphanOf string `json:"orphanOf,omitempty"`
	// The witnesses: the UIDs, when the Checkpoint was created, of its namespace, of the
	// Checkpoint CRD and of this agent's Node ("" when there was no Node object).
	NamespaceUID types.UID `json:"namespaceUID"`
	CRDUID       types.UID `json:"crdUID"`
	NodeUID      types.UID `json:"nodeUID,omitempty"`
}

func (r *record) valid() error {
	switch {
	case r.Path == "":
		return errors.New("path is empty")
	case r.placeholder() && (r.OrphanOf == "" || r.Name != "" || r.Namespace != ""):
		return errors.New("a record without a UID must keep only an archive's orphanOf")
	case !r.placeholder() && (r.Name == "" || r.Namespace == ""):
		return errors.New("namespace or name is empty")
	}
	return nil
}

// placeholder says the record names no Checkpoint: it only remembers that the archive is
// an orphan of OrphanOf, after the record of its Checkpoint was dropped, so that a
// namespace created later under that name never gets the archive (docs/node-agent.md,
// "Orphans"). It decides no delete. Agents before placeholders find no namespace or
// name in it and skip it as an unreadable line.
func (r *record) placeholder() bool { return r.UID == "" }

// logName is the records' log in the state directory.
const logName = "records.log"

// logLine is one line of the log: a record written, or the record of an archive dropped.
type logLine struct {
	Put  *record `json:"put,omitempty"`
	Drop string  `json:"drop,omitempty"`
}

// records keeps the agent's records in one append-only log in its state directory
// (jsonLog), a JSON line per change (a record put, or an archive's record dropped). A
// change costs one write(2), where the file per record that earlier agents wrote
// (created, written, renamed) cost much of the agent's CPU while publishing
// (docs/node-agent.md).
//
// Changes are not synced to disk. Losing some to a power failure, or finding a line torn
// or garbled, leaves each archive with an older record of its own or none, which can only
// make the agent keep a file: with no record the archive is published again, and a file
// is never removed without a record (docs/node-agent.md, "The protocol").
type records struct {
	dir string

	mu     sync.Mutex
	byPath map[string]*record
	jsonLog
}

// openRecords loads the records in dir, creating it if needed, and compacts the log. A
// line that cannot be read is reported and skipped: its archive keeps an older record,
// or none and is published again. Records of earlier agents (a JSON file per record) are
// moved into the log; one that cannot be read is reported and left on disk.
func openRecords(dir string) (*records, []error, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("creating the agent's state directory %s: %w (set --state-dir to a writable directory on the node)", dir, err)
	}
	rs := &records{dir: dir, byPath: map[string]*record{}}
	rs.jsonLog = newJSONLog(dir, logName, rs.liveLines)
	bad, err := rs.replay()
	if err != nil {
		return nil, nil, err
	}
	moved, badFiles, err := rs.loadFiles()
	if err != nil {
		return nil, nil, err
	}
	bad = append(bad, badFiles...)
	rs.mu.Lock()
	err = rs.compact()
	rs.mu.Unlock()
	if err != nil {
		return nil, nil, err
	}
	// Only now that the log holds them durably do the files go.
	for _, f := range moved {
		if err := os.Remove(f); err != nil && !errors.Is(err, fs.ErrNotExist) {
			bad = append(bad, fmt.Errorf("removing record %s, now in %s: %w", f, logName, err))
		}
	}
	return rs, bad, nil
}

// replay reads the log, when there is one, into rs.
func (rs *records) replay() ([]error, error) {
	return rs.jsonLog.replay(func(line []byte) error {
		var l logLine
		if err := json.Unmarshal(line, &l); err != nil {
			return err
		}
		switch {
		case l.Put != nil:
			if err := l.Put.valid(); err != nil {
				return err
			}
			rs.byPath[l.Put.Path] = l.Put
		case l.Drop == "":
			return errors.New("neither a record nor a drop")
		default:
			delete(rs.byPath, l.Drop)
		}
		return nil
	})
}

// loadFiles reads the records that earlier agents kept as a file each. When the log
// already existed they are older than it (left by a move interrupted before the files
// were removed) and are only returned to be removed; else they are the records.
func (rs *records) loadFiles() (moved []string, bad []error, err error) {
	_, statErr := os.Stat(filepath.Join(rs.dir, logName))
	logExisted := statErr == nil
	files, err := filepath.Glob(filepath.Join(rs.dir, "*.json"))
	if err != nil {
		return nil, nil, err
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		var rec record
		if err == nil {
			err = json.Unmarshal(data, &rec)
		}
		if err == nil {
			err = rec.valid()
		}
		if err != nil {
			bad = append(bad, fmt.Errorf("record %s: %w", f, err))
			continue
		}
		if !logExisted {
			rs.byPath[rec.Path] = &rec
		}
		moved = append(moved, f)
	}
	return moved, bad, nil
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

// put records rec unless it is the archive's record already.
func (rs *records) put(rec record) error {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if old, ok := rs.byPath[rec.Path]; ok && *old == rec {
		return nil
	}
	if err := rs.add(logLine{Put: &rec}, false); err != nil {
		return fmt.Errorf("writing the record of %s: %w", rec.Path, err)
	}
	rs.byPath[rec.Path] = &rec
	return rs.compactIfLong(len(rs.byPath))
}

// drop removes the archive's record. The agent drops a record before it deletes the
// Checkpoint itself, so that its own deletes are never taken for a person's. The record
// of an orphan leaves a placeholder that keeps its orphanOf.
func (rs *records) drop(path string) error {
	return rs.dropRecord(path, false, true)
}

// dropDurably is drop, synced to disk before it returns: for a Checkpoint the agent
// deletes itself, whose record, come back after a power failure, would read as a person's
// delete of it once the file is there (it stayed, or came back). It is rare: an archive
// that moved namespace, was rewritten or removed by something other than the agent.
func (rs *records) dropDurably(path string) error {
	return rs.dropRecord(path, true, true)
}

// dropRemoved drops the archive's record, placeholder and all, after the agent removed the file.
func (rs *records) dropRemoved(path string) error {
	return rs.dropRecord(path, false, false)
}

func (rs *records) dropRecord(path string, durably, keepOrphan bool) error {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	old, ok := rs.byPath[path]
	if !ok {
		return nil
	}
	line, keep := logLine{Drop: path}, (*record)(nil)
	if keepOrphan && old.OrphanOf != "" {
		keep = &record{Path: path, OrphanOf: old.OrphanOf}
		line = logLine{Put: keep}
	}
	if keep != nil && *keep == *old {
		// A placeholder already: it names no Checkpoint that a delete could be taken for.
		return nil
	}
	if err := rs.add(line, durably); err != nil {
		return fmt.Errorf("removing the record of %s: %w", path, err)
	}
	if keep != nil {
		rs.byPath[path] = keep
	} else {
		delete(rs.byPath, path)
	}
	return rs.compactIfLong(len(rs.byPath))
}

// liveLines are the lines of a compacted log: the live records, sorted by path. The
// caller holds rs.mu, or has rs to itself.
func (rs *records) liveLines() []any {
	paths := make([]string, 0, len(rs.byPath))
	for p := range rs.byPath {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	lines := make([]any, len(paths))
	for i, p := range paths {
		lines[i] = logLine{Put: rs.byPath[p]}
	}
	return lines
}
