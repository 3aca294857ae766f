package archive

import (
	"os"
	"sync"
	"syscall"
)

// Version identifies one version of a file: the same device, inode, size and
// modification time mean the same content, so its identity need not be read again.
type Version struct {
	Dev, Ino uint64
	Size     int64
	// ModTime is in nanoseconds since the epoch, so that versions compare with ==.
	ModTime int64
}

// VersionOf returns the version of a file from its Lstat or Stat result.
func VersionOf(info os.FileInfo) Version {
	v := Version{Size: info.Size(), ModTime: info.ModTime().UnixNano()}
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		v.Dev, v.Ino = uint64(st.Dev), st.Ino //nolint:unconvert // Dev is not uint64 on every platform
	}
	return v
}

// Cache remembers the result of Read per path and version. It holds one entry per path,
// so it is as large as the directory, and a new version of a file replaces the old one.
type Cache struct {
	mu      sync.Mutex
	entries map[string]cacheEntry
}

type cacheEntry struct {
	version Version
	result  Result
	err     error
}

// NewCache returns an empty cache.
func NewCache() *Cache {
	return &Cache{entries: map[string]cacheEntry{}}
}

// Get returns the result for path at version v, reading the archive only when that
// version has not been read before. cached says whether the file was left unread. A read
// that failed with ReasonIO is not kept: the operating system's error (EIO, EMFILE, a
// mount gone for a moment) says nothing about the archive, and the next Get reads again.
func (c *Cache) Get(path string, v Version, lim Limits) (res Result, cached bool, err error) {
	c.mu.Lock()
	e, ok := c.entries[path]
	c.mu.Unlock()
	if ok && e.version == v {
		return e.result, true, e.err
	}
	res, err = Read(path, lim)
	c.mu.Lock()
	if err != nil && ReasonOf(err) == ReasonIO {
		delete(c.entries, path)
	} else {
		c.entries[path] = cacheEntry{version: v, result: res, err: err}
	}
	c.mu.Unlock()
	return res, false, err
}

// Forget drops what is known about path, after the file is gone.
func (c *Cache) Forget(path string) {
	c.mu.Lock()
	delete(c.entries, path)
	c.mu.Unlock()
}
