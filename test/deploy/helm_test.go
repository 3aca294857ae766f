package deploy

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/checkpoint-quota/checkpoint-quota/certs"
)

// certificate modes of the chart, on clusters with and without cert-manager's API, and the
// overlay each must match.
var chartModes = map[string]struct {
	set         []string
	apiVersions []string
	overlay     string
}{
	"auto, cert-manager served":     {apiVersions: []string{certManagerAPI}, overlay: withCertManager},
	"auto, cert-manager not served": {overlay: withoutCertManager},
	"cert-manager":                  {set: []string{"certificates.mode=cert-manager"}, apiVersions: []string{certManagerAPI}, overlay: withCertManager},
	"rotation, cert-manager served": {set: []string{"certificates.mode=rotation"}, apiVersions: []string{certManagerAPI}, overlay: withoutCertManager},
}

// helm lint cannot be told which API versions a cluster serves (it has no --api-versions), so it
// lints what certificates.mode renders on a cluster without cert-manager; TestHelmMatchesKustomize
// renders the cert-manager modes with helm template --api-versions.
func TestHelmLint(t *testing.T) {
	for mode, set := range map[string][]string{"auto": nil, "rotation": {"certificates.mode=rotation"}} {
		t.Run(mode, func(t *testing.T) {
			args := []string{"lint", "--strict", chartDir()}
			for _, s := range append(slices.Clone(set), "metrics.serviceMonitor.enabled=true",
				"metrics.prometheusRule.enabled=true", "metrics.grafanaDashboard.enabled=true", "clusterDefaultQuota.enabled=true") {
				args = append(args, "--set", s)
			}
			out, err := runHelm(nil, args...)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(out, "[WARNING]") || strings.Contains(out, "[ERROR]") {
				t.Errorf("helm lint reports:\n%s", out)
			}
		})
	}
}

// The chart's defaults render what config/ renders, in everything a cluster acts on: the same
// kinds, CRDs, RBAC rules and bindings, webhooks, admission policy, container arguments and
// host paths. Names are the same too, for the release name checkpoint-quota.
func TestHelmMatchesKustomize(t *testing.T) {
	for mode, m := range chartModes {
		t.Run(mode, func(t *testing.T) {
			k, h := render(t, m.overlay), helmTemplateFor(t, m.apiVersions, m.set...)

			// The release namespace is made by helm install --create-namespace, not by the chart.
			if diff := cmp.Diff(kinds(k, "Namespace"), kinds(h)); diff != "" {
				t.Errorf("kinds (-kustomize +helm):\n%s", diff)
			}
			for _, kind := range []string{"CustomResourceDefinition", "ValidatingAdmissionPolicy"} {
				if diff := cmp.Diff(fieldByName(k, kind, "spec"), fieldByName(h, kind, "spec")); diff != "" {
					t.Errorf("%s specs (-kustomize +helm):\n%s", kind, diff)
				}
			}
			if diff := cmp.Diff(k.rules(t), h.rules(t)); diff != "" {
				t.Errorf("RBAC rules (-kustomize +helm):\n%s", diff)
			}
			for _, kind := range []string{"ClusterRoleBinding", "RoleBinding"} {
				if diff := cmp.Diff(bindings(t, k, kind), bindings(t, h, kind)); diff != "" {
					t.Errorf("%ss (-kustomize +helm):\n%s", kind, diff)
				}
			}
			for _, kind := range webhookKinds {
				if diff := cmp.Diff(fieldByName(k, kind, "webhooks"), fieldByName(h, kind, "webhooks")); diff != "" {
					t.Errorf("%s webhooks (-kustomize +helm):\n%s", kind, diff)
				}
				if diff := cmp.Diff(fieldByName(k, kind, "metadata", "annotations"), fieldByName(h, kind, "metadata", "annotations")); diff != "" {
					t.Errorf("%s annotations (-kustomize +helm):\n%s", kind, diff)
				}
			}

			kMgr, hMgr := container(t, k.manager(t).Spec.Template.Spec, "manager"), container(t, h.manager(t).Spec.Template.Spec, "manager")
			wantArgs := slices.Clone(kMgr.Args)
			if m.overlay == withoutCertManager {
				// The chart names the rotation's objects explicitly (they follow the release
				// name); for this release they are the binary's defaults, which config/ relies on.
				wantArgs = append(wantArgs,
					"--cert-rotation-secret="+certs.DefaultSecretName,
					"--cert-rotation-service="+certs.DefaultServiceName,
					"--cert-rotation-validating-webhook="+certs.DefaultValidatingWebhookName,
					"--cert-rotation-mutating-webhook="+certs.DefaultMutatingWebhookName)
			}
			if diff := cmp.Diff(wantArgs, hMgr.Args); diff != "" {
				t.Errorf("manager args (-want +helm):\n%s", diff)
			}
			if diff := cmp.Diff(kMgr.Command, hMgr.Command); diff != "" {
				t.Errorf("manager command (-kustomize +helm):\n%s", diff)
			}
			kAgentSpec, hAgentSpec := k.agent(t).Spec.Template.Spec, h.agent(t).Spec.Template.Spec
			kAgent, hAgent := container(t, kAgentSpec, "node-agent"), container(t, hAgentSpec, "node-agent")
			if diff := cmp.Diff(kAgent.Args, hAgent.Args); diff != "" {
				t.Errorf("agent args (-kustomize +helm):\n%s", diff)
			}
			if diff := cmp.Diff(hostPaths(kAgentSpec, kAgent), hostPaths(hAgentSpec, hAgent)); diff != "" {
				t.Errorf("agent host paths (-kustomize +helm):\n%s", diff)
			}
			if diff := cmp.Diff(kAgentSpec.Tolerations, hAgentSpec.Tolerations); diff != "" {
				t.Errorf("agent tolerations (-kustomize +helm):\n%s", diff)
			}
			for name, pair := range map[string][2]any{
				"manager security context": {kMgr.SecurityContext, hMgr.SecurityContext},
				"agent security context":   {kAgent.SecurityContext, hAgent.SecurityContext},
				"manager resources":        {kMgr.Resources, hMgr.Resources},
				"agent resources":          {kAgent.Resources, hAgent.Resources},
				"manager replicas":         {k.manager(t).Spec.Replicas, h.manager(t).Spec.Replicas},
			} {
				if diff := cmp.Diff(pair[0], pair[1]); diff != "" {
					t.Errorf("%s (-kustomize +helm):\n%s", name, diff)
				}
			}
		})
	}
}

