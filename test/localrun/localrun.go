// Package localrun builds the manager and node-agent binaries and runs them as processes on this machine, for `make run` and the end-to-end suite.
package localrun

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Build compiles cmd/manager and cmd/node-agent of the repository at root into dir.
func Build(ctx context.Context, root, dir string) (manager, agent string, err error) {
	manager, agent = filepath.Join(dir, "manager"), filepath.Join(dir, "node-agent")
	for bin, pkg := range map[string]string{manager: "./cmd/manager", agent: "./cmd/node-agent"} {
		cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, pkg)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", "", fmt.Errorf("go build %s: %w\n%s", pkg, err, out)
		}
	}
	return manager, agent, nil
}

// FreePorts returns n distinct TCP ports on 127.0.0.1 that were free a moment ago. The
// listeners stay open until all are chosen, so no port is handed out twice.
func FreePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer func() { _ = l.Close() }()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// Process is a binary run with fixed arguments that can be stopped, killed and started again.
type Process struct {
	Name string
	Path string
	Args []string
	// Output receives the process's standard output and error.
	Output io.Writer

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// Start starts the process. It dies with its parent (SIGKILL on the parent's death).
func (p *Process) Start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		return fmt.Errorf("%s is already running", p.Name)
	}
	cmd := exec.Command(p.Path, p.Args...)
	cmd.Stdout, cmd.Stderr = p.Output, p.Output
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", p.Name, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	p.cmd, p.done = cmd, done
	return nil
}

// Pid is the process id while it runs, else 0.
func (p *Process) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// Stop sends SIGTERM and waits up to timeout before killing the process.
func (p *Process) Stop(timeout time.Duration) error {
	return p.signal(syscall.SIGTERM, timeout)
}

// Kill kills the process at once, as a crash would.
func (p *Process) Kill() error {
	return p.signal(syscall.SIGKILL, 10*time.Second)
}

// Restart kills the process and starts it again.
func (p *Process) Restart() error {
	if err := p.Kill(); err != nil {
		return err
	}
	return p.Start()
}

func (p *Process) signal(sig syscall.Signal, timeout time.Duration) error {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.cmd, p.done = nil, nil
	p.mu.Unlock()
	if cmd == nil {
		return nil
	}
	// The whole process group, in case the binary started children of its own.
	_ = syscall.Kill(-cmd.Process.Pid, sig)
	select {
	case <-done:
		return nil
	case <-time.After(timeout):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		return errors.New(p.Name + " did not stop in time and was killed")
	}
}

// ManagerArgs are the manager's flags for a local run.
func ManagerArgs(kubeconfig string, webhookPort int, certDir string, metricsPort, probePort int, webhooks bool) []string {
	return []string{
		"--kubeconfig", kubeconfig,
		fmt.Sprintf("--enable-webhooks=%t", webhooks),
		fmt.Sprintf("--webhook-port=%d", webhookPort),
		"--webhook-cert-dir", certDir,
		fmt.Sprintf("--metrics-bind-address=127.0.0.1:%d", metricsPort),
		fmt.Sprintf("--health-probe-bind-address=127.0.0.1:%d", probePort),
	}
}

// AgentArgs are the node agent's flags for a local run.
func AgentArgs(kubeconfig, node, dir, stateDir string, metricsPort, probePort int) []string {
	return []string{
		"--kubeconfig", kubeconfig,
		"--node-name", node,
		"--checkpoint-dir", dir,
		"--state-dir", stateDir,
		"--orphan-namespace", OrphanNamespace,
		fmt.Sprintf("--metrics-bind-address=127.0.0.1:%d", metricsPort),
		fmt.Sprintf("--health-probe-bind-address=127.0.0.1:%d", probePort),
	}
}

// MustMkdir creates dir and its parents.
func MustMkdir(dir string) string {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		panic(err)
	}
	return dir
}

// OrphanNamespace is the agent's namespace on this machine, which holds the Checkpoints of
// archives whose namespace is gone.
const OrphanNamespace = "checkpoint-quota-system"

// RegisterNode makes the cluster of c look like one where the agent runs in a pod: the
// agent's namespace exists, and when node is not empty, a Node object of that name, as the
// kubelet registers one (the agent needs it to tell a person's delete from a node's release).
func RegisterNode(ctx context.Context, c client.Client, node string) error {
	objs := []client.Object{&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: OrphanNamespace}}}
	if node != "" {
		objs = append(objs, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: node}})
	}
	for _, obj := range objs {
		if err := c.Create(ctx, obj); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("creating %s %s: %w", obj.GetObjectKind().GroupVersionKind().Kind, obj.GetName(), err)
		}
	}
	return nil
}
