package nodeagent

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"

	"github.com/checkpoint-quota/checkpoint-quota/internal/archive"
)

// markerSignature starts every .keep marker the agent writes, so that it removes only
// its own markers and never one a person or another tool put there.
const markerSignature = "checkpointquota.dev/node-agent: pinned by spec.pinned of Checkpoint "

// markerKind says who wrote an archive's .keep marker.
type markerKind int

const (
	markerNone markerKind = iota
	// markerUser is a marker the agent did not write: it pins until a person removes it.
	markerUser
	// markerAgent is a marker the agent wrote to keep spec.pinned on disk.
	markerAgent
)

// errUnsafe marks a path the agent refuses to remove.
var errUnsafe = errors.New("refusing to remove")

// readMarker tells whether the archive at path has a .keep marker and who wrote it. Any
// entry with the marker's name pins; only a small regular file can be the agent's.
func readMarker(path string) (markerKind, error) {
	marker := path + archive.KeepSuffix
	info, err := os.Lstat(marker)
	if errors.Is(err, fs.ErrNotExist) {
		return markerNone, nil
	}
	if err != nil {
		return markerUser, err
	}
	if !info.Mode().IsRegular() || info.Size() > 4096 {
		return markerUser, nil
	}
	f, err := os.OpenFile(marker, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return markerUser, nil
	}
	defer func() { _ = f.Close() }()
	head := make([]byte, len(markerSignature))
	if _, err := io.ReadFull(f, head); err != nil || !bytes.Equal(head, []byte(markerSignature)) {
		return markerUser, nil
	}
	return markerAgent, nil
}

// writeAgentMarker writes the agent's .keep marker beside the archive unless a marker exists.
func writeAgentMarker(path, objectRef string) error {
	f, err := os.OpenFile(path+archive.KeepSuffix, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	if err != nil {
		return err
	}
	_, err = io.WriteString(f, markerSignature+objectRef+"\n")
	return errors.Join(err, f.Close())
}

// removeAgentMarker removes the archive's .keep marker only if the agent wrote it.
func removeAgentMarker(path string) error {
	kind, err := readMarker(path)
	if err != nil || kind != markerAgent {
		return err
	}
	if err := os.Remove(path + archive.KeepSuffix); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// removeArchive removes the archive k if, and only if, it is a regular file directly
// inside a configured checkpoint directory with a kubelet archive's name. It never follows
// a symlink: Lstat looks at the entry itself, and unlink removes a name, never its target.
// A missing file is not an error, so that removal can be repeated after a crash.
func removeArchive(cfg Config, k fileKey) error {
	if !cfg.configured(k.Dir) {
		return fmt.Errorf("%w %s: %s is not a configured checkpoint directory", errUnsafe, k.Path(), k.Dir)
	}
	if !archive.IsArchiveName(k.Name) {
		return fmt.Errorf("%w %s: the name does not match the kubelet's checkpoint-<pod>_<namespace>-<container>-<time>.tar", errUnsafe, k.Path())
	}
	info, err := os.Lstat(k.Path())
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if !info.Mode().IsRegular() {
		return fmt.Errorf("%w %s: it is not a regular file (%s)", errUnsafe, k.Path(), info.Mode().Type())
	}
	if err := os.Remove(k.Path()); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}
