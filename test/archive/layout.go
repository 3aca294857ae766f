package archive

import (
	"archive/tar"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"time"

	metadata "github.com/checkpoint-restore/checkpointctl/lib"
)

// entry is one entry of the archive: a file with its data or a length of filler, or a
// directory, or (for hostile archives) any header.
type entry struct {
	name   string
	data   []byte
	filler int64
	dir    bool
	// header, when set, is written as it is, followed by data.
	header *tar.Header
}

// crioLogEntry is the name CRI-O gives the container log inside the archive: the name of
// the annotation that holds the log's path on the node.
const crioLogEntry = "io.kubernetes.cri-o.LogPath"

// entries returns the archive's entries in the runtime's order.
func (a *Archive) entries() ([]entry, error) {
	config, spec, err := a.metadata()
	if err != nil {
		return nil, err
	}
	images := criuImages(a.Time)
	pages := entry{name: metadata.CheckpointDirectory + "/pages-1.img"}
	checkpointDir := append([]entry{{name: metadata.CheckpointDirectory + "/", dir: true}}, images...)
	checkpointDir = append(checkpointDir, pages)
	// Both runtimes walk the directory, in name order.
	sort.SliceStable(checkpointDir, func(i, j int) bool { return checkpointDir[i].name < checkpointDir[j].name })
	log := entry{data: a.containerLog()}
	statsDump := entry{name: "stats-dump", data: criuImage(0x57, "stats dump")}
	dumpLog := entry{name: metadata.DumpLogFile, data: []byte(fmt.Sprintf("(00.000012) Version: 4.1 (gitid 0)\n(00.031415) Dumping finished successfully\n(%s)\n", a.RuntimeTime().Format(time.RFC3339Nano)))}
	rootfsDiff := entry{name: metadata.RootFsDiffTar, filler: 1 << 10}

	var out []entry
	switch a.Runtime {
	case Containerd, Containerd20:
		out = append(out, checkpointDir...)
		out = append(out,
			entry{name: metadata.ConfigDumpFile, data: config},
			rootfsDiff,
			entry{name: metadata.SpecDumpFile, data: spec},
		)
		if a.Runtime == Containerd {
			log.name = "container.log"
			status, _ := json.Marshal(metadata.ContainerdStatus{CreatedAt: a.Time.Add(-time.Hour).UnixNano(), StartedAt: a.Time.Add(-time.Hour + time.Second).UnixNano(), Pid: 4242})
			out = append(out, log, dumpLog, statsDump,
				entry{name: metadata.StatusFile, data: status},
				entry{name: metadata.StatusDumpFile, data: a.criStatus()})
		}
		// containerd archives a directory walk: entries come in name order.
		sort.SliceStable(out, func(i, j int) bool { return out[i].name < out[j].name })
	default:
		out = append(out, statsDump, dumpLog)
		out = append(out, checkpointDir...)
		out = append(out,
			entry{name: metadata.ConfigDumpFile, data: config},
			entry{name: metadata.SpecDumpFile, data: spec},
			entry{name: "bind.mounts", data: a.bindMounts()},
		)
		if a.RootfsDiff {
			out = append(out, rootfsDiff, entry{name: metadata.DeletedFilesFile, data: []byte("[\n  \"/tmp/cache.lock\"\n]")})
		}
		log.name = crioLogEntry
		out = append(out, log)
	}
	return out, nil
}

// writeTar writes the archive and returns an offset inside its last entry's data, where
// a Truncated archive is cut.
func (a *Archive) writeTar(w io.Writer) (int64, error) {
	entries, err := a.entries()
	if err != nil {
		return 0, err
	}
	entries = a.hostile(entries)

	// The memory pages take whatever the requested size leaves.
	used := int64(1024) // end-of-archive blocks
	pagesAt := -1
	for i, e := range entries {
		used += 512 + blocks(int64(len(e.data))+e.filler)
		if e.name == metadata.CheckpointDirectory+"/pages-1.img" {
			pagesAt = i
		}
	}
	if pagesAt >= 0 && a.Size > used {
		entries[pagesAt].filler = blocks(a.Size - used)
	}

	cw := &countingWriter{w: w}
	tw := tar.NewWriter(cw)
	// The runtimes truncate entry times to the second; both tar writers then pick
	// USTAR headers (CRI-O) or are told PAX (containerd).
	mod := a.Time.In(a.zone()).Truncate(time.Second)
	format := tar.FormatUSTAR
	if a.Runtime != CRIO {
		format = tar.FormatPAX
	}
	var cut int64
	for _, e := range entries {
		hdr := e.header
		if hdr == nil {
			hdr = &tar.Header{Typeflag: tar.TypeReg, Name: e.name, Mode: 0o600, Size: int64(len(e.data)) + e.filler, ModTime: mod, Format: format}
			if e.dir {
				hdr = &tar.Header{Typeflag: tar.TypeDir, Name: e.name, Mode: 0o700, ModTime: mod, Format: format}
			}
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return 0, err
		}
		// The writer has padded the previous entry and written this header: cw.n is
		// where this entry's data starts.
		cut = cw.n + (int64(len(e.data))+e.filler)/2
		if a.Broken == OversizedEntry && e.name == metadata.CheckpointDirectory+"/pages-1.img" {
			a.oversizedAt = cw.n - 512
		}
		if _, err := tw.Write(e.data); err != nil {
			return 0, err
		}
		if err := writeFiller(tw, e.filler); err != nil {
			return 0, err
		}
	}
	return cut, tw.Close()
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

func blocks(n int64) int64 { return (n + 511) / 512 * 512 }

var zeros = make([]byte, 1<<20)

// writeFiller writes n bytes that stand for memory pages: zeros.
func writeFiller(w io.Writer, n int64) error {
	for n > 0 {
		chunk := min(n, int64(len(zeros)))
		if _, err := w.Write(zeros[:chunk]); err != nil {
			return err
		}
		n -= chunk
	}
	return nil
}

// criuImage is a small file in CRIU's image format: a magic, then protobuf-like bytes.
func criuImage(kind byte, what string) []byte {
	return append([]byte{0x54, 0x56, 0x41, 0x58, kind, 0, 0, 0}, []byte(what)...)
}

// criuImages are the small CRIU image files of a checkpoint.
func criuImages(t time.Time) []entry {
	names := []string{"cgroup.img", "core-1.img", "descriptors.json", "fdinfo-2.img", "files.img", "fs-1.img", "ids-1.img", "inventory.img", "mm-1.img", "pagemap-1.img", "pstree.img", "seccomp.img", "tty-info.img"}
	out := make([]entry, 0, len(names))
	for i, n := range names {
		out = append(out, entry{name: metadata.CheckpointDirectory + "/" + n, data: criuImage(byte(i), fmt.Sprintf("criu image %s taken %d", n, t.Unix()))})
	}
	return out
}
