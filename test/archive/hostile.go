package archive

import (
	"archive/tar"
	"encoding/json"
	"fmt"
	"os"
	"time"

	metadata "github.com/checkpoint-restore/checkpointctl/lib"
)

// Hostile variants: archives under a kubelet name that someone other than a runtime
// built, to find out what the reader does with them. None may crash or hang a reader,
// and each must be reported.
const (
	// DotDotEntry adds entries whose names climb out of the archive.
	DotDotEntry Broken = "dotdot-entry"
	// AbsoluteEntry adds an entry with an absolute name.
	AbsoluteEntry Broken = "absolute-entry"
	// HardLink adds a hard link to a file outside the archive.
	HardLink Broken = "hard-link"
	// DeviceEntry adds a character and a block device.
	DeviceEntry Broken = "device-entry"
	// OversizedEntry declares a memory-pages entry of OversizedEntrySize bytes, far beyond the file.
	OversizedEntry Broken = "oversized-entry"
	// TwoConfigDumps adds a second config.dump that names another pod in another namespace.
	TwoConfigDumps Broken = "two-config-dumps"
	// HugeAnnotation adds an annotation of HugeAnnotationSize bytes to spec.dump.
	HugeAnnotation Broken = "huge-annotation"
	// NonUTF8 puts bytes that are not UTF-8 into an annotation value and an entry name.
	NonUTF8 Broken = "non-utf8"
	// TarInSpecDump makes spec.dump a tar archive (holding a spec.dump of its own).
	TarInSpecDump Broken = "tar-in-spec-dump"
)

// Sizes of the hostile variants.
const (
	HugeAnnotationSize = 10 << 20
	// OversizedEntrySize is the largest size a USTAR header's octal field holds: 64 GiB.
	OversizedEntrySize = 1<<36 - 1
)

// BrokenVariants are the damaged archives a node may hold by accident.
var BrokenVariants = []Broken{Truncated, NotTar, NoIdentity, HugeSpec, Symlink, Directory}

// HostileVariants are the archives someone built to break a reader.
var HostileVariants = []Broken{DotDotEntry, AbsoluteEntry, HardLink, DeviceEntry, OversizedEntry, TwoConfigDumps, HugeAnnotation, NonUTF8, TarInSpecDump}

const nonUTF8Placeholder = "@@not-utf-8@@"

// hostile adds a hostile variant's entries to the runtime's.
func (a *Archive) hostile(entries []entry) []entry {
	mod := a.Time.Truncate(time.Second)
	raw := func(h tar.Header, data []byte) entry {
		h.ModTime, h.Format = mod, tar.FormatPAX
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(data))
		}
		return entry{name: h.Name, data: data, header: &h}
	}
	var extra []entry
	switch a.Broken {
	case DotDotEntry:
		extra = []entry{
			raw(tar.Header{Typeflag: tar.TypeReg, Name: "../../etc/cron.d/checkpoint", Mode: 0o644}, []byte("* * * * * root /bin/sh -c 'id > /tmp/owned'\n")),
			raw(tar.Header{Typeflag: tar.TypeReg, Name: "checkpoint/../../escape", Mode: 0o644}, []byte("out")),
		}
	case AbsoluteEntry:
		extra = []entry{raw(tar.Header{Typeflag: tar.TypeReg, Name: "/etc/cron.d/checkpoint", Mode: 0o644}, []byte("* * * * * root true\n"))}
	case HardLink:
		extra = []entry{raw(tar.Header{Typeflag: tar.TypeLink, Name: "checkpoint/pages-2.img", Linkname: "/etc/shadow"}, nil)}
	case DeviceEntry:
		extra = []entry{
			raw(tar.Header{Typeflag: tar.TypeChar, Name: "checkpoint/mem", Mode: 0o600, Devmajor: 1, Devminor: 1}, nil),
			raw(tar.Header{Typeflag: tar.TypeBlock, Name: "checkpoint/sda", Mode: 0o600, Devmajor: 8, Devminor: 0}, nil),
		}
	case TwoConfigDumps:
		other := metadata.ContainerConfig{
			ID:             a.containerID(),
			Name:           "k8s_" + a.Container + "_victim-0_victim_" + a.PodUID + "_0",
			RootfsImage:    "victim:latest",
			CheckpointedAt: a.RuntimeTime().Add(-24 * time.Hour),
		}
		data, _ := json.Marshal(other)
		extra = []entry{raw(tar.Header{Typeflag: tar.TypeReg, Name: metadata.ConfigDumpFile, Mode: 0o600}, data)}
	case NonUTF8:
		extra = []entry{raw(tar.Header{Typeflag: tar.TypeReg, Name: "checkpoint/\xff\xfe-1.img", Mode: 0o600}, []byte("x"))}
	case TarInSpecDump:
		for i := range entries {
			if entries[i].name == metadata.SpecDumpFile {
				inner := *a
				inner.Broken, inner.Size, inner.Runtime = "", 0, Containerd20
				data, err := inner.tarBytes()
				if err != nil {
					panic(err)
				}
				entries[i].data = data
			}
		}
	}
	// After the metadata, where a reader that stops early would not see them.
	return append(entries, extra...)
}

// tarBytes is the whole archive in memory, for one nested in another.
func (a *Archive) tarBytes() ([]byte, error) {
	var buf writerBuffer
	_, err := a.writeTar(&buf)
	return buf, err
}

type writerBuffer []byte

func (b *writerBuffer) Write(p []byte) (int, error) { *b = append(*b, p...); return len(p), nil }

// declareHugeSize rewrites the size field of the USTAR header at offset to
// OversizedEntrySize, and its checksum.
func declareHugeSize(path string, offset int64) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer func() { _ = f.Close() }()
	block := make([]byte, 512)
	if _, err := f.ReadAt(block, offset); err != nil {
		return err
	}
	copy(block[124:136], fmt.Sprintf("%011o\x00", OversizedEntrySize))
	copy(block[148:156], "        ")
	var sum int64
	for _, c := range block {
		sum += int64(c)
	}
	copy(block[148:156], fmt.Sprintf("%06o\x00 ", sum))
	if _, err := f.WriteAt(block, offset); err != nil {
		return err
	}
	return nil
}
