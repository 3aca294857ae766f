package archive

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
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
	// Image is the image the container was started from, in the runtime's words for what
	// the pod asked for: containerd's user-specified image, CRI-O's name of the image
	// (docs/node-agent.md, "The image").
	Image string
	// Runtime is the container runtime that wrote the archive: cri-o or containerd.
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
// that could be imported without their whole module, so they are named here;
// docs/node-agent.md ("What the runtimes write") says where each comes from.
const (
	// Set by CRI-O after it copies the pod's annotations into the container's spec.
	annotationManager = "io.container.manager"
	crioManagerValue  = "cri-o"
	crioLabels        = "io.kubernetes.cri-o.Labels"
	// The image the kubelet handed CRI-O (ImageSpec.Image): the reference the kubelet
	// resolved the pod's image to, an image ID.
	crioImage = "io.kubernetes.cri-o.Image"
	// The name CRI-O found for that image; empty for an image that has none.
	crioImageName = "io.kubernetes.cri-o.ImageName"
	// The kubelet's container labels, which CRI-O also sets as annotations, last.
	kubePodName       = "io.kubernetes.pod.name"
	kubePodNamespace  = "io.kubernetes.pod.namespace"
	kubePodUID        = "io.kubernetes.pod.uid"
	kubeContainerName = "io.kubernetes.container.name"
	// Set by containerd after the pass-through annotations.
	criContainerType = "io.kubernetes.cri.container-type"
	criSandboxName   = "io.kubernetes.cri.sandbox-name"
	criSandboxNS     = "io.kubernetes.cri.sandbox-namespace"
	criSandboxUID    = "io.kubernetes.cri.sandbox-uid"
	criContainerName = "io.kubernetes.cri.container-name"
	criImageName     = "io.kubernetes.cri.image-name"
)

// runtimeOf decides which runtime wrote spec.dump, from keys a pod cannot set on that
// runtime. CRI-O copies every pod annotation into the spec and then sets
// io.container.manager, so a CRI-O archive always says cri-o there, whatever the pod
// wrote; containerd's own keys are then never read from it. containerd sets its
// io.kubernetes.cri.* keys after the annotations it passes through.
func runtimeOf(a map[string]string) string {
	switch {
	case a[annotationManager] == crioManagerValue:
		return RuntimeCRIO
	case a[criContainerType] != "" || a[criSandboxNS] != "":
		return RuntimeContainerd
	}
	return ""
}

// identityFrom reads the identity out of spec.dump's annotations and config.dump, each
// runtime's from its own keys only.
func identityFrom(spec *metadata.Spec, config *metadata.ContainerConfig) Identity {
	var a map[string]string
	if spec != nil {
		a = spec.Annotations
	}
	var rootfsImage, rootfsImageName string
	if config != nil {
		rootfsImage, rootfsImageName = config.RootfsImage, config.RootfsImageName
	}
	var id Identity
	switch id.Runtime = runtimeOf(a); id.Runtime {
	case RuntimeCRIO:
		// The labels are the kubelet's container labels, which no pod sets; CRI-O also
		// writes each as an annotation after the pod's, the fallback for malformed JSON.
		labels := map[string]string{}
		_ = json.Unmarshal([]byte(a[crioLabels]), &labels)
		pick := func(key string) string {
			if v := labels[key]; v != "" {
				return v
			}
			return a[key]
		}
		id.Namespace, id.Pod, id.PodUID, id.Container = pick(kubePodNamespace), pick(kubePodName), pick(kubePodUID), pick(kubeContainerName)
		// The kubelet hands CRI-O an image ID and the pod's own words only as
		// UserSpecifiedImage, which CRI-O writes nowhere in the archive. The name CRI-O
		// found for the image comes closest; CRI-O sets it over any pod annotation of
		// that key, and writes it into config.dump too. The ID is left for an image
		// that has no name.
		id.Image = firstNonEmpty(a[crioImageName], rootfsImageName, a[crioImage], rootfsImage)
	case RuntimeContainerd:
		id.Namespace, id.Pod, id.PodUID, id.Container = a[criSandboxNS], a[criSandboxName], a[criSandboxUID], a[criContainerName]
		// The user-specified image; containerd 2.1+ puts the image's first tag into
		// config.dump instead, which may not be what the pod asked for.
		id.Image = firstNonEmpty(a[criImageName], rootfsImage, rootfsImageName)
	default:
		id.Image = firstNonEmpty(rootfsImage, rootfsImageName)
	}
	if config != nil && !config.CheckpointedAt.IsZero() {
		id.CheckpointTime, id.TimeSource = config.CheckpointedAt.UTC(), TimeFromArchive
	}
	return id
}

// KubeletFileName is the name the kubelet gives an archive of the container:
// checkpoint-<pod>_<namespace>-<container>-<RFC3339 time>.tar, in the node's local time.
func KubeletFileName(pod, namespace, container string, t time.Time) string {
	return fmt.Sprintf("checkpoint-%s_%s-%s-%s.tar", pod, namespace, container, t.Format(time.RFC3339))
}

// NameMatches reports whether name is exactly what the kubelet would have named an
// archive of id's container: the kubelet builds the name from the real pod, so an
// identity that a pod forged into the archive does not match it.
func NameMatches(id Identity, name string) bool {
	prefix := "checkpoint-" + id.Pod + "_" + id.Namespace + "-" + id.Container + "-"
	rest, ok := strings.CutPrefix(name, prefix)
	if !ok {
		return false
	}
	stamp, ok := strings.CutSuffix(rest, ".tar")
	if !ok {
		return false
	}
	_, err := time.Parse(time.RFC3339, stamp)
	return err == nil
}

// witness checks the identity against what the kubelet and the runtime wrote outside the
// annotations: the file name, and config.dump's container name, which both runtimes
// build from the pod's CRI metadata (CRI-O k8s_<ctr>_<pod>_<ns>_<uid>_<attempt>,
// containerd <ctr>_<pod>_<ns>_<uid>_<attempt>). Neither can contain '_' inside a part,
// so the container name settles what the file name leaves ambiguous (both a namespace and
// a container name may hold '-').
func witness(id Identity, name string, config *metadata.ContainerConfig) error {
	if !NameMatches(id, name) {
		return fmt.Errorf("spec.dump names %s/%s container %s, but the kubelet named the file %q, which is not the name it gives an archive of that container",
			id.Namespace, id.Pod, id.Container, name)
	}
	if config == nil || config.Name == "" {
		return nil
	}
	want := strings.Join([]string{id.Container, id.Pod, id.Namespace, id.PodUID}, "_") + "_"
	if id.Runtime == RuntimeCRIO {
		want = "k8s_" + want
	}
	attempt, ok := strings.CutPrefix(config.Name, want)
	if _, err := strconv.ParseUint(attempt, 10, 32); !ok || err != nil {
		return fmt.Errorf("spec.dump names %s/%s container %s (pod UID %s), but config.dump names the container %q, which %s does not build for it",
			id.Namespace, id.Pod, id.Container, id.PodUID, config.Name, id.Runtime)
	}
	return nil
}

func firstNonEmpty(values ...string) string {
	for _, v := range values {
		if v != "" {
			return v
		}
	}
	return ""
}
