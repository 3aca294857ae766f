package deploy

import (
	"slices"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
)

// checkRBAC: no wildcard anywhere, no way to escalate, and each binary limited to its job.
func checkRBAC(t *testing.T, r *rendered) {
	all := r.rules(t)
	if len(all) == 0 {
		t.Fatal("no Role or ClusterRole rendered")
	}
	for role, rules := range all {
		for _, rule := range rules {
			for field, values := range map[string][]string{"verbs": rule.Verbs, "resources": rule.Resources, "apiGroups": rule.APIGroups, "nonResourceURLs": rule.NonResourceURLs} {
				if slices.Contains(values, "*") {
					t.Errorf("%s grants * in %s: %+v", role, field, rule)
				}
			}
			for _, v := range []string{"escalate", "bind", "impersonate"} {
				if slices.Contains(rule.Verbs, v) {
					t.Errorf("%s grants %s: %+v", role, v, rule)
				}
			}
			if strings.HasPrefix(role, "ClusterRole/") && slices.Contains(rule.Resources, "secrets") {
				t.Errorf("%s grants Secrets cluster-wide: %+v", role, rule)
			}
		}
	}

	// The agent reads and writes Checkpoints and its node's CheckpointNode, and records events; it reads its Node, namespaces
	// and the Checkpoint CRD (by name only) to tell an explicit delete from anything else.
	ds := r.agent(t)
	agent := r.boundRules(t, ds.Namespace, ds.Spec.Template.Spec.ServiceAccountName)
	allowed := map[string][]string{
		"checkpoints":               nil, // any verb
		"checkpoints/status":        nil,
		"checkpointnodes":           {"create", "get", "list", "update"}, // list: which agent sweeps each store's bucket
		"checkpointstores":          {"get", "list", "watch"},
		"secrets":                   {"get"}, // a store's credentials, in its own namespace only (a Role)
		"events":                    nil,
		"nodes":                     {"get"},
		"namespaces":                {"get"},
		"customresourcedefinitions": {"get"},
	}
	for _, rule := range agent {
		if slices.Contains(rule.Resources, "customresourcedefinitions") && !slices.Equal(rule.ResourceNames, []string{"checkpoints.checkpointquota.dev"}) {
			t.Errorf("the agent may read CRDs %v; it needs only checkpoints.checkpointquota.dev", rule.ResourceNames)
		}
		for _, res := range rule.Resources {
			verbs, ok := allowed[res]
			if !ok {
				t.Errorf("the agent may %v %s; it needs only Checkpoints, its CheckpointNode, events and its Node", rule.Verbs, res)
				continue
			}
			for _, v := range rule.Verbs {
				if verbs != nil && !slices.Contains(verbs, v) {
					t.Errorf("the agent may %s %s; it needs only %v", v, res, verbs)
				}
			}
		}
	}
	if !grants(agent, "checkpointquota.dev", "checkpoints", "create") || !grants(agent, "checkpointquota.dev", "checkpoints", "update") ||
		!grants(agent, "checkpointquota.dev", "checkpoints/status", "update") {
		t.Error("the agent cannot publish Checkpoints and their status")
	}

	deploy := r.manager(t)
	mgr := r.boundRules(t, deploy.Namespace, deploy.Spec.Template.Spec.ServiceAccountName)
	for _, want := range []struct{ group, resource, verb string }{
		{"checkpointquota.dev", "checkpoints", "delete"},
		{"checkpointquota.dev", "checkpoints", "watch"},
		{"checkpointquota.dev", "checkpointquotas/status", "update"},
		{"checkpointquota.dev", "clustercheckpointquotas/status", "update"},
		{"", "pods", "list"},
		{"", "namespaces", "list"},
		{"", "nodes", "list"},
		{"coordination.k8s.io", "leases", "update"},
	} {
		if !grants(mgr, want.group, want.resource, want.verb) {
			t.Errorf("the manager may not %s %s.%s", want.verb, want.resource, want.group)
		}
	}
	// Only the agent publishes Checkpoints; the manager writes quota status, never quota specs.
	if grants(mgr, "checkpointquota.dev", "checkpoints", "create") {
		t.Error("the manager may create Checkpoints; only the agent publishes them")
	}
	for _, res := range []string{"checkpointquotas", "clustercheckpointquotas"} {
		for _, verb := range []string{"create", "update", "patch", "delete"} {
			if grants(mgr, "checkpointquota.dev", res, verb) {
				t.Errorf("the manager may %s %s; it writes only their status", verb, res)
			}
		}
	}

	var view, edit bool
	for _, u := range r.all("ClusterRole") {
		rules := typedRules(t, u)
		l := u.GetLabels()
		if l["rbac.authorization.k8s.io/aggregate-to-view"] == "true" &&
			grants(rules, "checkpointquota.dev", "checkpointquotas", "list") && grants(rules, "checkpointquota.dev", "checkpoints", "list") {
			view = true
		}
		if l["rbac.authorization.k8s.io/aggregate-to-edit"] == "true" && grants(rules, "checkpointquota.dev", "checkpointquotas", "create") {
			edit = true
		}
		// Stores are the cluster admin's: where archives go, and whose credentials.
		for _, to := range []string{"view", "edit", "admin"} {
			for _, verb := range []string{"get", "list", "create", "update", "patch", "delete"} {
				if l["rbac.authorization.k8s.io/aggregate-to-"+to] == "true" && grants(rules, "checkpointquota.dev", "checkpointstores", verb) {
					t.Errorf("%s is aggregated to %s and may %s checkpointstores, which only cluster admins may", u.GetName(), to, verb)
				}
			}
		}
	}
	if !view || !edit {
		t.Errorf("aggregated roles: view of quotas and checkpoints %v, edit of quotas %v; want both", view, edit)
	}
}

