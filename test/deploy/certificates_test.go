package deploy

import (
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/checkpoint-quota/checkpoint-quota/certs"
)

// With cert-manager: both webhook configurations take their CA from the Certificate that is
// rendered, whose Secret is the one mounted where the manager reads its certificate.
func TestCertManagerOverlay(t *testing.T) {
	r := render(t, withCertManager)
	certsRendered := r.all("Certificate")
	if len(certsRendered) != 1 {
		t.Fatalf("want one Certificate, got %d", len(certsRendered))
	}
	cert := certsRendered[0]
	for _, kind := range webhookKinds {
		u := r.one(t, kind, "webhook-configuration")
		if got, want := u.GetAnnotations()[injectCAFrom], cert.GetNamespace()+"/"+cert.GetName(); got != want {
			t.Errorf("%s %s: %s = %q, want %q (the rendered Certificate)", kind, u.GetName(), injectCAFrom, got, want)
		}
	}

	svc := r.webhookService(t)
	dnsNames, _, _ := unstructured.NestedStringSlice(cert.Object, "spec", "dnsNames")
	want := []string{svc.Name + "." + svc.Namespace + ".svc", svc.Name + "." + svc.Namespace + ".svc.cluster.local"}
	if diff := cmp.Diff(want, dnsNames); diff != "" {
		t.Errorf("Certificate dnsNames are not the webhook Service's (-want +got):\n%s", diff)
	}
	issuerKind, _, _ := unstructured.NestedString(cert.Object, "spec", "issuerRef", "kind")
	issuerName, _, _ := unstructured.NestedString(cert.Object, "spec", "issuerRef", "name")
	if !slices.ContainsFunc(r.all(issuerKind), func(u *unstructured.Unstructured) bool {
		return u.GetName() == issuerName && u.GetNamespace() == cert.GetNamespace()
	}) {
		t.Errorf("the Certificate's issuer %s %s/%s is not rendered", issuerKind, cert.GetNamespace(), issuerName)
	}

	mgr := r.manager(t)
	c := container(t, mgr.Spec.Template.Spec, "manager")
	dir, _ := flagValue(c.Args, "webhook-cert-dir")
	vol, _ := volumeAt(t, mgr.Spec.Template.Spec, c, dir)
	secretName, _, _ := unstructured.NestedString(cert.Object, "spec", "secretName")
	if vol.Secret == nil || vol.Secret.SecretName != secretName {
		t.Errorf("the volume at --webhook-cert-dir=%s is %+v, want the Certificate's Secret %q", dir, vol.VolumeSource, secretName)
	}
	if mgr.Namespace != cert.GetNamespace() {
		t.Errorf("the manager runs in %s, the Certificate's Secret is in %s", mgr.Namespace, cert.GetNamespace())
	}
	if slices.Contains(c.Args, "--cert-rotation=true") {
		t.Error("the manager rotates its own certificate although cert-manager issues it")
	}
}

// Without cert-manager: nothing of cert-manager's, the manager rotates its certificate into a
// writable directory, and every name it uses by default exists and is what RBAC allows.
func TestNoCertManagerOverlay(t *testing.T) {
	r := render(t, withoutCertManager)
	for _, kind := range []string{"Certificate", "Issuer"} {
		if n := len(r.all(kind)); n != 0 {
			t.Errorf("%d %s rendered without cert-manager", n, kind)
		}
	}
	mgr := r.manager(t)
	c := container(t, mgr.Spec.Template.Spec, "manager")
	if !slices.Contains(c.Args, "--cert-rotation=true") {
		t.Errorf("manager args %v: the built-in rotation is off", c.Args)
	}
	dir, _ := flagValue(c.Args, "webhook-cert-dir")
	vol, mount := volumeAt(t, mgr.Spec.Template.Spec, c, dir)
	if vol.EmptyDir == nil || mount.ReadOnly {
		t.Errorf("the volume at --webhook-cert-dir=%s is %+v (read-only %v), want a writable emptyDir", dir, vol.VolumeSource, mount.ReadOnly)
	}

	// The rotation's flag defaults name what the overlay renders.
	ns := mgr.Namespace
	names := map[string]string{}
	for kind, suffix := range map[string]string{
		"Secret":                         "webhook-server-cert",
		"Service":                        "webhook-service",
		"ValidatingWebhookConfiguration": "validating-webhook-configuration",
		"MutatingWebhookConfiguration":   "mutating-webhook-configuration",
	} {
		u := r.one(t, kind, suffix)
		names[kind] = u.GetName()
		if u.GetNamespace() != "" && u.GetNamespace() != ns {
			t.Errorf("%s %s is in %s, the manager in %s", kind, u.GetName(), u.GetNamespace(), ns)
		}
		if u.GetAnnotations()[injectCAFrom] != "" {
			t.Errorf("%s %s still asks cert-manager to inject its CA", kind, u.GetName())
		}
	}
	wantNames := map[string]string{
		"Secret":                         certs.DefaultSecretName,
		"Service":                        certs.DefaultServiceName,
		"ValidatingWebhookConfiguration": certs.DefaultValidatingWebhookName,
		"MutatingWebhookConfiguration":   certs.DefaultMutatingWebhookName,
	}
	if diff := cmp.Diff(wantNames, names); diff != "" {
		t.Errorf("the manager's --cert-rotation-* defaults differ from the rendered names (-want +got):\n%s", diff)
	}
	if !slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == "POD_NAMESPACE" && e.ValueFrom != nil }) {
		t.Error("the manager does not learn its namespace (POD_NAMESPACE), where its certificate Secret is")
	}

	// RBAC lets the manager write exactly those objects.
	rules := r.boundRules(t, mgr.Namespace, mgr.Spec.Template.Spec.ServiceAccountName)
	for _, want := range []struct{ group, resource, name string }{
		{"", "secrets", names["Secret"]},
		{"admissionregistration.k8s.io", "validatingwebhookconfigurations", names["ValidatingWebhookConfiguration"]},
		{"admissionregistration.k8s.io", "mutatingwebhookconfigurations", names["MutatingWebhookConfiguration"]},
	} {
		if !grantsNamed(rules, want.group, want.resource, "update", want.name) {
			t.Errorf("the manager may not update %s %s", want.resource, want.name)
		}
		if grants(rules, want.group, want.resource, "update") {
			t.Errorf("the manager may update every %s, not just %s", want.resource, want.name)
		}
	}
}
