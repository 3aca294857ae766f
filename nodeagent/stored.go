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

// storedFile holds, in the agent's state directory, where the archives of this node's
// offloaded Checkpoints are: a Checkpoint deleted while the agent is down takes its
// status.location with it, and the object would stay in the store, seen by nobody.
const storedFile = "stored.json"

// storedEntry is one line of storedFile.
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

// loadStored reads storedFile; a missing file is an empty one. A file that does not parse
// is reported and ignored: the objects it named then stay in the store, nothing else.
func loadStored(dir string) (map[types.NamespacedName]storedObject, error) {
	out := map[types.NamespacedName]storedObject{}
	var entries []storedEntry
	if err := loadJSON(dir, storedFile, &entries); err != nil {
		return out, err
	}
	for _, e := range entries {
		out[types.NamespacedName{Namespace: e.Namespace, Name: e.Name}] = storedObject{uid: e.UID,
			location: cqv1.ArchiveLocation{Store: e.Store, Bucket: e.Bucket, Key: e.Key}, archive: e.Archive, pinned: e.Pinned}
	}
	return out, nil
}

// saveStored writes the map to storedFile, atomically; the caller holds o.mu.
func (o *Offloader) saveStored() error {
	entries := make([]storedEntry, 0, len(o.stored))
	for k, so := range o.stored {
		entries = append(entries, storedEntry{Namespace: k.Namespace, Name: k.Name, UID: so.uid,
			Store: so.location.Store, Bucket: so.location.Bucket, Key: so.location.Key, Archive: so.archive, Pinned: so.pinned})
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Key < entries[j].Key })
	return saveJSON(o.Config.StateDir, storedFile, entries)
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
// while it was down: each that storedFile names and that the apiserver no longer has
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
				// Kept in storedFile: the next start tries again.
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

// storedFor is the map the Offloader starts with, and a runnable that deletes the objects
// of the Checkpoints deleted meanwhile.
func storedFor(cfg Config) (map[types.NamespacedName]storedObject, error) {
	m, err := loadStored(cfg.StateDir)
	if err != nil {
		return map[types.NamespacedName]storedObject{}, err
	}
	return m, nil
}
