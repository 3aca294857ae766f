package nodeagent

import (
	"os"
	"sort"
	"sync"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
)

// copiesFile holds, in the agent's state directory, which archives of this node are copies
// fetched from a CheckpointStore (fetch_copy.go): written before the copy is linked into
// place, so that the Checkpoint the agent publishes for it says so (spec.archive.copyOf) from
// its first write, even after a restart in between.
const copiesFile = "copies.json"

// copyEntry is one line of copiesFile.
type copyEntry struct {
	Path   string           `json:"path"`
	Size   int64            `json:"size"`
	CopyOf cqv1.ArchiveCopy `json:"copyOf"`
}

// copyBook is the agent's record of the copies on its node, by path.
type copyBook struct {
	dir string

	mu      sync.Mutex
	entries map[string]copyEntry
	// pending are the paths being fetched: their entry stays while the file is not there yet.
	pending map[string]bool
}

// openCopies reads copiesFile and drops the entries whose file is gone (a fetch cut short
// before its link, or a copy removed while the agent was down). A file that does not parse
// is reported and ignored: a copy is then published as an archive of its own, which keeps it.
func openCopies(dir string) (*copyBook, error) {
	b := &copyBook{dir: dir, entries: map[string]copyEntry{}, pending: map[string]bool{}}
	var entries []copyEntry
	if err := loadJSON(dir, copiesFile, &entries); err != nil {
		return b, err
	}
	for _, e := range entries {
		if _, err := os.Lstat(e.Path); err == nil {
			b.entries[e.Path] = e
		}
	}
	return b, nil
}

// of returns what the archive at path, of size bytes, is a copy of; nil when it is none.
func (b *copyBook) of(path string, size int64) *cqv1.ArchiveCopy {
	b.mu.Lock()
	defer b.mu.Unlock()
	if e, ok := b.entries[path]; ok && e.Size == size {
		c := e.CopyOf
		return &c
	}
	return nil
}

// begin records, durably, that the archive about to be linked at path is a copy, and keeps
// the entry until done, whatever forget is told meanwhile.
func (b *copyBook) begin(e copyEntry) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.pending[e.Path] = true
	b.entries[e.Path] = e
	return b.save()
}

// done ends what begin started; linked says whether the copy is in place.
func (b *copyBook) done(path string, linked bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.pending, path)
	if !linked {
		delete(b.entries, path)
		_ = b.save() // a stale entry is dropped at the next start
	}
}

// forget drops the entry of an archive whose file is gone, unless it is being fetched.
func (b *copyBook) forget(path string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.entries[path]; !ok || b.pending[path] {
		return nil
	}
	delete(b.entries, path)
	return b.save()
}

// save writes copiesFile atomically; the caller holds b.mu.
func (b *copyBook) save() error {
	entries := make([]copyEntry, 0, len(b.entries))
	for _, e := range b.entries {
		entries = append(entries, e)
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Path < entries[j].Path })
	return saveJSON(b.dir, copiesFile, entries)
}
