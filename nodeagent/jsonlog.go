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
)

// jsonLog is an append-only file of JSON lines in the agent's state directory: a line per
// change, in one write(2) to a file that is already open, replayed in order at start. It
// is rewritten with only the live state (compacted: to a temporary file, synced, renamed
// into place) at start and whenever it holds more than twice as many lines as the state
// has entries. So a change costs what it writes, not what the state holds: the agent's
// records (records.go) and where its offloaded archives are stored (stored.go) each keep
// one. Its owner serializes the calls.
type jsonLog struct {
	path string
	// live returns the lines of the live state, in the order a compaction writes them.
	live func() []any

	// log stays open until the process ends: closing it when the manager stops would fail
	// the change of a worker still finishing.
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

func newJSONLog(dir, name string, live func() []any) jsonLog {
	return jsonLog{path: filepath.Join(dir, name), live: live, openLog: os.OpenFile, sync: (*os.File).Sync}
}

// replay calls each with every line of the log, numbered from 1; a log that does not
// exist has none. A line each cannot take, or one too long to read, is returned in bad
// and skipped.
func (l *jsonLog) replay(each func(line []byte) error) (bad []error, err error) {
	data, err := os.ReadFile(l.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", l.path, err)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		if err := each(sc.Bytes()); err != nil {
			bad = append(bad, fmt.Errorf("%s line %d: %w", l.path, n, err))
		}
	}
	if err := sc.Err(); err != nil {
		bad = append(bad, fmt.Errorf("%s: %w", l.path, err))
	}
	return bad, nil
}

// add appends v as one line, synced to disk before it returns when durably. After a
// failed write the log is compacted first, so that no line follows a torn one.
func (l *jsonLog) add(v any, durably bool) error {
	if l.broken {
		if err := l.compact(); err != nil {
			return err
		}
	}
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if _, err := l.log.Write(append(data, '\n')); err != nil {
		l.broken = true
		return err
	}
	l.lines++
	if durably {
		if err := l.sync(l.log); err != nil {
			l.broken = true
			return err
		}
	}
	return nil
}

// compactIfLong compacts the log when most of its lines are outdated: more than twice the
// live state's entries, and at least 1,024 more.
func (l *jsonLog) compactIfLong(entries int) error {
	if l.lines <= 2*entries+1024 {
		return nil
	}
	return l.compact()
}

// compact rewrites the log with the live state only: to a temporary file, synced, then
// renamed over the log, so that a crash leaves the old log or the new one.
func (l *jsonLog) compact() error {
	lines := l.live()
	var buf bytes.Buffer
	for _, v := range lines {
		data, err := json.Marshal(v)
		if err != nil {
			return err
		}
		buf.Write(data)
		buf.WriteByte('\n')
	}
	if err := writeSynced(l.path+".tmp", buf.Bytes()); err != nil {
		_ = os.Remove(l.path + ".tmp")
		return fmt.Errorf("compacting %s: %w", l.path, err)
	}
	if err := os.Rename(l.path+".tmp", l.path); err != nil {
		_ = os.Remove(l.path + ".tmp")
		return fmt.Errorf("compacting %s: %w", l.path, err)
	}
	syncDir(filepath.Dir(l.path))
	log, err := l.openLog(l.path, os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		// l.log is the old log, now unlinked: what it receives is lost at the next start.
		// Broken, the next change compacts again before it writes.
		l.broken = true
		return fmt.Errorf("opening %s: %w", l.path, err)
	}
	if l.log != nil {
		_ = l.log.Close()
	}
	l.log, l.lines, l.broken = log, len(lines), false
	return nil
}

// writeSynced writes data to the file at path, created or truncated, and syncs it.
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
