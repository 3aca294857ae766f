package nodeagent

import (
	"strings"
	"time"
	"unicode/utf8"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	"github.com/checkpoint-quota/checkpoint-quota/internal/archive"
	"github.com/checkpoint-quota/checkpoint-quota/internal/quota"
)

// Publication is a readable archive as the agent publishes it: where it lies, what the
// agent read from it, and the namespace its Checkpoint goes to.
type Publication struct {
	Node, Dir, File string
	Identity        archive.Identity
	Size            int64
	// Namespace receives the Checkpoint: the archive's own, or the agent's orphan
	// namespace, with OrphanOf naming the archive's namespace, which is gone.
	Namespace, OrphanOf string
	Pinned              bool
	// CopyOf names the stored Checkpoint the archive is a copy of, when the agent fetched
	// it to this node (fetch_copy.go).
	CopyOf *cqv1.ArchiveCopy
}

// Checkpoint is the object the agent creates for the archive: name, labels and the whole
// of spec.archive, so that publishing it is one write. The scale benchmark's load
// generator publishes through it too, so that its objects are the agent's. Only an
// orphan has a label: the node is selected by spec.archive.nodeName, which a label
// would only repeat, in every object the apiserver holds.
func (p Publication) Checkpoint() *cqv1.Checkpoint {
	var labels map[string]string
	if p.OrphanOf != "" {
		labels = map[string]string{cqv1.LabelOrphanOf: p.OrphanOf}
	}
	src := p.archiveSource()
	return &cqv1.Checkpoint{
		ObjectMeta: metav1.ObjectMeta{Name: ObjectName(p.Node, p.Dir, p.File), Namespace: p.Namespace, Labels: labels},
		Spec:       cqv1.CheckpointSpec{Pinned: p.Pinned, Archive: &src},
	}
}

// archiveSource is spec.archive for what the agent read.
func (p Publication) archiveSource() cqv1.ArchiveSource {
	id := p.Identity
	return cqv1.ArchiveSource{
		NodeName:       p.Node,
		Directory:      p.Dir,
		FileName:       p.File,
		PodName:        id.Pod,
		PodUID:         types.UID(clip(id.PodUID, maxUID)),
		ContainerName:  id.Container,
		OrphanOf:       p.OrphanOf,
		CopyOf:         p.CopyOf,
		SizeBytes:      p.Size,
		Size:           quota.Bytes(p.Size),
		CheckpointTime: metav1.NewTime(id.CheckpointTime.UTC().Truncate(time.Second)),
		Runtime:        clip(id.Runtime, maxRuntime),
		Image:          clip(id.Image, maxImage),
	}
}

// The longest pod UID, runtime and image the API accepts (spec.archive's schema).
const (
	maxUID     = 128
	maxRuntime = 32
	maxImage   = 1024
)

// clip cuts s to at most n characters of valid UTF-8, so that an archive that names an
// absurd image is still published.
func clip(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n])
}
