package archive

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/checkpoint-quota/checkpoint-quota/internal/archive"
)

// PodRecordSuffix names the record beside a real archive: <archive file name>.pod.json.
const PodRecordSuffix = ".pod.json"

// PodRecord is what a suite that made a real archive records beside it: the pod as the
// apiserver returned it, the container, and when the suite asked for the checkpoint.
type PodRecord struct {
	Pod       corev1.Pod `json:"pod"`
	Container string     `json:"container"`
	From      time.Time  `json:"from"`
	To        time.Time  `json:"to"`
}

// WritePodRecord writes the record of the archive at path.
func WritePodRecord(path string, r PodRecord) error {
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path+PodRecordSuffix, data, 0o600)
}

// CompareRecorded reads every archive in dir that has a pod record beside it and returns,
// by file name, where the reader disagrees with the pod (ComparePod), a read error being
// one difference. It is an error for dir to hold no recorded archive.
func CompareRecorded(dir string, lim archive.Limits) (map[string][]string, error) {
	records, err := filepath.Glob(filepath.Join(dir, "*"+PodRecordSuffix))
	if err != nil {
		return nil, err
	}
	if len(records) == 0 {
		return nil, fmt.Errorf("%s holds no archive with a %s record beside it", dir, PodRecordSuffix)
	}
	sort.Strings(records)
	out := map[string][]string{}
	for _, record := range records {
		path := strings.TrimSuffix(record, PodRecordSuffix)
		name := filepath.Base(path)
		data, err := os.ReadFile(record)
		if err != nil {
			return nil, err
		}
		var r PodRecord
		if err := json.Unmarshal(data, &r); err != nil {
			return nil, fmt.Errorf("%s: %w", record, err)
		}
		res, err := archive.Read(path, lim)
		if err != nil {
			out[name] = []string{"read: " + err.Error()}
			continue
		}
		out[name] = ComparePod(res.Identity, &r.Pod, r.Container, r.From, r.To)
	}
	return out, nil
}

// ComparePod lists where what the reader says of a real archive differs from the pod it
// came from: namespace, pod name, pod UID, container, the image as the pod asked for it
// (ImageAsAsked), and a checkpoint time within [from, to], when the suite asked for the
// checkpoint. No difference means the reader read the archive right; a runtime upgrade
// that moves a key shows here (docs/node-agent.md, "The image").
func ComparePod(id archive.Identity, pod *corev1.Pod, container string, from, to time.Time) []string {
	var diffs []string
	differ := func(what, got, want string) {
		if got != want {
			diffs = append(diffs, fmt.Sprintf("%s: the archive says %q, the pod %q", what, got, want))
		}
	}
	differ("namespace", id.Namespace, pod.Namespace)
	differ("pod", id.Pod, pod.Name)
	differ("pod UID", id.PodUID, string(pod.UID))
	differ("container", id.Container, container)
	asked := ""
	for _, c := range pod.Spec.Containers {
		if c.Name == container {
			asked = c.Image
		}
	}
	if asked == "" {
		diffs = append(diffs, fmt.Sprintf("container: the pod has no container %q", container))
	} else if !ImageAsAsked(asked, id.Image) {
		diffs = append(diffs, fmt.Sprintf("image: the archive says %q, the pod asked for %q", id.Image, asked))
	}
	// The kubelet's and the runtime's clocks are read to the second and the nanosecond.
	if id.CheckpointTime.Before(from.Truncate(time.Second)) || id.CheckpointTime.After(to) {
		diffs = append(diffs, fmt.Sprintf("time: the archive says %s (from the %s), the checkpoint was asked for between %s and %s",
			id.CheckpointTime.Format(time.RFC3339Nano), id.TimeSource, from.Format(time.RFC3339Nano), to.Format(time.RFC3339Nano)))
	}
	return diffs
}

// ImageAsAsked reports whether reported, the image the reader read from an archive, is
// asked, the image a pod asked for: the same reference, with the tag latest when it names
// neither tag nor digest, or, for a short name (no registry), that reference under a
// registry, as a runtime resolved it: CRI-O names an image fully qualified, so a pod's
// redis:7 reads docker.io/library/redis:7.
func ImageAsAsked(asked, reported string) bool {
	asked, reported = withTag(asked), withTag(reported)
	if asked == reported {
		return true
	}
	if hasRegistry(asked) {
		return false
	}
	registry, rest, ok := strings.Cut(reported, "/")
	return ok && hasRegistry(reported) && registry != "" && (rest == asked || rest == "library/"+asked)
}

// hasRegistry reports whether a reference's first component names a registry: a host
// with a dot or a port, or localhost (the rule the container tools share).
func hasRegistry(ref string) bool {
	first, _, ok := strings.Cut(ref, "/")
	return ok && (strings.ContainsAny(first, ".:") || first == "localhost")
}

// withTag adds the tag latest to a reference that has neither a tag nor a digest.
func withTag(ref string) string {
	if strings.Contains(ref, "@") {
		return ref
	}
	last := ref[strings.LastIndex(ref, "/")+1:]
	if strings.Contains(last, ":") {
		return ref
	}
	return ref + ":latest"
}
