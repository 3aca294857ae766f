package deploy

import (
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"

	"github.com/checkpoint-quota/checkpoint-quota/certs"
)

// With cert-manager: both webhook configurations take their CA from the serving Certificate,
// whose Secret is the one mounted where the manager reads its certificate.
func TestCertManagerOverlay(t *testing.T) {
	r := render(t, withCertManager)
	cert := r.servingCertificate(t)
	for _, kind := range webhookKinds {
		u := r.one(t, kind, "webhook-configuration")
		if got, want := u.GetAnnotations()[injectCAFrom], cert.Namespace+"/"+cert.Name; got != want {
			t.Errorf("%s %s: %s = %q, want %q (the serving Certificate)", kind, u.GetName(), injectCAFrom, got, want)
		}
	}

	svc := r.webhookService(t)
	want := []string{svc.Name + "." + svc.Namespace + ".svc", svc.Name + "." + svc.Namespace + ".svc.cluster.local"}
	if diff := cmp.Diff(want, cert.Spec.DNSNames); diff != "" {
		t.Errorf("the serving Certificate's dnsNames are not the webhook Service's (-want +got):\n%s", diff)
	}

	mgr := r.manager(t)
	c := container(t, mgr.Spec.Template.Spec, "manager")
	if mgr.Namespace != cert.Namespace {
		t.Errorf("the manager runs in %s, the Certificate's Secret is in %s", mgr.Namespace, cert.Namespace)
	}
	if slices.Contains(c.Args, "--cert-rotation=true") {
		t.Error("the manager rotates its own certificate although cert-manager issues it")
	}
}

// With cert-manager the serving certificate comes from a CA that outlives it: a self-signed
// Issuer issues a CA Certificate, a CA Issuer signs with that CA's Secret, and the serving
// Certificate comes from the CA Issuer. Renewing the serving certificate then keeps the CA,
// and inject-ca-from (the serving Certificate's Secret's ca.crt) puts that CA in every webhook.
func TestCertManagerCAChain(t *testing.T) {
	r := render(t, withCertManager)
	serving := r.servingCertificate(t)
	if serving.Spec.IsCA {
		t.Error("the serving Certificate is a CA")
	}
	if got := serving.Spec.PrivateKey.RotationPolicy; got != "Always" {
		t.Errorf("the serving Certificate's privateKey.rotationPolicy is %q, want Always (a new key each renewal, the CA unchanged)", got)
	}

	caIssuer := r.issuerOf(t, serving)
	if caIssuer.Spec.CA == nil || caIssuer.Spec.CA.SecretName == "" {
		t.Fatalf("the serving Certificate's Issuer %s is %s, want a CA Issuer (spec.ca.secretName)", caIssuer.Name, caIssuer.kind())
	}
	ca := r.certificateWithSecret(t, serving.Namespace, caIssuer.Spec.CA.SecretName)
	if !ca.Spec.IsCA {
		t.Errorf("Certificate %s, whose Secret %s the CA Issuer signs with, has isCA false", ca.Name, ca.Spec.SecretName)
	}
	if ca.Name == serving.Name || ca.Spec.SecretName == serving.Spec.SecretName {
		t.Errorf("the CA and the serving certificate share Certificate %s / Secret %s", ca.Name, ca.Spec.SecretName)
	}
	selfSigned := r.issuerOf(t, ca)
	if selfSigned.Spec.SelfSigned == nil {
		t.Errorf("the CA Certificate's Issuer %s is %s, want a self-signed Issuer", selfSigned.Name, selfSigned.kind())
	}

	// The CA lives long, keeps its key when cert-manager renews it (so what it signed still
	// verifies), and is renewed earlier than a serving certificate lives (so every serving
	// certificate is reissued, with the renewed CA in ca.crt, before its CA expires).
	caLife, servingLife := duration(ca), duration(serving)
	if caLife < 5*365*24*time.Hour {
		t.Errorf("the CA Certificate lasts %v, want years", caLife)
	}
	if got := ca.Spec.PrivateKey.RotationPolicy; got != "Never" {
		t.Errorf("the CA Certificate's privateKey.rotationPolicy is %q, want Never: a renewal would make a new CA", got)
	}
	caRenewBefore := caLife / 3 // cert-manager's default
	if ca.Spec.RenewBefore != nil {
		caRenewBefore = ca.Spec.RenewBefore.Duration
	}
	if caRenewBefore < servingLife {
		t.Errorf("the CA Certificate renews %v before it expires, less than a serving certificate lasts (%v)", caRenewBefore, servingLife)
	}
	if servingLife >= caLife {
		t.Errorf("the serving certificate lasts %v, not less than its CA (%v)", servingLife, caLife)
	}

	// Every webhook the apiserver calls takes its CA from the serving Certificate: today the
	// four webhooks of the two configurations (the CRDs have no conversion webhooks).
	wantFrom := serving.Namespace + "/" + serving.Name
	var covered []string
	for _, kind := range append(slices.Clone(webhookKinds), "CustomResourceDefinition") {
		for _, u := range r.all(kind) {
			hooks := webhookNames(u)
			if len(hooks) == 0 {
				continue
			}
			if got := u.GetAnnotations()[injectCAFrom]; got != wantFrom {
				t.Errorf("%s %s (webhooks %v): %s = %q, want %q", kind, u.GetName(), hooks, injectCAFrom, got, wantFrom)
				continue
			}
			covered = append(covered, hooks...)
		}
	}
	for _, hook := range []string{
		"mcheckpointquota.checkpointquota.dev", "mclustercheckpointquota.checkpointquota.dev",
		"vcheckpointquota.checkpointquota.dev", "vclustercheckpointquota.checkpointquota.dev",
	} {
		if !slices.Contains(covered, hook) {
			t.Errorf("webhook %s does not take its CA from the serving Certificate (covered: %v)", hook, covered)
		}
	}
	// Nothing injects from the CA Certificate directly: its Secret's ca.crt is itself, and the
	// serving Certificate's ca.crt is the same CA; one source keeps one place to look.
	for _, u := range r.objs {
		if from, ok := u.GetAnnotations()[injectCAFrom]; ok && from != wantFrom {
			t.Errorf("%s %s injects its CA from %s, not the serving Certificate %s", u.GetKind(), u.GetName(), from, wantFrom)
		}
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
