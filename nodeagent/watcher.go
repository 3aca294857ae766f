package nodeagent

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/go-logr/logr"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/event"

	"github.com/checkpoint-quota/checkpoint-quota/internal/archive"
)

// watcher turns changes in the checkpoint directories into archive keys for the
// reconciler: fsnotify events as they happen, a full scan at start, and a periodic rescan
// that enqueues only what changed since the previous scan, at the cost of one stat per file.
type watcher struct {
	cfg    Config
	events chan<- event.TypedGenericEvent[fileKey]
	log    logr.Logger
	// recorded lists the archives the agent published before it started, so that the
	// first scan also handles those whose file is gone.
	recorded func() []string
	// unseen lists the archives whose record names a Checkpoint that the cache does not
	// hold; a signal on recheck (the informer listed the Checkpoints again) asks for it soon.
	unseen  func(context.Context) []fileKey
	recheck <-chan struct{}

	// seen is the state of each archive at the previous scan; only the watcher's goroutine uses it.
	seen map[fileKey]scanned
	// missing remembers directories already reported missing, to log once.
	missing map[string]bool
}

// scanned is what a scan saw of one archive: its version and whether a .keep marker sat beside it.
type scanned struct {
	version archive.Version
	marker  bool
}

// NeedLeaderElection is false: every node's agent runs.
func (w *watcher) NeedLeaderElection() bool { return false }

// Start watches until ctx ends.
func (w *watcher) Start(ctx context.Context) error {
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return err
	}
	defer func() { _ = fw.Close() }()
	w.seen = map[fileKey]scanned{}
	if w.recorded != nil {
		for _, p := range w.recorded() {
			w.seen[keyFromPath(p)] = scanned{}
		}
	}
	w.missing = map[string]bool{}
	w.watchDirs(fw)
	w.scan(ctx)

	ticker := w.cfg.Clock.NewTicker(w.cfg.RescanInterval)
	defer ticker.Stop()
	var recheck clock.Timer
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-fw.Events:
			if !ok {
				return errors.New("fsnotify closed its event channel")
			}
			if k, ok := archiveKeyOf(ev.Name); ok {
				w.send(ctx, k)
			}
		case err, ok := <-fw.Errors:
			if !ok {
				return errors.New("fsnotify closed its error channel")
			}
			// An overflow lost events: only a scan can tell what changed.
			w.log.Error(err, "Lost events of the checkpoint directories; scanning them again")
			w.scan(ctx)
		case <-ticker.C():
			w.watchDirs(fw)
			w.scan(ctx)
			w.sendUnseen(ctx)
		case <-w.recheck:
			// The informer lists again after a broken watch; what was created and deleted
			// in between it never shows, and no event will bring it.
			if recheck == nil {
				recheck = w.cfg.Clock.NewTimer(recheckDelay)
			}
		case <-timerC(recheck):
			recheck = nil
			w.sendUnseen(ctx)
		}
	}
}

// recheckDelay is how long after the informer listed the Checkpoints again the records are
// compared with the cache: time for it to deliver the whole list.
const recheckDelay = 2 * time.Second

// timerC is t's channel, or nil (never ready) without a timer.
func timerC(t clock.Timer) <-chan time.Time {
	if t == nil {
		return nil
	}
	return t.C()
}

// sendUnseen enqueues the archives whose recorded Checkpoint the cache does not hold: one
// created and deleted while the watch was down is gone without an event, and only a
// reconcile that asks the apiserver finds out (whyGone).
func (w *watcher) sendUnseen(ctx context.Context) {
	if w.unseen == nil {
		return
	}
	for _, k := range w.unseen(ctx) {
		w.send(ctx, k)
	}
}

// watchDirs adds a watch for every directory; one that does not exist yet is retried at the next rescan.
func (w *watcher) watchDirs(fw *fsnotify.Watcher) {
	watched := map[string]bool{}
	for _, d := range fw.WatchList() {
		watched[d] = true
	}
	for _, d := range w.cfg.Dirs {
		if watched[d] {
			continue
		}
		if err := fw.Add(d); err != nil {
			if !w.missing[d] {
				w.log.Error(err, "Could not watch a checkpoint directory; retrying at every rescan", "directory", d)
			}
			w.missing[d] = true
			continue
		}
		delete(w.missing, d)
	}
}

// scan lists every directory and enqueues the archives that are new, changed or gone.
func (w *watcher) scan(ctx context.Context) {
	now := map[fileKey]scanned{}
	for _, d := range w.cfg.Dirs {
		entries, err := os.ReadDir(d)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			w.log.Error(err, "Could not list a checkpoint directory", "directory", d)
			// Keep what was seen, so that an unreadable directory does not look empty.
			for k, s := range w.seen {
				if k.Dir == d {
					now[k] = s
				}
			}
			continue
		}
		for _, e := range entries {
			name := e.Name()
			if a, ok := archive.IsKeepMarkerName(name); ok {
				k := fileKey{Dir: d, Name: a}
				s := now[k]
				s.marker = true
				now[k] = s
				continue
			}
			if !archive.IsArchiveName(name) {
				continue
			}
			info, err := e.Info()
			if err != nil {
				continue // removed since the listing; fsnotify reports it
			}
			k := fileKey{Dir: d, Name: name}
			s := now[k]
			s.version = archive.VersionOf(info)
			now[k] = s
		}
	}
	for k, s := range now {
		if old, ok := w.seen[k]; !ok || old != s {
			w.send(ctx, k)
		}
	}
	for k := range w.seen {
		if _, ok := now[k]; !ok {
			w.send(ctx, k)
		}
	}
	w.seen = now
}

func (w *watcher) send(ctx context.Context, k fileKey) {
	select {
	case w.events <- event.TypedGenericEvent[fileKey]{Object: k}:
	case <-ctx.Done():
	}
}

// archiveKeyOf returns the archive a changed path stands for: the archive itself or the
// archive of a .keep marker. Other files are none of the agent's business.
func archiveKeyOf(path string) (fileKey, bool) {
	dir, name := filepath.Dir(path), filepath.Base(path)
	if a, ok := archive.IsKeepMarkerName(name); ok {
		return fileKey{Dir: dir, Name: a}, true
	}
	if archive.IsArchiveName(name) {
		return fileKey{Dir: dir, Name: name}, true
	}
	return fileKey{}, false
}
