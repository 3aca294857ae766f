package nodeagent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
)

// storedLogName holds, in the agent's state directory, where the archives of this node's
// offloaded Checkpoints are: a Checkpoint deleted while the agent is down takes its
// status.location with it, and the object would stay in the store, seen by nobody. It is a
// jsonLog, a line per archive stored or forgotten, each synced before the file it names
// leaves the node; agents before session 7 rewrote storedFile whole for each (40 ms and
// 5 MB written per archive on a node that had stored 10,000: docs/offload.md, "Figures").
const storedLogName = "stored.log"

// storedFile is where agents before session 7 kept the same, as one JSON array; it is
// read once, when there is no storedLogName yet, then removed.
const storedFile = "stored.json"

// storedEntry is one archive in storedLogName and storedFile.
type storedEntry struct {
	Namespace string    `json:"namespace"`
	Name      string    `json:"name"`
	UID       types.UID `json:"uid"`
	Store     string    `json:"store"`
	Bucket    string    `json:"bucket"`
	Key       string    `json:"key"`
	// Archive and Pinned are the Checkpoint's, to publish it again as an orphan when its
	// namespace is deleted (orphan_stored.go); absent in entries written before.
	Archive *cqv1.ArchiveSource `json:"archive,omitempty"`
	Pinned  bool                `json:"pinned,omitempty"`
}

// storedLine is one line of storedLogName: an archive stored, or a Checkpoint's forgotten.
type storedLine struct {
	Put  *storedEntry `json:"put,omitempty"`
	Drop *storedKey   `json:"drop,omitempty"`
}

type storedKey struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
}

func entryOf(k types.NamespacedName, so storedObject) *storedEntry {
	return &storedEntry{Namespace: k.Namespace, Name: k.Name, UID: so.uid, Store: so.location.Store,
		Bucket: so.location.Bucket, Key: so.location.Key, Archive: so.archive, Pinned: so.pinned}
}

func (e *storedEntry) apply(m map[types.NamespacedName]storedObject) {
	m[types.NamespacedName{Namespace: e.Namespace, Name: e.Name}] = storedObject{uid: e.UID,
		location: cqv1.ArchiveLocation{Store: e.Store, Bucket: e.Bucket, Key: e.Key}, archive: e.Archive, pinned: e.Pinned}
}

// openStored loads o.stored from storedLogName, or from the storedFile of an older agent
// when there is no log yet, and compacts the log (which then holds the older file's
// entries, and the file goes). A line or file that does not parse is reported and
// skipped: the objects it named then stay in the store, nothing else.
func (o *Offloader) openStored() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	l := newJSONLog(o.Config.StateDir, storedLogName, o.storedLines)
	o.storedLog = &l
	_, statErr := os.Stat(l.path)
	logExisted := statErr == nil
	bad, err := l.replay(func(line []byte) error {
		var sl storedLine
		if err := json.Unmarshal(line, &sl); err != nil {
			return err
		}
		switch {
		case sl.Put != nil:
			sl.Put.apply(o.stored)
		case sl.Drop != nil:
			delete(o.stored, types.NamespacedName{Namespace: sl.Drop.Namespace, Name: sl.Drop.Name})
		default:
			return errors.New("neither an archive stored nor one forgotten")
		}
		return nil
	})
	if err != nil {
		return err
	}
	if !logExisted {
		var entries []storedEntry
		if err := loadJSON(o.Config.StateDir, storedFile, &entries); err != nil {
			bad = append(bad, err)
		}
		for i := range entries {
			entries[i].apply(o.stored)
		}
	}
	if err := l.compact(); err != nil {
		return errors.Join(append(bad, err)...)
	}
	// Only now that the log holds them durably does the older file go.
	if err := os.Remove(filepath.Join(o.Config.StateDir, storedFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		bad = append(bad, err)
	}
	return errors.Join(bad...)
}

// storedLines are the lines of a compacted storedLogName, sorted by key; the caller holds o.mu.
func (o *Offloader) storedLines() []any {
	keys := make([]types.NamespacedName, 0, len(o.stored))
	for k := range o.stored {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return o.stored[keys[i]].location.Key < o.stored[keys[j]].location.Key })
	lines := make([]any, len(keys))
	for i, k := range keys {
		lines[i] = storedLine{Put: entryOf(k, o.stored[k])}
	}
	return lines
}

// storedChanged writes the change of o.stored for key to storedLogName, synced; the
// caller holds o.mu and changed o.stored. An Offloader without a log (tests) keeps it in
// memory only.
func (o *Offloader) storedChanged(key types.NamespacedName) {
	if o.storedLog == nil {
		return
	}
	line := storedLine{Drop: &storedKey{Namespace: key.Namespace, Name: key.Name}}
	if so, ok := o.stored[key]; ok {
		line = storedLine{Put: entryOf(key, so)}
	}
	err := o.storedLog.add(line, true)
	if err == nil {
		err = o.storedLog.compactIfLong(len(o.stored))
	}
	if err != nil {
		o.logSaveError(err)
	}
}

// loadJSON reads the file name of the state directory dir into v; a missing file leaves v
// as it is.
func loadJSON(dir, name string, v any) error {
	path := filepath.Join(dir, name)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("reading %s: %w", path, err)
	}
	return nil
}

// saveJSON writes v as JSON to the file name in the state directory dir, atomically and
// durably: to a temporary file, synced, then renamed into place.
func saveJSON(dir, name string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	path := filepath.Join(dir, name)
	if err := writeSynced(path+".tmp", data); err != nil {
		return err
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		return err
	}
	syncDir(dir)
	return nil
}

// storedSweep deletes, once the agent starts, the objects of the Checkpoints that went
// while it was down: each that stored.log names and that the apiserver no longer has
// (or has under another UID). Deleting checks the object's UID metadata as always.
type storedSweep struct{ o *Offloader }

func (s storedSweep) NeedLeaderElection() bool { return false }

func (s storedSweep) Start(ctx context.Context) error {
	o := s.o
	o.mu.Lock()
	keys := make([]types.NamespacedName, 0, len(o.stored))
	uids := make(map[types.NamespacedName]types.UID, len(o.stored))
	for k, so := range o.stored {
		keys = append(keys, k)
		uids[k] = so.uid
	}
	o.mu.Unlock()
	log := logf.FromContext(ctx).WithName("stored-sweep")
	for _, k := range keys {
		var c cqv1.Checkpoint
		err := o.APIReader.Get(ctx, k, &c)
		switch {
		case apierrors.IsNotFound(err), err == nil && c.UID != uids[k]:
			if err := o.deleteStored(ctx, k, ""); err != nil {
				// Kept in stored.log: the next start tries again.
				log.Error(err, "Could not delete the stored archive of a Checkpoint deleted while the agent was down", "checkpoint", k)
			}
		case err != nil:
			log.Error(err, "Could not look up an offloaded Checkpoint; its object is looked at on the next start", "checkpoint", k)
		}
		if ctx.Err() != nil {
			return nil
		}
	}
	return nil
}
