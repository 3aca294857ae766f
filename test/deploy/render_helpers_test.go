package deploy

import (
	"bytes"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"github.com/checkpoint-quota/checkpoint-quota/test/testenv"
)

// The overlays a user deploys: with cert-manager (make deploy) and without it.
const (
	withCertManager    = "default"
	withoutCertManager = "no-cert-manager"
)

// kustomize renders config/<dir> with the test bed's kubectl, as `kubectl kustomize` would.
func kustomize(dir string) (string, error) {
	assets, err := testenv.Assets()
	if err != nil {
		return "", err
	}
	cmd := exec.Command(filepath.Join(assets, "kubectl"), "kustomize", filepath.Join(testenv.RepoRoot(), "config", dir))
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("kubectl kustomize config/%s: %v: %s", dir, err, errOut.String())
	}
	return out.String(), nil
}

// rendered is one overlay's output, indexed by kind and name.
type rendered struct {
	yaml string
	objs []*unstructured.Unstructured
}

func render(t *testing.T, dir string) *rendered {
	t.Helper()
	out, err := kustomize(dir)
	if err != nil {
		t.Fatal(err)
	}
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
		t.Fatalf("config/%s rendered no objects", dir)
	}
	return r
}

// all returns the objects of one kind.
func (r *rendered) all(kind string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, u := range r.objs {
		if u.GetKind() == kind {
			out = append(out, u)
		}
	}
	return out
}

// one returns the only object of a kind whose name ends with suffix (names carry a prefix).
func (r *rendered) one(t *testing.T, kind, suffix string) *unstructured.Unstructured {
	t.Helper()
	var found []*unstructured.Unstructured
	for _, u := range r.all(kind) {
		if strings.HasSuffix(u.GetName(), suffix) {
			found = append(found, u)
		}
	}
	if len(found) != 1 {
		t.Fatalf("want exactly one %s named *%s, got %d", kind, suffix, len(found))
	}
	return found[0]
}

// typed converts an unstructured object into a typed one.
func typed[T any](t *testing.T, u *unstructured.Unstructured) *T {
	t.Helper()
	out := new(T)
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, out); err != nil {
		t.Fatalf("decoding %s %s: %v", u.GetKind(), u.GetName(), err)
	}
	return out
}

func (r *rendered) manager(t *testing.T) *appsv1.Deployment {
	return typed[appsv1.Deployment](t, r.one(t, "Deployment", "controller-manager"))
}

func (r *rendered) agent(t *testing.T) *appsv1.DaemonSet {
	return typed[appsv1.DaemonSet](t, r.one(t, "DaemonSet", "node-agent"))
}

func (r *rendered) webhookService(t *testing.T) *corev1.Service {
	return typed[corev1.Service](t, r.one(t, "Service", "webhook-service"))
}

// rules are every rule of every Role and ClusterRole, keyed "<kind>/<name>".
func (r *rendered) rules(t *testing.T) map[string][]rbacv1.PolicyRule {
	out := map[string][]rbacv1.PolicyRule{}
	for _, u := range r.all("ClusterRole") {
		out["ClusterRole/"+u.GetName()] = typed[rbacv1.ClusterRole](t, u).Rules
	}
	for _, u := range r.all("Role") {
		out["Role/"+u.GetName()] = typed[rbacv1.Role](t, u).Rules
	}
	return out
}

// container returns the named container of a pod template.
func container(t *testing.T, spec corev1.PodSpec, name string) corev1.Container {
	t.Helper()
	for _, c := range spec.Containers {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no container %q", name)
	return corev1.Container{}
}

// flagValue returns the value of --name=value among args, and whether it is there.
func flagValue(args []string, name string) (string, bool) {
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v, true
		}
	}
	return "", false
}

// volumeAt returns the volume mounted at path in c, and the mount.
func volumeAt(t *testing.T, spec corev1.PodSpec, c corev1.Container, path string) (corev1.Volume, corev1.VolumeMount) {
	t.Helper()
	for _, m := range c.VolumeMounts {
		if filepath.Clean(m.MountPath) == filepath.Clean(path) {
			for _, v := range spec.Volumes {
				if v.Name == m.Name {
					return v, m
				}
			}
			t.Fatalf("mount %s names volume %q, which the pod does not have", path, m.Name)
		}
	}
	t.Fatalf("container %s mounts nothing at %s", c.Name, path)
	return corev1.Volume{}, corev1.VolumeMount{}
}

func typedRules(t *testing.T, u *unstructured.Unstructured) []rbacv1.PolicyRule {
	return typed[rbacv1.ClusterRole](t, u).Rules
}

// typedBinding reads a RoleBinding or a ClusterRoleBinding (same shape).
func typedBinding(t *testing.T, u *unstructured.Unstructured) *rbacv1.RoleBinding {
	return typed[rbacv1.RoleBinding](t, u)
}
