package nodeagent

import (
	"bufio"
	"bytes"
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

// records keeps the agent's records in one append-only log in its state directory, a
// JSON line per change (a record put, or an archive's record dropped), replayed in order
// at start. A change costs one write(2) to a file that is already open, where the file per
// record that earlier agents wrote (created, written, renamed) cost much of the agent's CPU
// while publishing (docs/node-agent.md). The log is rewritten with only the live records (compacted: to a
// temporary file, synced, renamed into place) at start and whenever it holds more than
// twice as many lines as records.
//
// Changes are not synced to disk. Losing some to a power failure, or finding a line torn
// or garbled, leaves each archive with an older record of its own or none, which can only
// make the agent keep a file: with no record the archive is published again, and a file
// is never removed without a record (docs/node-agent.md, "The protocol").
type records struct {
	dir string

	mu     sync.Mutex
	byPath map[string]*record
	// log stays open until the process ends: closing it when the manager stops would fail
	// the record of a create that a worker is still finishing.
	log *os.File
	// lines counts the lines in the log; broken says a write failed, maybe half done, or
	// the log could not be opened again after a compaction, so the next change rewrites
	// the log rather than append after a torn line or to a file no longer in place.
	lines  int
	broken bool

	// openLog opens the log after a compaction, and sync syncs it; tests replace them.
	openLog func(name string, flag int, perm os.FileMode) (*os.File, error)
	sync    func(*os.File) error
}

// openRecords loads the records in dir, creating it if needed, and compacts the log. A
// line that cannot be read is reported and skipped: its archive keeps an older record,
// or none and is published again. Records of earlier agents (a JSON file per record) are
// moved into the log; one that cannot be read is reported and left on disk.
func openRecords(dir string) (*records, []error, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("creating the agent's state directory %s: %w (set --state-dir to a writable directory on the node)", dir, err)
	}
	rs := &records{dir: dir, byPath: map[string]*record{}, openLog: os.OpenFile, sync: (*os.File).Sync}
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
	data, err := os.ReadFile(filepath.Join(rs.dir, logName))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the agent's records %s: %w", filepath.Join(rs.dir, logName), err)
	}
	var bad []error
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		var l logLine
		err := json.Unmarshal(sc.Bytes(), &l)
		switch {
		case err != nil:
		case l.Put != nil:
			err = l.Put.valid()
		case l.Drop == "":
			err = errors.New("neither a record nor a drop")
		}
		if err != nil {
			bad = append(bad, fmt.Errorf("%s line %d: %w", filepath.Join(rs.dir, logName), n, err))
			continue
		}
		if l.Put != nil {
			rs.byPath[l.Put.Path] = l.Put
		} else {
			delete(rs.byPath, l.Drop)
		}
	}
	if err := sc.Err(); err != nil {
		bad = append(bad, fmt.Errorf("%s: %w", filepath.Join(rs.dir, logName), err))
	}
	return bad, nil
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
	if err := rs.append(logLine{Put: &rec}); err != nil {
		return fmt.Errorf("writing the record of %s: %w", rec.Path, err)
	}
	rs.byPath[rec.Path] = &rec
	return rs.compactIfLong()
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
	if err := rs.append(line); err != nil {
		return fmt.Errorf("removing the record of %s: %w", path, err)
	}
	if durably {
		if err := rs.sync(rs.log); err != nil {
			rs.broken = true
			return fmt.Errorf("removing the record of %s: %w", path, err)
		}
	}
	if keep != nil {
		rs.byPath[path] = keep
	} else {
		delete(rs.byPath, path)
	}
	return rs.compactIfLong()
}

// append writes one line to the log, in one write. After a failed write the log is
// rewritten first, so that no line follows a torn one.
func (rs *records) append(l logLine) error {
	if rs.broken {
		if err := rs.compact(); err != nil {
			return err
		}
	}
	data, err := json.Marshal(l)
	if err != nil {
		return err
	}
	if _, err := rs.log.Write(append(data, '\n')); err != nil {
		rs.broken = true
		return err
	}
	rs.lines++
	return nil
}

// compactIfLong rewrites the log when most of its lines are outdated.
func (rs *records) compactIfLong() error {
	if rs.lines <= 2*len(rs.byPath)+1024 {
		return nil
	}
	return rs.compact()
}

// compact rewrites the log with the live records only, sorted by path: to a temporary
// file, synced, then renamed over the log, so that a crash leaves the old log or the new
// one. The caller holds rs.mu, or has rs to itself.
func (rs *records) compact() error {
	paths := make([]string, 0, len(rs.byPath))
	for p := range rs.byPath {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	var buf bytes.Buffer
	for _, p := range paths {
		data, err := json.Marshal(logLine{Put: rs.byPath[p]})
		if err != nil {
			return err
		}
		buf.Write(data)
		buf.WriteByte('\n')
	}
	file := filepath.Join(rs.dir, logName)
	if err := writeSynced(file+".tmp", buf.Bytes()); err != nil {
		_ = os.Remove(file + ".tmp")
		return fmt.Errorf("compacting the agent's records %s: %w", file, err)
	}
	if err := os.Rename(file+".tmp", file); err != nil {
		_ = os.Remove(file + ".tmp")
		return fmt.Errorf("compacting the agent's records %s: %w", file, err)
	}
	syncDir(rs.dir)
	log, err := rs.openLog(file, os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		// rs.log is the old log, now unlinked: what it receives is lost at the next start.
		// Broken, the next change compacts again before it writes.
		rs.broken = true
		return fmt.Errorf("opening the agent's records %s: %w", file, err)
	}
	if rs.log != nil {
		_ = rs.log.Close()
	}
	rs.log, rs.lines, rs.broken = log, len(paths), false
	return nil
}

// writeSynced writes data to a new file at path and syncs it.
func writeSynced(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// syncDir makes a rename in dir durable, where the filesystem allows it.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
}
