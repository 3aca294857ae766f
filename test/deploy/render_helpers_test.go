package deploy

import (
	"bytes"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

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
	return parse(t, "config/"+dir, out)
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

// certificate and issuer are the fields of cert-manager's Certificate and Issuer
// (cert-manager.io/v1, github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1) that
// the webhook's certificate chain depends on; the dry-run spec checks the rendered objects
// against cert-manager's own CRDs.
type certificate struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		IsCA        bool             `json:"isCA"`
		CommonName  string           `json:"commonName"`
		DNSNames    []string         `json:"dnsNames"`
		SecretName  string           `json:"secretName"`
		Duration    *metav1.Duration `json:"duration"`
		RenewBefore *metav1.Duration `json:"renewBefore"`
		IssuerRef   struct {
			Name  string `json:"name"`
			Kind  string `json:"kind"`
			Group string `json:"group"`
		} `json:"issuerRef"`
		PrivateKey struct {
			RotationPolicy string `json:"rotationPolicy"`
		} `json:"privateKey"`
	} `json:"spec"`
}

type issuer struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		SelfSigned *struct{} `json:"selfSigned"`
		CA         *struct {
			SecretName string `json:"secretName"`
		} `json:"ca"`
	} `json:"spec"`
}

// kind says which of cert-manager's issuer types i is.
func (i *issuer) kind() string {
	switch {
	case i.Spec.SelfSigned != nil:
		return "selfSigned"
	case i.Spec.CA != nil:
		return "ca (secretName " + strconv.Quote(i.Spec.CA.SecretName) + ")"
	default:
		return "neither selfSigned nor ca"
	}
}

// certificates are the rendered cert-manager Certificates.
func (r *rendered) certificates(t *testing.T) []*certificate {
	var out []*certificate
	for _, u := range r.all("Certificate") {
		if u.GroupVersionKind().Group == "cert-manager.io" {
			out = append(out, typed[certificate](t, u))
		}
	}
	return out
}

// servingCertificate is the Certificate whose Secret the manager mounts at --webhook-cert-dir.
func (r *rendered) servingCertificate(t *testing.T) *certificate {
	t.Helper()
	mgr := r.manager(t)
	c := container(t, mgr.Spec.Template.Spec, "manager")
	dir, _ := flagValue(c.Args, "webhook-cert-dir")
	vol, _ := volumeAt(t, mgr.Spec.Template.Spec, c, dir)
	if vol.Secret == nil {
		t.Fatalf("the volume at --webhook-cert-dir=%s is %+v, want a cert-manager Certificate's Secret", dir, vol.VolumeSource)
	}
	return r.certificateWithSecret(t, mgr.Namespace, vol.Secret.SecretName)
}

// certificateWithSecret is the only Certificate in namespace that writes the Secret secretName.
func (r *rendered) certificateWithSecret(t *testing.T, namespace, secretName string) *certificate {
	t.Helper()
	var found []*certificate
	for _, c := range r.certificates(t) {
		if c.Namespace == namespace && c.Spec.SecretName == secretName {
			found = append(found, c)
		}
	}
	if len(found) != 1 {
		t.Fatalf("want exactly one Certificate writing Secret %s/%s, got %d", namespace, secretName, len(found))
	}
	return found[0]
}

// issuerOf is the rendered Issuer that c's issuerRef names (in c's namespace, as a namespaced
// Issuer must be).
func (r *rendered) issuerOf(t *testing.T, c *certificate) *issuer {
	t.Helper()
	ref := c.Spec.IssuerRef
	if ref.Kind != "Issuer" || (ref.Group != "" && ref.Group != "cert-manager.io") {
		t.Fatalf("Certificate %s: issuerRef %+v, want an Issuer of this overlay", c.Name, ref)
	}
	for _, u := range r.all("Issuer") {
		if u.GetName() == ref.Name && u.GetNamespace() == c.Namespace {
			return typed[issuer](t, u)
		}
	}
	t.Fatalf("Certificate %s: its Issuer %s/%s is not rendered", c.Name, c.Namespace, ref.Name)
	return nil
}

// duration is how long c's certificates last: spec.duration, or cert-manager's default of 90 days.
func duration(c *certificate) time.Duration {
	if c.Spec.Duration == nil {
		return 90 * 24 * time.Hour
	}
	return c.Spec.Duration.Duration
}

// webhookNames are the webhooks an object has the apiserver call: those of a webhook
// configuration, or a CRD's conversion webhook.
func webhookNames(u *unstructured.Unstructured) []string {
	var out []string
	hooks, _, _ := unstructured.NestedSlice(u.Object, "webhooks")
	for _, h := range hooks {
		if m, ok := h.(map[string]any); ok {
			name, _, _ := unstructured.NestedString(m, "name")
			out = append(out, name)
		}
	}
	if strategy, _, _ := unstructured.NestedString(u.Object, "spec", "conversion", "strategy"); strategy == "Webhook" {
		out = append(out, "conversion of "+u.GetName())
	}
	return out
}
