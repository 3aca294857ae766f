package deploy

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"github.com/checkpoint-quota/checkpoint-quota/test/testenv"
)

// The chart, and the release name and namespace under which it renders the names that
// config/ renders.
const (
	releaseName      = "checkpoint-quota"
	releaseNamespace = "checkpoint-quota-system"
)

func chartDir() string { return filepath.Join(testenv.RepoRoot(), "charts", "checkpoint-quota") }

// helmBinary is $HELM, else what hack/helm.sh builds (once, from the helm.sh/helm/v4 module) or
// finds in its cache.
func helmBinary() (string, error) {
	if h := os.Getenv("HELM"); h != "" {
		return h, nil
	}
	out, err := exec.Command(filepath.Join(testenv.RepoRoot(), "hack", "helm.sh")).Output()
	if err != nil {
		return "", fmt.Errorf("providing helm with hack/helm.sh: %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}

// runHelm runs helm with args and returns stdout, or an error carrying stderr.
func runHelm(env []string, args ...string) (string, error) {
	bin, err := helmBinary()
	if err != nil {
		return "", err
	}
	cmd := exec.Command(bin, args...)
	// A private home: no repositories, caches or plugins of the machine's user.
	home, err := os.MkdirTemp("", "helm-home-")
	if err != nil {
		return "", err
	}
	defer func() { _ = os.RemoveAll(home) }()
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+home+"/cache", "HELM_CONFIG_HOME="+home+"/config", "HELM_DATA_HOME="+home+"/data")
	cmd.Env = append(cmd.Env, env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("helm %s: %v: %s", strings.Join(args, " "), err, errOut.String())
	}
	return out.String(), nil
}

// certManagerAPI is the API version by which the chart's certificates.mode=auto tells that a
// cluster has cert-manager; `helm template` learns it from --api-versions.
const certManagerAPI = "cert-manager.io/v1"

// helmTemplate renders the chart as `helm template` with the CRDs and the given --set values,
// for a cluster without cert-manager.
func helmTemplate(t *testing.T, set ...string) *rendered {
	t.Helper()
	return helmTemplateFor(t, nil, set...)
}

// helmTemplateFor renders the chart for a cluster that serves apiVersions beside the built-in ones.
func helmTemplateFor(t *testing.T, apiVersions []string, set ...string) *rendered {
	t.Helper()
	out, err := runHelm(nil, templateArgs(apiVersions, set...)...)
	if err != nil {
		t.Fatal(err)
	}
	return parse(t, "the chart", out)
}

func templateArgs(apiVersions []string, set ...string) []string {
	args := []string{"template", releaseName, chartDir(), "--namespace", releaseNamespace, "--include-crds"}
	for _, v := range apiVersions {
		args = append(args, "--api-versions", v)
	}
	for _, s := range set {
		args = append(args, "--set", s)
	}
	return args
}

// fataler is what parse needs of a *testing.T or GinkgoT().
type fataler interface {
	Helper()
	Fatalf(format string, args ...any)
}

// parse reads a stream of YAML documents.
func parse(t fataler, what, out string) *rendered {
	t.Helper()
	r := &rendered{yaml: out}
	dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(out), 4096)
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); err != nil {
			break
		}
		if len(u.Object) > 0 {
			r.objs = append(r.objs, u)
		}
	}
	if len(r.objs) == 0 {
		t.Fatalf("%s rendered no objects", what)
	}
	return r
}
