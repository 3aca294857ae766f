// Command demo is `make demo`: with `make run` up, it applies the sample quotas, creates a few
// pods and writes a stream of realistic checkpoint archives of them into the local directory.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/checkpoint-quota/checkpoint-quota/test/archive"
	"github.com/checkpoint-quota/checkpoint-quota/test/testenv"
)

// pod is a demo pod and the containers it checkpoints.
type pod struct {
	name       string
	labels     map[string]string
	containers []string
}

var pods = []pod{
	{"cache-0", map[string]string{"app": "redis"}, []string{"redis"}},
	{"web-0", map[string]string{"app": "web"}, []string{"nginx", "log-shipper"}},
	{"web-1", map[string]string{"app": "web"}, []string{"nginx", "log-shipper"}},
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "make demo:", err)
		os.Exit(1)
	}
}

func run() error {
	root := testenv.RepoRoot()
	local := filepath.Join(root, ".local")
	// controller-runtime registers --kubeconfig already; its value is read after Parse.
	if flag.Lookup("kubeconfig") == nil {
		flag.String("kubeconfig", "", "Kubeconfig of the cluster `make run` uses.")
	}
	dir := flag.String("checkpoint-dir", filepath.Join(local, "checkpoints"), "Directory the node agent watches.")
	namespace := flag.String("namespace", "demo", "Namespace of the demo pods and the sample CheckpointQuota.")
	every := flag.Duration("every", time.Second, "Time between two archives.")
	duration := flag.Duration("duration", 3*time.Minute, "How long to write archives; Ctrl-C stops earlier.")
	size := flag.Int64("size", 2<<20, "Size of each archive in bytes.")
	flag.Parse()
	// The client logs through controller-runtime, which complains with a stack dump when no
	// logger is set.
	ctrl.SetLogger(zap.New(zap.UseDevMode(true), zap.StacktraceLevel(zapcore.PanicLevel)))
	kubeconfig := new(string)
	*kubeconfig = flag.Lookup("kubeconfig").Value.String()
	if *kubeconfig == "" {
		*kubeconfig = envOr("KUBECONFIG", filepath.Join(local, "kubeconfig"))
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	cfg, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		return fmt.Errorf("reading %s (is `make run` up?): %w", *kubeconfig, err)
	}
	c, err := client.New(cfg, client.Options{Scheme: testenv.Scheme})
	if err != nil {
		return err
	}
	if err := ensureNamespace(ctx, c, *namespace); err != nil {
		return fmt.Errorf("creating namespace %s (is `make run` up?): %w", *namespace, err)
	}
	kubectl := "kubectl"
	if assets, err := testenv.Assets(); err == nil {
		kubectl = filepath.Join(assets, "kubectl")
	}
	apply := exec.CommandContext(ctx, kubectl, "--kubeconfig", *kubeconfig, "apply", "-n", *namespace, "-k", filepath.Join(root, "config", "samples"))
	apply.Stdout, apply.Stderr = os.Stdout, os.Stderr
	if err := apply.Run(); err != nil {
		return fmt.Errorf("applying config/samples: %w", err)
	}

	uids := map[string]string{}
	for _, p := range pods {
		uid, err := ensurePod(ctx, c, *namespace, p)
		if err != nil {
			return fmt.Errorf("creating pod %s: %w", p.name, err)
		}
		uids[p.name] = uid
	}

	fmt.Printf("\nWriting a %s archive every %s into %s for %s. Watch with:\n\n", human(*size), *every, *dir, *duration)
	fmt.Printf("  kubectl get checkpointquotas,clustercheckpointquotas -A\n  kubectl get checkpoints -n %s\n  kubectl describe checkpointquotas -n %s\n\n", *namespace, *namespace)
	end := time.After(*duration)
	tick := time.NewTicker(*every)
	defer tick.Stop()
	// The kubelet names archives by the second: a container checkpointed twice in one
	// second gets the next second, so that no name repeats.
	last := map[string]time.Time{}
	for i := 0; ; i++ {
		p := pods[i%len(pods)]
		container := p.containers[(i/len(pods))%len(p.containers)]
		at := time.Now().UTC().Truncate(time.Second)
		if prev, ok := last[p.name+"/"+container]; ok && !at.After(prev) {
			at = prev.Add(time.Second)
		}
		last[p.name+"/"+container] = at
		a := archive.New(*namespace, p.name, container).WithUID(uids[p.name]).At(at).WithSize(*size)
		path, err := a.Write(*dir)
		if err != nil {
			return err
		}
		fmt.Printf("wrote %s\n", filepath.Base(path))
		select {
		case <-ctx.Done():
			return nil
		case <-end:
			return nil
		case <-tick.C:
		}
	}
}

func ensureNamespace(ctx context.Context, c client.Client, name string) error {
	err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}

// ensurePod creates the pod, or finds it, and returns its UID. The local control plane has no
// scheduler or kubelet, so the pod stays Pending; it exists, which is what quotas look at.
func ensurePod(ctx context.Context, c client.Client, ns string, p pod) (string, error) {
	obj := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: p.name, Namespace: ns, Labels: p.labels}}
	for _, name := range p.containers {
		obj.Spec.Containers = append(obj.Spec.Containers, corev1.Container{Name: name, Image: "registry.example/" + name + ":1.0"})
	}
	err := c.Create(ctx, obj)
	if apierrors.IsAlreadyExists(err) {
		err = c.Get(ctx, client.ObjectKeyFromObject(obj), obj)
	}
	return string(obj.UID), err
}

func envOr(key, fallback string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return fallback
}

func human(n int64) string {
	return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
}
