package testenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"slices"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// PostureOverlay is the overlay of config/ whose security objects the test bed installs:
// what `make deploy` applies.
const PostureOverlay = "default"

// postureKinds are the kinds of the rendered overlay that make the security posture: the
// binaries' ServiceAccounts and roles, the roles aggregated into view, edit and admin, and
// the pinned-checkpoint admission policy. The CRDs and webhook configurations come from
// envtest (pointed at a local webhook server), and the workloads run as local processes.
var postureKinds = map[string]bool{
	"Namespace": true, "ServiceAccount": true,
	"ClusterRole": true, "ClusterRoleBinding": true, "Role": true, "RoleBinding": true,
	"ValidatingAdmissionPolicy": true, "ValidatingAdmissionPolicyBinding": true,
}

// Posture says who the manager and the node agent are once InstallPosture has run.
type Posture struct {
	// Namespace is where the manager and the agent run (their ServiceAccounts' namespace).
	Namespace string
	// Manager is the manager's ServiceAccount.
	Manager Identity
	// agent is the node agent's ServiceAccount, without the node its token names.
	agent Identity
}

// AgentOn is the node agent's identity on node as the bound token of its pod gives it: its
// ServiceAccount, and the node's name, which the admission policy reads.
func (p *Posture) AgentOn(node string) Identity {
	id := p.agent
	id.Extra = map[string][]string{NodeNameExtra: {node}}
	return id
}

// NodeNameExtra is the key of the node's name in the user info of a pod's bound token.
const NodeNameExtra = "authentication.kubernetes.io/node-name"

// InstallPosture applies the security objects of config/<PostureOverlay>, rendered by
// `kubectl kustomize` as `make deploy` renders them, to the cluster of c, and says who the
// manager and the agent run as. kubectl is the kubectl binary to render with.
func InstallPosture(ctx context.Context, c client.Client, kubectl string) (*Posture, error) {
	overlay := filepath.Join(RepoRoot(), "config", PostureOverlay)
	var out, errOut bytes.Buffer
	cmd := exec.CommandContext(ctx, kubectl, "kustomize", overlay)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("kubectl kustomize %s: %w\n%s", overlay, err, errOut.String())
	}
	objs, err := decodeAll(out.Bytes())
	if err != nil {
		return nil, fmt.Errorf("reading the rendering of %s: %w", overlay, err)
	}
	p := &Posture{}
	var apply []*unstructured.Unstructured
	for _, obj := range objs {
		switch kind := obj.GetKind(); {
		case kind == "Deployment" || kind == "DaemonSet":
			sa, ns, err := serviceAccountOf(obj)
			if err != nil {
				return nil, err
			}
			id := ServiceAccount(ns, sa)
			if kind == "Deployment" {
				p.Manager, p.Namespace = id, ns
			} else {
				p.agent = id
			}
		case postureKinds[kind]:
			apply = append(apply, obj)
		}
	}
	if p.Manager.User == "" || p.agent.User == "" {
		return nil, fmt.Errorf("%s renders no manager Deployment or no agent DaemonSet", overlay)
	}
	// Namespaces first: the namespaced objects go into them.
	for _, first := range []bool{true, false} {
		for _, obj := range apply {
			if (obj.GetKind() == "Namespace") != first {
				continue
			}
			if err := c.Apply(ctx, client.ApplyConfigurationFromUnstructured(obj), client.ForceOwnership, client.FieldOwner("checkpoint-quota-testenv")); err != nil {
				return nil, fmt.Errorf("applying %s %s: %w", obj.GetKind(), obj.GetName(), err)
			}
		}
	}
	return p, nil
}

func serviceAccountOf(obj *unstructured.Unstructured) (name, namespace string, err error) {
	var tmpl struct {
		Spec struct {
			Template struct {
				Spec struct {
					ServiceAccountName string `json:"serviceAccountName"`
				} `json:"spec"`
			} `json:"template"`
		} `json:"spec"`
	}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(obj.Object, &tmpl); err != nil {
		return "", "", err
	}
	if tmpl.Spec.Template.Spec.ServiceAccountName == "" {
		return "", "", fmt.Errorf("%s %s names no serviceAccountName", obj.GetKind(), obj.GetName())
	}
	return tmpl.Spec.Template.Spec.ServiceAccountName, obj.GetNamespace(), nil
}

func decodeAll(data []byte) ([]*unstructured.Unstructured, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var out []*unstructured.Unstructured
	for {
		obj := &unstructured.Unstructured{}
		if err := dec.Decode(&obj.Object); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return nil, err
		}
		if len(obj.Object) > 0 {
			out = append(out, obj)
		}
	}
}

// WaitForAggregation waits until the clusterrole-aggregation controller has copied the
// project's rules into the built-in edit and view ClusterRoles, as it does in a cluster:
// until then a namespace editor can do nothing with quotas or Checkpoints.
func WaitForAggregation(ctx context.Context, c client.Client) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for {
		edit, errEdit := grants(ctx, c, "edit", "checkpointquotas", "create")
		view, errView := grants(ctx, c, "view", "checkpoints", "list")
		if edit && view {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the built-in edit and view ClusterRoles did not get the rules of config/rbac "+
				"(is kube-controller-manager's clusterrole-aggregation controller running?): %w", errors.Join(ctx.Err(), errEdit, errView))
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// grants says whether the ClusterRole name has a rule for verb on resource of the project's group.
func grants(ctx context.Context, c client.Client, name, resource, verb string) (bool, error) {
	var role rbacv1.ClusterRole
	if err := c.Get(ctx, client.ObjectKey{Name: name}, &role); err != nil {
		return false, err
	}
	for _, r := range role.Rules {
		if slices.Contains(r.APIGroups, "checkpointquota.dev") && slices.Contains(r.Resources, resource) && slices.Contains(r.Verbs, verb) {
			return true, nil
		}
	}
	return false, nil
}
