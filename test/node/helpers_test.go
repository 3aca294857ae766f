package node

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
)

func run(stdin, bin string, args ...string) (stdout, stderr string, err error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+node["KUBECONFIG"])
	cmd.Dir = root
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	return out.String(), errb.String(), err
}

func kubectl(stdin string, args ...string) (string, string, error) {
	return run(stdin, node["KUBECTL"], args...)
}

// mustKubectl runs kubectl and fails the spec, with kubectl's own words, when it fails.
func mustKubectl(stdin string, args ...string) string {
	GinkgoHelper()
	out, stderr, err := kubectl(stdin, args...)
	Expect(err).NotTo(HaveOccurred(), "kubectl %s: %s", strings.Join(args, " "), stderr)
	return out
}

// applyQuota applies a quota through the manager's webhooks. Their reachability is a spec of
// its own; here a webhook call that timed out on the shared machine is retried, as a user would.
func applyQuota(manifest string) {
	GinkgoHelper()
	Eventually(func() error {
		_, stderr, err := kubectl(manifest, "apply", "-f", "-")
		if err != nil {
			return fmt.Errorf("%w: %s", err, stderr)
		}
		return nil
	}, time.Minute, 2*time.Second).Should(Succeed())
}

func helm(args ...string) string {
	GinkgoHelper()
	out, stderr, err := run("", helmBin, args...)
	Expect(err).NotTo(HaveOccurred(), "helm %s: %s%s", strings.Join(args, " "), out, stderr)
	return out
}

// kubelet is a client of the kubelet's API with the apiserver's kubelet-client certificate,
// which the kubelet's webhook authorization allows (it is in system:masters).
var kubelet = sync.OnceValue(func() *http.Client {
	cert, err := tls.LoadX509KeyPair(node["KUBELET_CLIENT_CERT"], node["KUBELET_CLIENT_KEY"])
	Expect(err).NotTo(HaveOccurred())
	// The kubelet serves a self-signed certificate for its node name.
	pool := x509.NewCertPool()
	serving, err := os.ReadFile(filepath.Join(node["NODE_DIR"], "kubelet", "pki", "kubelet.crt"))
	Expect(err).NotTo(HaveOccurred())
	Expect(pool.AppendCertsFromPEM(serving)).To(BeTrue())
	return &http.Client{Timeout: 5 * time.Minute, Transport: &http.Transport{TLSClientConfig: &tls.Config{
		Certificates: []tls.Certificate{cert}, RootCAs: pool, ServerName: node["NODE_NAME"], MinVersion: tls.VersionTLS12,
	}}}
})

// checkpointed is one answer of the kubelet's checkpoint API.
type checkpointed struct {
	ns, pod, container string
	// path is the archive the kubelet wrote; answered is when its answer arrived.
	path     string
	answered time.Time
	took     time.Duration
}

// checkpoint asks the kubelet to checkpoint one container, as a user would:
// POST https://<node>:10250/checkpoint/<ns>/<pod>/<container>.
func checkpoint(ns, pod, container string) (checkpointed, error) {
	url := fmt.Sprintf("https://%s:%s/checkpoint/%s/%s/%s", node["NODE_IP"], node["KUBELET_PORT"], ns, pod, container)
	start := time.Now()
	resp, err := kubelet().Post(url, "", nil)
	if err != nil {
		return checkpointed{}, err
	}
	defer func() { _ = resp.Body.Close() }()
	body, _ := io.ReadAll(resp.Body)
	c := checkpointed{ns: ns, pod: pod, container: container, answered: time.Now()}
	c.took = c.answered.Sub(start)
	if resp.StatusCode != http.StatusOK {
		return c, fmt.Errorf("checkpoint %s/%s/%s: %s: %s", ns, pod, container, resp.Status, body)
	}
	var answer struct {
		Items []string `json:"items"`
	}
	if err := json.Unmarshal(body, &answer); err != nil || len(answer.Items) != 1 {
		return c, fmt.Errorf("checkpoint %s/%s/%s: unexpected answer %q", ns, pod, container, body)
	}
	c.path = answer.Items[0]
	compareIdentity(c, start)
	return c, nil
}

// workloadPod is a pod of hack/node/tools/workload holding mib MiB resident.
func workloadPod(ns, name string, mib int) *corev1.Pod {
	limit := resource.MustParse(fmt.Sprintf("%dMi", mib+64))
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{"app": "workload"}},
		Spec: corev1.PodSpec{
			TerminationGracePeriodSeconds: new(int64(2)),
			Containers: []corev1.Container{{
				Name: "work", Image: node["WORKLOAD_IMAGE"], ImagePullPolicy: corev1.PullNever,
				Args:      []string{fmt.Sprintf("-mib=%d", mib)},
				Resources: corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceMemory: limit}},
			}},
		},
	}
}

