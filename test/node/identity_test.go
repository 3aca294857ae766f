package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/checkpoint-quota/checkpoint-quota/internal/archive"
	testarchive "github.com/checkpoint-quota/checkpoint-quota/test/archive"
)

// Every archive the kubelet writes in this suite is read by the project's reader as soon as
// the kubelet answers, and what the reader says is compared with the pod it came from
// (test/archive.ComparePod: namespace, name, UID, container, the image as the pod asked for
// it, the time): a runtime whose layout moves a key fails here, on the spec that made the
// archive, whatever the agent then does with it. With CHECKPOINT_QUOTA_KEEP_ARCHIVES=<dir>,
// each archive is also linked into dir with its pod's record beside it, for
// `CHECKPOINT_REAL_ARCHIVES=<dir> go test ./internal/archive -run TestRealArchives`.

// nodeRuntime is the reader's name for the node's runtime (node.sh's RUNTIME): what every
// archive's Checkpoint says.
func nodeRuntime() string {
	return map[string]string{"containerd": archive.RuntimeContainerd, "crio": archive.RuntimeCRIO}[node["RUNTIME"]]
}

// identities holds what the comparisons found since the last spec ended.
var identities struct {
	sync.Mutex
	compared int
	diffs    []string
}

// compareIdentity reads the archive of c, which the kubelet started writing at asked, and
// records where the reader and the pod disagree. It makes no assertion, so that it can run in
// the goroutines of a burst; each spec's AfterEach fails on what it recorded.
func compareIdentity(c checkpointed, asked time.Time) {
	diffs := identityDiffs(c, asked)
	identities.Lock()
	defer identities.Unlock()
	identities.compared++
	for _, d := range diffs {
		identities.diffs = append(identities.diffs, filepath.Base(c.path)+": "+d)
	}
}

func identityDiffs(c checkpointed, asked time.Time) []string {
	var pod corev1.Pod
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: c.ns, Name: c.pod}, &pod); err != nil {
		return []string{"reading the pod: " + err.Error()}
	}
	res, err := archive.Read(c.path, archive.Limits{})
	if err != nil {
		return []string{"read: " + err.Error()}
	}
	diffs := testarchive.ComparePod(res.Identity, &pod, c.container, asked, c.answered)
	if res.Identity.Runtime != nodeRuntime() {
		diffs = append(diffs, fmt.Sprintf("runtime: the archive says %q, the node runs %q", res.Identity.Runtime, node["RUNTIME"]))
	}
	if dir := os.Getenv("CHECKPOINT_QUOTA_KEEP_ARCHIVES"); dir != "" {
		if err := keepArchive(dir, c, &pod, asked); err != nil {
			diffs = append(diffs, "keeping it in "+dir+": "+err.Error())
		}
	}
	return diffs
}

// keepArchive links the archive into dir (it is pruned from the node meanwhile), or copies it
// where dir is on another mount (the kubelet's directory is a bind mount of its own), with the
// record of its pod beside it.
func keepArchive(dir string, c checkpointed, pod *corev1.Pod, asked time.Time) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	kept := filepath.Join(dir, node["RUNTIME"]+"-"+filepath.Base(c.path))
	if err := os.Link(c.path, kept); err != nil && !os.IsExist(err) {
		if !errors.Is(err, syscall.EXDEV) {
			return err
		}
		if err := copyFile(c.path, kept); err != nil {
			return err
		}
	}
	return testarchive.WritePodRecord(kept, testarchive.PodRecord{Pod: *pod, Container: c.container, From: asked, To: c.answered})
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer func() { _ = in.Close() }()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		_ = out.Close()
		return err
	}
	return out.Close()
}

// Each spec fails on any archive it made whose identity the reader read wrong.
var _ = AfterEach(func() {
	identities.Lock()
	compared, diffs := identities.compared, identities.diffs
	identities.compared, identities.diffs = 0, nil
	identities.Unlock()
	if compared > 0 {
		AddReportEntry("archives read and compared with their pods", fmt.Sprintf("%d (%s)", compared, node["RUNTIME"]))
	}
	Expect(diffs).To(BeEmpty(), "the reader and the pods disagree on %d of %d archives:\n%s", len(diffs), compared, strings.Join(diffs, "\n"))
})
