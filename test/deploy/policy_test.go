package deploy

import (
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// The pinned-checkpoint policy lets the node agent's own ServiceAccount, as each overlay and
// the chart name it, delete a pinned Checkpoint (whose archive is gone from the node), and no
// one else: a person's and the manager's deletes stay refused (docs/node-agent.md). A token
// that names its node (nodeBound) is exempt only for that node's Checkpoints.
func TestPinnedPolicyExemptsOnlyTheAgent(t *testing.T) {
	for name, r := range map[string]func(t *testing.T) *rendered{
		"config/" + withCertManager:    func(t *testing.T) *rendered { return render(t, withCertManager) },
		"config/" + withoutCertManager: func(t *testing.T) *rendered { return render(t, withoutCertManager) },
		"helm":                         func(t *testing.T) *rendered { return helmTemplate(t) },
		"helm, renamed":                func(t *testing.T) *rendered { return helmTemplate(t, "fullnameOverride=ops-cq") },
	} {
		t.Run(name, func(t *testing.T) {
			r := r(t)
			ds := r.agent(t)
			want := []any{map[string]any{
				"name": "not-the-node-agent",
				"expression": fmt.Sprintf("request.userInfo.username != 'system:serviceaccount:' + '%s' + ':' + '%s'",
					ds.Namespace, ds.Spec.Template.Spec.ServiceAccountName) + nodeBound,
			}}
			got, _, _ := unstructured.NestedFieldNoCopy(r.one(t, "ValidatingAdmissionPolicy", "pinned-checkpoint").Object, "spec", "matchConditions")
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("the policy's matchConditions (-want +got):\n%s", diff)
			}
			if mgr := r.manager(t); mgr.Spec.Template.Spec.ServiceAccountName == ds.Spec.Template.Spec.ServiceAccountName {
				t.Errorf("the manager runs as the agent's ServiceAccount %s, which the policy exempts", ds.Spec.Template.Spec.ServiceAccountName)
			}
		})
	}
}

// nodeBound is the rest of the exemption's expression: a token that names its node deletes
// only the Checkpoints of that node.
const nodeBound = " || (has(request.userInfo.extra) && 'authentication.kubernetes.io/node-name' in request.userInfo.extra" +
	" && !(has(oldObject.spec) && has(oldObject.spec.archive) && oldObject.spec.archive.nodeName in" +
	" request.userInfo.extra['authentication.kubernetes.io/node-name']))"
