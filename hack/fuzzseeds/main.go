// Command fuzzseeds writes the seed corpora of the fuzz targets into testdata/fuzz: the
// runtimes' archive layouts with their broken and hostile variants, and quota objects.
// Run it from the repository root after changing test/archive: go run ./hack/fuzzseeds.
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"sigs.k8s.io/yaml"

	testarchive "github.com/checkpoint-quota/checkpoint-quota/test/archive"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "fuzzseeds:", err)
		os.Exit(1)
	}
}

func run() error {
	if err := archiveSeeds(filepath.Join("internal", "archive", "testdata", "fuzz", "FuzzReadFrom")); err != nil {
		return err
	}
	return quotaSeeds(filepath.Join("webhooks", "testdata", "fuzz"))
}

// seed writes one corpus file in the format of go test's fuzzing: a header line, then one
// Go literal per argument.
func seed(dir, name string, args ...any) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var b strings.Builder
	b.WriteString("go test fuzz v1\n")
	for _, a := range args {
		switch v := a.(type) {
		case []byte:
			fmt.Fprintf(&b, "[]byte(%s)\n", strconv.Quote(string(v)))
		case string:
			fmt.Fprintf(&b, "string(%s)\n", strconv.Quote(v))
		default:
			return fmt.Errorf("seed %s: argument of type %T", name, a)
		}
	}
	return os.WriteFile(filepath.Join(dir, name), []byte(b.String()), 0o644)
}

func archiveSeeds(dir string) error {
	tmp, err := os.MkdirTemp("", "fuzzseeds-")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(tmp) }()
	at := time.Date(2026, 11, 24, 10, 30, 0, 0, time.UTC)
	cet := time.FixedZone("CET", 3600)
	variants := map[string]func(*testarchive.Archive){
		"clean": func(*testarchive.Archive) {},
		"local-time": func(a *testarchive.Archive) {
			a.InZone(cet).WithRootfsDiff()
		},
		"forged": func(a *testarchive.Archive) {
			a.WithPodAnnotations(map[string]string{
				"io.kubernetes.cri.sandbox-namespace": "victim", "io.kubernetes.cri.sandbox-name": "v",
				"io.kubernetes.cri.container-name": "app", "io.container.manager": "cri-o",
				"io.kubernetes.cri-o.Labels": `{"io.kubernetes.pod.namespace":"victim","io.kubernetes.pod.name":"v","io.kubernetes.container.name":"app"}`,
			})
		},
		// Over the 16 KiB metadata cap of the fuzz target.
		"large-spec": func(a *testarchive.Archive) {
			a.WithPodAnnotations(map[string]string{"example.com/blob": strings.Repeat("b", 20<<10)})
		},
	}
	for _, b := range append(append([]testarchive.Broken{}, testarchive.BrokenVariants...), testarchive.HostileVariants...) {
		switch b {
		case testarchive.Symlink, testarchive.Directory, testarchive.HugeSpec, testarchive.HugeAnnotation:
			continue // not bytes of a file, or megabytes: large-spec stands for them
		}
		variants[string(b)] = func(a *testarchive.Archive) { a.Damaged(b) }
	}
	for name, apply := range variants {
		for _, rt := range testarchive.Runtimes {
			a := testarchive.New("shop", "cache-0", "redis").WithUID("0b6f1c1e-1").WithRuntime(rt).At(at).WithSize(0)
			apply(a)
			sub, err := os.MkdirTemp(tmp, "")
			if err != nil {
				return err
			}
			path, err := a.Write(sub)
			if err != nil {
				return err
			}
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			if err := seed(dir, string(rt)+"-"+name, data, filepath.Base(path)); err != nil {
				return err
			}
		}
	}
	return nil
}

func quotaSeeds(dir string) error {
	namespaced := map[string]string{
		"sample": mustRead("config/samples/checkpointquota_v1alpha1_checkpointquota.yaml"),
		"product-example": `spec:
  target: {podSelector: {matchLabels: {app: redis}}, podNames: [cache-0], containerNames: [redis]}
  limits:
    total:        {checkpoints: 50, storage: 10Gi}
    perPod:       {checkpoints: 30, storage: 5Gi}
    perContainer: {checkpoints: 10, storage: 1Gi}
  maxCheckpointSize: 2Gi
  maxAge: 168h
  orphans: {policy: Delete, gracePeriod: 10m}
  enforcement: Enforce`,
		"malformed-sizes": `spec: {limits: {total: {storage: 2GB}, perPod: {storage: 500m}, perContainer: {storage: "10", checkpoints: -1}}, maxCheckpointSize: 500mb}`,
		"malformed-enums": `spec: {maxAge: -1h, orphans: {policy: Forget, gracePeriod: soon}, enforcement: Later}`,
		"bad-selector":    `spec: {target: {podSelector: {matchExpressions: [{key: "a b", operator: Sometimes, values: [x]}]}, podNames: ["", "UPPER"]}}`,
		"zero-and-odd":    `spec: {limits: {total: {checkpoints: 0, storage: "0"}, perPod: {checkpoints: 5}, perContainer: {checkpoints: 9}}, maxCheckpointSize: 1Ei}`,
	}
	cluster := map[string]string{
		"sample":          mustRead("config/samples/checkpointquota_v1alpha1_clustercheckpointquota.yaml"),
		"selector":        `spec: {namespaceSelector: {matchLabels: {team: a}}, limits: {total: {storage: 1Ti}, perNamespace: {storage: 2Ti}}}`,
		"malformed-sizes": `spec: {limits: {perNamespace: {storage: 1.5}, perPod: {storage: "1e400"}}, maxCheckpointSize: "0.5"}`,
	}
	for kind, seeds := range map[string]map[string]string{"FuzzValidateCheckpointQuota": namespaced, "FuzzValidateClusterCheckpointQuota": cluster} {
		for name, y := range seeds {
			data, err := yaml.YAMLToJSON([]byte(y))
			if err != nil {
				return fmt.Errorf("seed %s/%s: %w", kind, name, err)
			}
			if err := seed(filepath.Join(dir, kind), name, data); err != nil {
				return err
			}
		}
	}
	return nil
}

func mustRead(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		panic(err)
	}
	return string(data)
}