// Each value a user may set reaches the objects it names.
func TestHelmValues(t *testing.T) {
	h := helmTemplate(t,
		"agent.checkpointDirs={/var/lib/kubelet/checkpoints,/mnt/fast/checkpoints}",
		"agent.priorityClassName=system-node-critical", "manager.priorityClassName=system-cluster-critical",
		"agent.nodeSelector.checkpoints=yes", "logLevel=debug", "manager.leaderElection.enabled=false",
		"manager.replicas=1", "image.repository=registry.example/cq", "image.tag=v9")
	agent := h.agent(t).Spec.Template.Spec
	c := container(t, agent, "node-agent")
	if diff := cmp.Diff([]string{"/mnt/fast/checkpoints", "/var/lib/checkpoint-quota/agent", "/var/lib/kubelet/checkpoints"}, hostPaths(agent, c)); diff != "" {
		t.Errorf("agent host paths (-want +got):\n%s", diff)
	}
	for _, want := range []string{"--checkpoint-dir=/var/lib/kubelet/checkpoints", "--checkpoint-dir=/mnt/fast/checkpoints", "--zap-log-level=debug"} {
		if !slices.Contains(c.Args, want) {
			t.Errorf("agent args %v lack %s", c.Args, want)
		}
	}
	if agent.PriorityClassName != "system-node-critical" || agent.NodeSelector["checkpoints"] != "yes" {
		t.Errorf("agent priorityClassName %q, nodeSelector %v", agent.PriorityClassName, agent.NodeSelector)
	}
	if !slices.ContainsFunc(agent.Tolerations, func(t corev1.Toleration) bool { return t.Operator == corev1.TolerationOpExists && t.Key == "" }) {
		t.Errorf("agent tolerations %v: control-plane (and every tainted) node gets no agent", agent.Tolerations)
	}
	mgr := h.manager(t)
	mc := container(t, mgr.Spec.Template.Spec, "manager")
	if slices.Contains(mc.Args, "--leader-elect") || !slices.Contains(mc.Args, "--zap-log-level=debug") {
		t.Errorf("manager args %v: want no --leader-elect and --zap-log-level=debug", mc.Args)
	}
	if *mgr.Spec.Replicas != 1 || mgr.Spec.Template.Spec.PriorityClassName != "system-cluster-critical" {
		t.Errorf("manager replicas %d, priorityClassName %q", *mgr.Spec.Replicas, mgr.Spec.Template.Spec.PriorityClassName)
	}
	if mc.Image != "registry.example/cq:v9" || c.Image != "registry.example/cq:v9" {
		t.Errorf("images %s and %s, want registry.example/cq:v9", mc.Image, c.Image)
	}

	// Off by default: monitoring objects and the cluster default quota.
	def := helmTemplate(t)
	for _, kind := range []string{"ServiceMonitor", "PodMonitor", "PrometheusRule", "ConfigMap", "ClusterCheckpointQuota"} {
		if n := len(def.all(kind)); n != 0 {
			t.Errorf("%d %s rendered by default", n, kind)
		}
	}
	on := helmTemplate(t, "metrics.serviceMonitor.enabled=true", "metrics.prometheusRule.enabled=true",
		"metrics.grafanaDashboard.enabled=true", "clusterDefaultQuota.enabled=true")
	for _, kind := range []string{"ServiceMonitor", "PodMonitor", "PrometheusRule", "ConfigMap", "ClusterCheckpointQuota"} {
		if n := len(on.all(kind)); n != 1 {
			t.Errorf("%d %s rendered when enabled, want 1", n, kind)
		}
	}
}