// boundRules are the rules of every role bound to the service account namespace/sa.
func (r *rendered) boundRules(t *testing.T, namespace, sa string) []rbacv1.PolicyRule {
	t.Helper()
	all := r.rules(t)
	var out []rbacv1.PolicyRule
	for _, kind := range []string{"ClusterRoleBinding", "RoleBinding"} {
		for _, u := range r.all(kind) {
			b := typedBinding(t, u)
			if slices.ContainsFunc(b.Subjects, func(s rbacv1.Subject) bool {
				return s.Kind == "ServiceAccount" && s.Name == sa && s.Namespace == namespace
			}) {
				rules, ok := all[b.RoleRef.Kind+"/"+b.RoleRef.Name]
				if !ok {
					t.Errorf("%s %s binds %s %s, which is not rendered", kind, u.GetName(), b.RoleRef.Kind, b.RoleRef.Name)
				}
				out = append(out, rules...)
			}
		}
	}
	if len(out) == 0 {
		t.Errorf("nothing is bound to service account %s", sa)
	}
	return out
}

// grants says whether a rule allows verb on resource in group, for every object name.
func grants(rules []rbacv1.PolicyRule, group, resource, verb string) bool {
	return slices.ContainsFunc(rules, func(r rbacv1.PolicyRule) bool {
		return slices.Contains(r.APIGroups, group) && slices.Contains(r.Resources, resource) &&
			slices.Contains(r.Verbs, verb) && len(r.ResourceNames) == 0
	})
}

// grantsNamed says whether a rule allows verb on the named object.
func grantsNamed(rules []rbacv1.PolicyRule, group, resource, verb, name string) bool {
	return slices.ContainsFunc(rules, func(r rbacv1.PolicyRule) bool {
		return slices.Contains(r.APIGroups, group) && slices.Contains(r.Resources, resource) && slices.Contains(r.Verbs, verb) &&
			(len(r.ResourceNames) == 0 || slices.Contains(r.ResourceNames, name))
	})
}
