// Command checkpointimage writes a checkpoint archive as an OCI image CRI-O restores from: one
// layer holding the archive's entries at the image's root, and the manifest annotation
// io.kubernetes.cri-o.annotations.checkpoint.name naming the checkpointed container, which is
// how CRI-O tells a checkpoint image from any other (cri-o server/container_restore.go). A pod
// whose container has this image is restored, not started. Written as an OCI image layout
// directory, for `copyimg --import-from oci:DIR`:
//
//	checkpointimage -o DIR -container work checkpoint-<pod>_<ns>-work-<time>.tar
package main

import (
	"flag"
	"fmt"
	"os"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// checkpointName is CRI-O's annotation (internal/annotations/checkpoint.go).
const checkpointName = "io.kubernetes.cri-o.annotations.checkpoint.name"

func main() {
	out := flag.String("o", "", "the OCI image layout directory to write (must not exist)")
	container := flag.String("container", "", "the name of the checkpointed container")
	flag.Parse()
	if *out == "" || *container == "" || flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: checkpointimage -o DIR -container NAME ARCHIVE.tar")
		os.Exit(2)
	}
	if err := write(*out, *container, flag.Arg(0)); err != nil {
		fmt.Fprintln(os.Stderr, "checkpointimage:", err)
		os.Exit(1)
	}
}

func write(out, container, archive string) error {
	if _, err := os.Stat(out); err == nil {
		return fmt.Errorf("%s exists already", out)
	}
	// The archive is a tar of the checkpoint's entries: as a layer, they land at the root.
	l, err := tarball.LayerFromFile(archive)
	if err != nil {
		return fmt.Errorf("%s: %w", archive, err)
	}
	img, err := mutate.AppendLayers(empty.Image, l)
	if err != nil {
		return err
	}
	img = mutate.MediaType(img, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, ok := mutate.Annotations(img, map[string]string{checkpointName: container}).(v1.Image)
	if !ok {
		return fmt.Errorf("annotating the image: not an image")
	}
	p, err := layout.Write(out, empty.Index)
	if err != nil {
		return err
	}
	return p.AppendImage(img)
}
