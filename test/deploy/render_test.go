package deploy

import (
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
)

const injectCAFrom = "cert-manager.io/inject-ca-from"

var webhookKinds = []string{"ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"}

// The overlays share everything but the certificate's source; these hold for both.
func TestOverlaysRender(t *testing.T) {
	for name, dir := range map[string]string{"with cert-manager": withCertManager, "without cert-manager": withoutCertManager} {
		t.Run(name, func(t *testing.T) {
			r := render(t, dir)
			t.Run("webhooks reach the manager", func(t *testing.T) { checkWebhookRouting(t, r) })
			t.Run("manager reads its certificate where it is mounted", func(t *testing.T) { checkCertMount(t, r) })
			t.Run("manager deployment", func(t *testing.T) { checkManager(t, r) })
			t.Run("agent daemonset", func(t *testing.T) { checkAgent(t, r) })
			t.Run("least privilege", func(t *testing.T) { checkRBAC(t, r) })
		})
	}
}

// checkWebhookRouting: both configurations call the webhook Service, which selects the manager
// pods, not the agents, on the manager's webhook port.
func checkWebhookRouting(t *testing.T, r *rendered) {
	svc := r.webhookService(t)
	mgr := r.manager(t)
	for _, kind := range webhookKinds {
		u := r.one(t, kind, "webhook-configuration")
		hooks, _, _ := unstructured.NestedSlice(u.Object, "webhooks")
		if len(hooks) == 0 {
			t.Errorf("%s %s has no webhooks", kind, u.GetName())
		}
		for _, h := range hooks {
			ref, _, _ := unstructured.NestedStringMap(h.(map[string]any), "clientConfig", "service")
			got := map[string]string{"name": ref["name"], "namespace": ref["namespace"]}
			want := map[string]string{"name": svc.Name, "namespace": svc.Namespace}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("%s %s calls another Service (-want +got):\n%s", kind, u.GetName(), diff)
			}
		}
	}
	sel := labels.SelectorFromSet(svc.Spec.Selector)
	if len(svc.Spec.Selector) == 0 || !sel.Matches(labels.Set(mgr.Spec.Template.Labels)) {
		t.Errorf("webhook Service selector %v does not select the manager pods %v", svc.Spec.Selector, mgr.Spec.Template.Labels)
	}
	if sel.Matches(labels.Set(r.agent(t).Spec.Template.Labels)) {
		t.Errorf("webhook Service selector %v also selects the node agents", svc.Spec.Selector)
	}
	c := container(t, mgr.Spec.Template.Spec, "manager")
	port, _ := flagValue(c.Args, "webhook-port")
	for _, p := range svc.Spec.Ports {
		target := p.TargetPort.String()
		for _, cp := range c.Ports {
			if cp.Name == target {
				target = strconv.Itoa(int(cp.ContainerPort))
			}
		}
		if target != port {
			t.Errorf("webhook Service targets port %s (%s), the manager serves --webhook-port=%s", p.TargetPort.String(), target, port)
		}
	}
}

// checkCertMount: whatever the overlay, a volume sits at --webhook-cert-dir.
func checkCertMount(t *testing.T, r *rendered) {
	mgr := r.manager(t)
	c := container(t, mgr.Spec.Template.Spec, "manager")
	dir, ok := flagValue(c.Args, "webhook-cert-dir")
	if !ok {
		t.Fatal("the manager has no --webhook-cert-dir")
	}
	volumeAt(t, mgr.Spec.Template.Spec, c, dir)
}