// README.md has a row for every value of values.yaml, and no row for a value that is gone.
func TestHelmReadmeListsEveryValue(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(chartDir(), "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var values map[string]any
	if err := yaml.Unmarshal(raw, &values); err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join(chartDir(), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]bool{}
	for _, m := range regexp.MustCompile("(?m)^\\| `([A-Za-z0-9_.]+)` \\|").FindAllStringSubmatch(string(readme), -1) {
		rows[m[1]] = true
	}
	var leaves []string
	flatten("", values, &leaves)
	for _, leaf := range leaves {
		if !documented(leaf, rows) {
			t.Errorf("value %s has no row in charts/checkpoint-quota/README.md", leaf)
		}
	}
	for row := range rows {
		if !slices.ContainsFunc(leaves, func(l string) bool { return l == row || strings.HasPrefix(l, row+".") }) {
			t.Errorf("README.md documents %s, which values.yaml does not have", row)
		}
	}
}

// flatten lists the paths of the leaves of a values tree (an empty map or a list is a leaf).
func flatten(prefix string, v any, out *[]string) {
	m, ok := v.(map[string]any)
	if !ok || len(m) == 0 {
		*out = append(*out, prefix)
		return
	}
	for k, child := range m {
		p := k
		if prefix != "" {
			p = prefix + "." + k
		}
		flatten(p, child, out)
	}
}

// documented says whether a row names the leaf or a map holding it.
func documented(leaf string, rows map[string]bool) bool {
	for p := leaf; p != ""; {
		if rows[p] {
			return true
		}
		i := strings.LastIndex(p, ".")
		if i < 0 {
			return false
		}
		p = p[:i]
	}
	return false
}

// kinds lists the kinds of the rendered objects, one entry per object, sorted, without skip.
func kinds(r *rendered, skip ...string) []string {
	var out []string
	for _, u := range r.objs {
		if !slices.Contains(skip, u.GetKind()) {
			out = append(out, u.GroupVersionKind().GroupKind().String())
		}
	}
	sort.Strings(out)
	return out
}

// fieldByName maps each object of a kind, by name, to one of its fields.
func fieldByName(r *rendered, kind string, path ...string) map[string]any {
	out := map[string]any{}
	for _, u := range r.all(kind) {
		v, _, _ := unstructured.NestedFieldNoCopy(u.Object, path...)
		out[u.GetName()] = v
	}
	return out
}

// bindings maps each binding of a kind to its role and subjects.
func bindings(t *testing.T, r *rendered, kind string) map[string]string {
	out := map[string]string{}
	for _, u := range r.all(kind) {
		b := typedBinding(t, u)
		out[u.GetNamespace()+"/"+u.GetName()] = fmt.Sprintf("%s %s -> %v", b.RoleRef.Kind, b.RoleRef.Name, b.Subjects)
	}
	return out
}

// hostPaths lists, sorted, the host paths the container mounts (and where).
func hostPaths(spec corev1.PodSpec, c corev1.Container) []string {
	var out []string
	for _, m := range c.VolumeMounts {
		for _, v := range spec.Volumes {
			if v.Name == m.Name && v.HostPath != nil {
				if v.HostPath.Path != m.MountPath {
					out = append(out, v.HostPath.Path+" at "+m.MountPath)
				} else {
					out = append(out, v.HostPath.Path)
				}
			}
		}
	}
	sort.Strings(out)
	return out
}

// certificates.mode=cert-manager on a cluster without cert-manager's API, and a mode that does
// not exist, stop the render with one sentence saying what to install or which value to set.
func TestHelmCertificateModeErrors(t *testing.T) {
	tests := map[string]struct {
		set  string
		want []string
	}{
		"cert-manager without its API": {set: "certificates.mode=cert-manager", want: []string{
			"certificates.mode is cert-manager, but this cluster does not serve cert-manager.io/v1: install cert-manager first",
			"or set certificates.mode=auto or rotation",
		}},
		"unknown mode": {set: "certificates.mode=certmanager", want: []string{
			`certificates.mode is "certmanager": set auto (the default), cert-manager or rotation`,
		}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := runHelm(nil, templateArgs(nil, tc.set)...)
			if err == nil {
				t.Fatal("helm template succeeded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not say %q:\n%v", w, err)
				}
			}
		})
	}
}
