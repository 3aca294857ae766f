// Package testenv starts the test bed: a real etcd and kube-apiserver with the project's CRDs (and, on request, its webhooks) installed.
package testenv

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
)

// Scheme knows the built-in kinds and this project's kinds.
var Scheme = runtime.NewScheme()

func init() {
	utilruntime.Must(clientgoscheme.AddToScheme(Scheme))
	utilruntime.Must(cqv1.AddToScheme(Scheme))
}

// Env is a running control plane.
type Env struct {
	// Config reaches the kube-apiserver as an administrator.
	Config *rest.Config
	// Client is a direct (uncached) client for assertions.
	Client client.Client
	// Kubeconfig is a kubeconfig file for kubectl and for processes started by tests.
	Kubeconfig string
	// AssetsDir holds etcd, kube-apiserver and kubectl.
	AssetsDir string
	// Webhook says where the apiserver sends admission requests, when webhooks are installed.
	Webhook *envtest.WebhookInstallOptions

	env *envtest.Environment
	dir string
	// token and tokenFile are Options.TokenAuth's bearer token and the file that names it.
	token, tokenFile string
	kcm              *exec.Cmd
	// kcmDone is closed when kube-controller-manager has exited.
	kcmDone chan struct{}
}

// Options choose what the test bed installs.
type Options struct {
	// Webhooks installs the webhook configurations of config/webhook, pointed at a local
	// server (Env.Webhook says where) with a generated serving certificate.
	Webhooks bool
	// ControllerManager runs kube-controller-manager with the namespace and garbage-collector
	// controllers, so that deleting a namespace deletes its objects as in a real cluster, and
	// the clusterrole-aggregation controller, so that the built-in view, edit and admin
	// ClusterRoles get the rules of the roles config/rbac labels for them.
	ControllerManager bool
	// ServiceRouting has the kube-apiserver call webhooks at the endpoints of their Service
	// (--enable-aggregator-routing) rather than at its cluster IP, which nothing routes on
	// the test bed: a test that writes the Service's EndpointSlice can serve a webhook
	// configuration as a cluster has it, Service and all.
	ServiceRouting bool
	// TokenAuth has the kube-apiserver also accept an administrator's bearer token, which
	// Env.TokenKubeconfig uses.
	TokenAuth bool
}