func createNamespace(ctx context.Context, name string) {
	GinkgoHelper()
	Expect(k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}})).To(Succeed())
}

// startPods creates the pods and waits until every one runs.
func startPods(ctx context.Context, pods ...*corev1.Pod) {
	GinkgoHelper()
	for _, p := range pods {
		Expect(k8s.Create(ctx, p)).To(Succeed())
	}
	for _, p := range pods {
		Eventually(func(g Gomega) {
			var got corev1.Pod
			g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(p), &got)).To(Succeed())
			g.Expect(got.Status.Phase).To(Equal(corev1.PodRunning), "pod %s: %v", p.Name, got.Status.ContainerStatuses)
			p.UID = got.UID
		}, 3*time.Minute).Should(Succeed())
	}
}

// archives are the archive files in the kubelet's checkpoint directory, by name, with their SHA-256.
func archives() map[string]string {
	GinkgoHelper()
	files, err := filepath.Glob(filepath.Join(node["CHECKPOINT_DIR"], "*.tar"))
	Expect(err).NotTo(HaveOccurred())
	sums := map[string]string{}
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			continue // pruned meanwhile
		}
		h := sha256.New()
		_, err = io.Copy(h, fh)
		_ = fh.Close()
		if err == nil {
			sums[filepath.Base(f)] = hex.EncodeToString(h.Sum(nil))
		}
	}
	return sums
}

// tarEntries reads an archive's entries: the content of the small ones (under 1 MiB), the
// names of all.
func tarEntries(path string) map[string][]byte {
	GinkgoHelper()
	f, err := os.Open(path)
	Expect(err).NotTo(HaveOccurred())
	defer func() { _ = f.Close() }()
	entries := map[string][]byte{}
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return entries
		}
		Expect(err).NotTo(HaveOccurred())
		var data []byte
		if hdr.Size < 1<<20 {
			data, err = io.ReadAll(tr)
			Expect(err).NotTo(HaveOccurred())
		}
		entries[strings.TrimPrefix(hdr.Name, "./")] = data
	}
}

// archivesOf are the archives of one namespace's pods: the kubelet names each
// checkpoint-<pod>_<namespace>-<container>-<time>.tar.
func archivesOf(ns string) map[string]string {
	GinkgoHelper()
	of := map[string]string{}
	for file, sum := range archives() {
		if strings.Contains(file, "_"+ns+"-") {
			of[file] = sum
		}
	}
	return of
}

// checkpointsByFile lists the Checkpoint objects of the namespace (all namespaces if empty), by archive file name.
func checkpointsByFile(ctx context.Context, g Gomega, ns string) map[string]cqv1.Checkpoint {
	var list cqv1.CheckpointList
	g.Expect(k8s.List(ctx, &list, client.InNamespace(ns))).To(Succeed())
	byFile := map[string]cqv1.Checkpoint{}
	for _, c := range list.Items {
		if c.Spec.Archive != nil {
			byFile[c.Spec.Archive.FileName] = c
		}
	}
	return byFile
}

// publishWatch records when each archive's Checkpoint was first seen, by file name, from a
// watch opened before the checkpoints are taken.
type publishWatch struct {
	mu   sync.Mutex
	seen map[string]time.Time
	w    watch.Interface
}

func watchPublished(ctx context.Context) *publishWatch {
	GinkgoHelper()
	w, err := k8s.Watch(ctx, &cqv1.CheckpointList{})
	Expect(err).NotTo(HaveOccurred())
	p := &publishWatch{seen: map[string]time.Time{}, w: w}
	go func() {
		for ev := range w.ResultChan() {
			c, ok := ev.Object.(*cqv1.Checkpoint)
			if !ok || c.Spec.Archive == nil {
				continue
			}
			p.mu.Lock()
			if _, dup := p.seen[c.Spec.Archive.FileName]; !dup {
				p.seen[c.Spec.Archive.FileName] = time.Now()
			}
			p.mu.Unlock()
		}
	}()
	return p
}

func (p *publishWatch) at(file string) (time.Time, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	t, ok := p.seen[file]
	return t, ok
}

func (p *publishWatch) stop() { p.w.Stop() }

// percentile of sorted durations (nearest rank).
func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(p*float64(len(s))+0.999999) - 1
	return s[max(0, min(i, len(s)-1))]
}
