// Command image writes a single-layer image of static binaries on an empty base, as a
// tarball that `ctr images import` reads, without Docker or a registry:
//
//	image -o out.tar -tag checkpoint-quota:node -file /manager=bin/manager \
//	      -entrypoint /manager -user 65532:65532
package main

import (
	"archive/tar"
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

type files map[string]string

func (f files) String() string { return fmt.Sprint(map[string]string(f)) }

func (f files) Set(v string) error {
	dst, src, ok := strings.Cut(v, "=")
	if !ok || !strings.HasPrefix(dst, "/") || src == "" {
		return fmt.Errorf("-file %q: want /path/in/image=path/on/disk", v)
	}
	f[dst] = src
	return nil
}

func main() {
	out := flag.String("o", "", "the tarball to write")
	tag := flag.String("tag", "", "the image's name, such as checkpoint-quota:node")
	entrypoint := flag.String("entrypoint", "", "the image's entrypoint, a path in the image")
	user := flag.String("user", "", "the image's user, such as 65532:65532")
	content := files{}
	flag.Var(content, "file", "/path/in/image=path/on/disk (repeatable); written mode 0755")
	flag.Parse()
	if *out == "" || *tag == "" || len(content) == 0 {
		fmt.Fprintln(os.Stderr, "image: -o, -tag and at least one -file are required")
		os.Exit(2)
	}
	if err := write(*out, *tag, *entrypoint, *user, content); err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
}

func write(out, tag, entrypoint, user string, content files) error {
	ref, err := name.NewTag(tag)
	if err != nil {
		return fmt.Errorf("-tag %q: %w", tag, err)
	}
	layerTar, err := layer(content)
	if err != nil {
		return err
	}
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	})
	if err != nil {
		return err
	}
	img, err := mutate.AppendLayers(empty.Image, l)
	if err != nil {
		return err
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return err
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture = "linux", runtime.GOARCH
	cfg.Config.User = user
	cfg.Config.Env = []string{"PATH=/"}
	if entrypoint != "" {
		cfg.Config.Entrypoint = []string{entrypoint}
	}
	if img, err = mutate.ConfigFile(img, cfg); err != nil {
		return err
	}
	return tarball.WriteToFile(out, ref, img)
}

// layer is a tar of the files, each mode 0755 and owned by root, with their directories.
func layer(content files) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	epoch := time.Unix(0, 0)
	// /tmp for programs that write temporary files on a read-only root.
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: "tmp/", Mode: 01777, ModTime: epoch}); err != nil {
		return nil, err
	}
	dsts := make([]string, 0, len(content))
	for dst := range content {
		dsts = append(dsts, dst)
	}
	sort.Strings(dsts)
	for _, dst := range dsts {
		data, err := os.ReadFile(content[dst])
		if err != nil {
			return nil, err
		}
		hdr := &tar.Header{Typeflag: tar.TypeReg, Name: strings.TrimPrefix(dst, "/"), Mode: 0o755, Size: int64(len(data)), ModTime: epoch}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, err
		}
		if _, err := tw.Write(data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
