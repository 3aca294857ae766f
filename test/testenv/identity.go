package testenv

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Identity is someone the kube-apiserver authenticates: the test bed acts as them through
// impersonation, so that RBAC and admission see them as they would see their own credentials.
type Identity struct {
	User   string
	Groups []string
	// Extra is the user info's extra fields, as a bound ServiceAccount token carries them.
	Extra map[string][]string
}

// ServiceAccount is the identity of the ServiceAccount name in namespace, with the groups
// the kube-apiserver gives its tokens.
func ServiceAccount(namespace, name string) Identity {
	return Identity{
		User:   "system:serviceaccount:" + namespace + ":" + name,
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + namespace, "system:authenticated"},
	}
}

// Person is a user authenticated by the cluster (a certificate or an OIDC token), with no
// group that grants anything.
func Person(name string) Identity {
	return Identity{User: name, Groups: []string{"system:authenticated"}}
}

// KubectlArgs are kubectl's flags that act as id (kubectl has no flag for extra fields).
func (id Identity) KubectlArgs() []string {
	args := []string{"--as", id.User}
	for _, g := range id.Groups {
		args = append(args, "--as-group", g)
	}
	return args
}

// ConfigAs is the administrator's rest.Config acting as id.
func (e *Env) ConfigAs(id Identity) *rest.Config {
	cfg := rest.CopyConfig(e.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: id.User, Groups: id.Groups, Extra: id.Extra}
	return cfg
}

// ClientAs is a direct client acting as id.
func (e *Env) ClientAs(id Identity) (client.Client, error) {
	return client.New(e.ConfigAs(id), client.Options{Scheme: Scheme})
}

// KubectlAs runs kubectl as id.
func (e *Env) KubectlAs(id Identity, stdin string, args ...string) (stdout, stderr string, err error) {
	return e.Kubectl(stdin, append(id.KubectlArgs(), args...)...)
}

// KubeconfigAs writes a kubeconfig that acts as id, for a process started with
// --kubeconfig, and returns its path.
func (e *Env) KubeconfigAs(id Identity) (string, error) {
	return KubeconfigAs(e.Kubeconfig, filepath.Join(e.dir, "kubeconfig-"+fileSafe(id.User)), id)
}

// KubeconfigAs writes to path a copy of the kubeconfig at from whose users act as id.
func KubeconfigAs(from, path string, id Identity) (string, error) {
	cfg, err := clientcmd.LoadFromFile(from)
	if err != nil {
		return "", err
	}
	for _, u := range cfg.AuthInfos {
		u.Impersonate, u.ImpersonateGroups, u.ImpersonateUserExtra = id.User, id.Groups, id.Extra
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return "", err
	}
	return path, clientcmd.WriteToFile(*cfg, path)
}

func fileSafe(s string) string {
	return strings.NewReplacer(":", "_", "/", "_").Replace(s)
}

// Tenant is a person who holds the built-in edit ClusterRole in one namespace, and nothing
// else: what a namespace's editor has in a cluster where checkpoint-quota is installed.
type Tenant struct {
	Identity
	Namespace string
	env       *Env
}

// NewTenant binds the built-in edit ClusterRole in namespace to the person user and returns
// them. The project's rules reach edit through aggregation (WaitForAggregation).
func (e *Env) NewTenant(ctx context.Context, user, namespace string) (*Tenant, error) {
	id := Person(user)
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: user + "-edit", Namespace: namespace},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "edit"},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: user}},
	}
	if err := e.Client.Create(ctx, binding); err != nil {
		return nil, fmt.Errorf("binding edit to %s in %s: %w", user, namespace, err)
	}
	return &Tenant{Identity: id, Namespace: namespace, env: e}, nil
}

// Kubectl runs kubectl as the tenant (--as, --as-group), in the tenant's namespace unless
// args name another.
func (t *Tenant) Kubectl(stdin string, args ...string) (stdout, stderr string, err error) {
	return t.env.KubectlAs(t.Identity, stdin, append([]string{"-n", t.Namespace}, args...)...)
}

// Client is a direct client acting as the tenant.
func (t *Tenant) Client() (client.Client, error) {
	return t.env.ClientAs(t.Identity)
}