// RepoRoot is the directory that holds the project's go.mod.
func RepoRoot() string {
	_, file, _, _ := goruntime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// Assets returns the directory of the control-plane binaries: KUBEBUILDER_ASSETS when set,
// else what hack/testbin.sh builds or finds in its cache.
func Assets() (string, error) {
	if dir := os.Getenv("KUBEBUILDER_ASSETS"); dir != "" {
		return dir, nil
	}
	out, err := exec.Command(filepath.Join(RepoRoot(), "hack", "testbin.sh")).Output()
	if err != nil {
		return "", fmt.Errorf("providing the test bed's binaries with hack/testbin.sh: %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}

// Start starts etcd and kube-apiserver, installs the CRDs and waits until they are served.
func Start(opts Options) (*Env, error) {
	assets, err := Assets()
	if err != nil {
		return nil, err
	}
	root := RepoRoot()
	te := &envtest.Environment{
		BinaryAssetsDirectory: assets,
		CRDDirectoryPaths:     []string{filepath.Join(root, "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		Scheme:                Scheme,
	}
	if opts.Webhooks {
		te.WebhookInstallOptions = envtest.WebhookInstallOptions{
			Paths: []string{filepath.Join(root, "config", "webhook")},
		}
	}
	if opts.ServiceRouting {
		te.ControlPlane.GetAPIServer().Configure().Set("enable-aggregator-routing", "true")
	}
	var token, tokens string
	if opts.TokenAuth {
		if token, tokens, err = withTokenAuth(te); err != nil {
			return nil, err
		}
	}
	cfg, err := te.Start()
	if err != nil {
		// envtest may have started etcd and kube-apiserver before failing (a CRD the
		// apiserver rejects, say): stop them rather than leave them running.
		_ = te.Stop()
		if tokens != "" {
			_ = os.RemoveAll(filepath.Dir(tokens))
		}
		return nil, fmt.Errorf("starting the test control plane from %s: %w", assets, err)
	}
	e := &Env{Config: cfg, AssetsDir: assets, env: te, token: token, tokenFile: tokens}
	if opts.Webhooks {
		e.Webhook = &te.WebhookInstallOptions
	}
	if e.Client, err = client.New(cfg, client.Options{Scheme: Scheme}); err != nil {
		_ = e.Stop()
		return nil, err
	}
	if e.dir, err = os.MkdirTemp("", "checkpoint-quota-testenv-"); err != nil {
		_ = e.Stop()
		return nil, err
	}
	if e.Kubeconfig, err = e.writeKubeconfig(); err != nil {
		_ = e.Stop()
		return nil, err
	}
	if opts.ControllerManager {
		if err := e.startControllerManager(); err != nil {
			_ = e.Stop()
			return nil, err
		}
	}
	return e, nil
}

// startControllerManager runs the test bed's kube-controller-manager with only the
// controllers that delete objects on behalf of users (namespace and garbage collector) and
// the one that decides what the built-in roles grant (clusterrole-aggregation).
func (e *Env) startControllerManager() error {
	bin := filepath.Join(e.AssetsDir, "kube-controller-manager")
	if _, err := os.Stat(bin); err != nil {
		return fmt.Errorf("the test bed has no kube-controller-manager (%w): run hack/testbin.sh, which builds it", err)
	}
	logPath := filepath.Join(e.dir, "kube-controller-manager.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	e.kcm = exec.Command(bin,
		"--kubeconfig", e.Kubeconfig,
		"--controllers", "namespace,garbagecollector,clusterrole-aggregation",
		"--leader-elect=false",
		"--use-service-account-credentials=false",
		"--secure-port=0",
		"--concurrent-namespace-syncs=4",
		"--namespace-sync-period=10s",
	)
	e.kcm.Stdout, e.kcm.Stderr = logFile, logFile
	if err := e.kcm.Start(); err != nil {
		_ = logFile.Close()
		return fmt.Errorf("starting kube-controller-manager: %w", err)
	}
	e.kcmDone = make(chan struct{})
	go func() {
		_ = e.kcm.Wait()
		_ = logFile.Close()
		close(e.kcmDone)
	}()
	select {
	case <-e.kcmDone:
		out, _ := os.ReadFile(logPath)
		return fmt.Errorf("kube-controller-manager exited at start:\n%s", out)
	case <-time.After(time.Second):
		return nil
	}
}

func (e *Env) writeKubeconfig() (string, error) {
	user, err := e.env.ControlPlane.AddUser(envtest.User{Name: "test-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return "", err
	}
	data, err := user.KubeConfig()
	if err != nil {
		return "", err
	}
	path := filepath.Join(e.dir, "kubeconfig")
	return path, os.WriteFile(path, data, 0o600)
}

// Stop stops the control plane and removes its files.
func (e *Env) Stop() error {
	if e.kcm != nil && e.kcm.Process != nil {
		_ = e.kcm.Process.Kill()
		<-e.kcmDone
	}
	err := e.env.Stop()
	if e.dir != "" {
		_ = os.RemoveAll(e.dir)
	}
	if e.tokenFile != "" {
		_ = os.RemoveAll(filepath.Dir(e.tokenFile))
	}
	return err
}

// KubectlPath is the test bed's kubectl, of the same version as the kube-apiserver.
func (e *Env) KubectlPath() string {
	return filepath.Join(e.AssetsDir, "kubectl")
}

// Kubectl runs the real kubectl against the test bed, with stdin as its standard input
// (may be empty), and returns what it printed.
func (e *Env) Kubectl(stdin string, args ...string) (stdout, stderr string, err error) {
	return e.KubectlWith(e.Kubeconfig, stdin, args...)
}

// KubectlWith is Kubectl against the cluster of another kubeconfig file.
func (e *Env) KubectlWith(kubeconfig, stdin string, args ...string) (stdout, stderr string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, e.KubectlPath(), append([]string{"--kubeconfig", kubeconfig}, args...)...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	err = cmd.Run()
	return out.String(), errOut.String(), err
}

// CreateNamespace creates a namespace with a generated name and returns its name.
func (e *Env) CreateNamespace(ctx context.Context, prefix string) (string, error) {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: prefix + "-"}}
	if err := e.Client.Create(ctx, ns); err != nil {
		return "", err
	}
	return ns.Name, nil
}