func checkManager(t *testing.T, r *rendered) {
	mgr := r.manager(t)
	spec := mgr.Spec.Template.Spec
	c := container(t, spec, "manager")
	if mgr.Spec.Replicas == nil || *mgr.Spec.Replicas < 2 {
		t.Errorf("replicas = %v, want at least 2", mgr.Spec.Replicas)
	}
	if !slices.Contains(c.Args, "--leader-elect") {
		t.Error("two replicas without --leader-elect would both run the controllers")
	}
	if spec.SecurityContext == nil || spec.SecurityContext.RunAsNonRoot == nil || !*spec.SecurityContext.RunAsNonRoot {
		t.Error("the manager pod is not runAsNonRoot")
	}
	sc := c.SecurityContext
	if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
		t.Errorf("manager container security context %+v: want read-only root, no privilege escalation, all capabilities dropped", sc)
	}
	if c.LivenessProbe == nil || c.ReadinessProbe == nil {
		t.Error("the manager needs liveness and readiness probes")
	}
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() {
		t.Error("the manager has no CPU and memory requests")
	}
	if spec.ServiceAccountName == "" || strings.HasSuffix(spec.ServiceAccountName, "default") {
		t.Errorf("the manager runs as service account %q, want its own", spec.ServiceAccountName)
	}
	metrics := r.one(t, "Service", "controller-manager-metrics-service")
	sel, _, _ := unstructured.NestedStringMap(metrics.Object, "spec", "selector")
	if !labels.SelectorFromSet(sel).Matches(labels.Set(mgr.Spec.Template.Labels)) {
		t.Errorf("metrics Service selector %v does not select the manager pods", sel)
	}
}

// checkAgent: the host is reachable only through the checkpoint directory and the agent's
// own state directory.
func checkAgent(t *testing.T, r *rendered) {
	ds := r.agent(t)
	spec := ds.Spec.Template.Spec
	var hostPaths []string
	for _, v := range spec.Volumes {
		if v.HostPath != nil {
			hostPaths = append(hostPaths, v.HostPath.Path)
		}
	}
	if diff := cmp.Diff([]string{"/var/lib/kubelet/checkpoints", "/var/lib/checkpoint-quota/agent"}, hostPaths); diff != "" {
		t.Errorf("agent hostPath volumes (-want +got):\n%s", diff)
	}
	if spec.HostNetwork || spec.HostPID || spec.HostIPC {
		t.Error("the agent shares a host namespace")
	}
	c := container(t, spec, "node-agent")
	sc := c.SecurityContext
	if sc == nil || (sc.Privileged != nil && *sc.Privileged) || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Errorf("agent security context %+v: want unprivileged, no privilege escalation", sc)
	}
	if sc != nil && (sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") || len(sc.Capabilities.Add) > 0) {
		t.Errorf("agent capabilities %+v: want all dropped and none added", sc.Capabilities)
	}
	if sc != nil && (sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem) {
		t.Error("the agent's root filesystem is writable")
	}
	var nodeName string
	for _, e := range c.Env {
		if e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "spec.nodeName" {
			nodeName = e.Name
		}
	}
	if nodeName == "" {
		t.Error("the agent does not get its node's name from the downward API")
	}
	if !slices.ContainsFunc(spec.Tolerations, func(tol corev1.Toleration) bool {
		return tol.Operator == corev1.TolerationOpExists && tol.Key == "" && tol.Effect == ""
	}) {
		t.Errorf("agent tolerations %+v do not tolerate every taint, so some nodes would keep their archives", spec.Tolerations)
	}
	if spec.ServiceAccountName == "" || spec.ServiceAccountName == r.manager(t).Spec.Template.Spec.ServiceAccountName {
		t.Errorf("the agent runs as service account %q, want its own", spec.ServiceAccountName)
	}
}

// configImage is the image name config/ uses; `make deploy` and `make build-installer` replace
// exactly this string (Makefile CONFIG_IMG) with IMG, so every container must use it.
const configImage = "checkpoint-quota:latest"

func TestOneImageForBothBinaries(t *testing.T) {
	for name, dir := range map[string]string{"with cert-manager": withCertManager, "without cert-manager": withoutCertManager} {
		t.Run(name, func(t *testing.T) {
			r := render(t, dir)
			got := map[string]string{}
			for _, c := range r.manager(t).Spec.Template.Spec.Containers {
				got["manager/"+c.Name] = c.Image + " " + strings.Join(c.Command, " ")
			}
			for _, c := range r.agent(t).Spec.Template.Spec.Containers {
				got["agent/"+c.Name] = c.Image + " " + strings.Join(c.Command, " ")
			}
			want := map[string]string{
				"manager/manager":  configImage + " /manager",
				"agent/node-agent": configImage + " /node-agent",
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("container images and commands (-want +got):\n%s", diff)
			}
		})
	}
}
