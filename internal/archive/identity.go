package archive

import (
	"encoding/json"
	"time"

	metadata "github.com/checkpoint-restore/checkpointctl/lib"
)

// Runtime names as reported in Identity.Runtime.
const (
	RuntimeCRIO       = "cri-o"
	RuntimeContainerd = "containerd"
)

// TimeSource says where Identity.CheckpointTime came from.
type TimeSource string

// Where a checkpoint time can come from, most trusted first.
const (
	TimeFromArchive  TimeSource = "archive"
	TimeFromFileName TimeSource = "fileName"
	TimeFromModTime  TimeSource = "modTime"
)

// Identity is who an archive belongs to and when it was taken.
type Identity struct {
	Namespace string
	Pod       string
	PodUID    string
	Container string
	Image     string
	// Runtime is the container runtime that wrote the archive (cri-o, containerd, or
	// the engine named by checkpointctl's annotations).
	Runtime string
	// CheckpointTime is config.dump's checkpointedTime, else the time in the file name,
	// else the file's modification time; TimeSource says which.
	CheckpointTime time.Time
	TimeSource     TimeSource
}

// Complete reports whether the identity names everything a Checkpoint needs.
func (id Identity) Complete() bool {
	return id.Namespace != "" && id.Pod != "" && id.Container != ""
}

// Annotation keys of the runtimes. CRI-O and containerd have no exported Go constants
// that could be imported without their whole module, so they are named here.
const (
	crioLabels         = "io.kubernetes.cri-o.Labels"
	crioImageName      = "io.kubernetes.cri-o.ImageName"
	kubePodName        = "io.kubernetes.pod.name"
	kubePodNamespace   = "io.kubernetes.pod.namespace"
	kubePodUID         = "io.kubernetes.pod.uid"
	kubeContainerName  = "io.kubernetes.container.name"
	criSandboxName     = "io.kubernetes.cri.sandbox-name"
	criSandboxNS       = "io.kubernetes.cri.sandbox-namespace"
	criSandboxUID      = "io.kubernetes.cri.sandbox-uid"
	criContainerName   = "io.kubernetes.cri.container-name"
	criImageName       = "io.kubernetes.cri.image-name"
	annotationManager  = "io.container.manager"
	crioManagerValue   = "cri-o"
	criuEngineFallback = "checkpointctl"
)

// identityFrom reads the identity out of spec.dump's annotations and config.dump. Each
// runtime's style is tried in turn; the first that names a namespace wins.
func identityFrom(spec *metadata.Spec, config *metadata.ContainerConfig) Identity {
	var id Identity
	a := map[string]string{}
	if spec != nil && spec.Annotations != nil {
		a = spec.Annotations
	}
	switch {
	case a[criSandboxNS] != "":
		id = Identity{
			Namespace: a[criSandboxNS], Pod: a[criSandboxName], PodUID: a[criSandboxUID],
			Container: a[criContainerName], Image: a[criImageName], Runtime: RuntimeContainerd,
		}
	case a[crioLabels] != "" || a[kubePodNamespace] != "":
		labels := map[string]string{}
		// CRI-O's labels carry the pod's identity as the kubelet set it; the plain
		// annotations are the fallback when the JSON is absent or malformed.
		_ = json.Unmarshal([]byte(a[crioLabels]), &labels)
		pick := func(key string) string {
			if v := labels[key]; v != "" {
				return v
			}
			return a[key]
		}
		id = Identity{
			Namespace: pick(kubePodNamespace), Pod: pick(kubePodName), PodUID: pick(kubePodUID),
			Container: pick(kubeContainerName), Image: a[crioImageName], Runtime: RuntimeCRIO,
		}
	case a[metadata.CheckpointAnnotationNamespace] != "":
		id = Identity{
			Namespace: a[metadata.CheckpointAnnotationNamespace],
			Pod:       a[metadata.CheckpointAnnotationPod],
			PodUID:    a[metadata.CheckpointAnnotationPodUID],
			Container: a[metadata.CheckpointAnnotationName],
			Image:     a[metadata.CheckpointAnnotationRootfsImageName],
			Runtime:   a[metadata.CheckpointAnnotationEngine],
		}
		if id.Runtime == "" {
			id.Runtime = criuEngineFallback
		}
	}
	if id.Runtime == "" && a[annotationManager] == crioManagerValue {
		id.Runtime = RuntimeCRIO
	}
	if config != nil {
		if id.Image == "" {
			id.Image = firstNonEmpty(config.RootfsImageName, config.RootfsImage)
		}
		if !config.CheckpointedAt.IsZero() {
			id.CheckpointTime, id.TimeSource = config.CheckpointedAt.UTC(), TimeFromArchive
		}
	}
	return id
}

func firstNonEmpty(values ...string) string {
	for _, v := range values {
		if v != "" {
			return v
		}
	}
	return ""
}
