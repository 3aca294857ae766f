package node

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// ticks are the counts the workload printed ("tick N"), in order.
var tickLine = regexp.MustCompile(`(?m)\btick (\d+)$`)

func ticks(log string) []int {
	var out []int
	for _, m := range tickLine.FindAllStringSubmatch(log, -1) {
		n, _ := strconv.Atoi(m[1])
		out = append(out, n)
	}
	return out
}

// restoreOnCRIO restores a kept archive of ns's pod into a new pod, as CRI-O does through a
// kubelet: the archive made into an OCI image that names the checkpointed container
// (hack/node/tools/checkpointimage), written into CRI-O's storage with CRI-O's own copier,
// and a pod whose container has that image. The restored process counts on from where the
// archive's log stops, without starting from 0 again as a process started afresh would.
func restoreOnCRIO(ctx context.Context, ns, file string) {
	GinkgoHelper()
	archivePath := filepath.Join(node["CHECKPOINT_DIR"], file)
	logged := ticks(string(tarEntries(archivePath)["io.kubernetes.cri-o.LogPath"]))
	Expect(logged).NotTo(BeEmpty(), "the archive holds the container's log")
	last := logged[len(logged)-1]

	layoutDir := filepath.Join(node["NODE_DIR"], "restore-"+strconv.FormatInt(time.Now().UnixNano(), 36))
	out, err := exec.Command(filepath.Join(node["NODE_TOOLS"], "checkpointimage"), "-o", layoutDir, "-container", "work", archivePath).CombinedOutput()
	Expect(err).NotTo(HaveOccurred(), "checkpointimage: %s", out)
	DeferCleanup(func() { _ = os.RemoveAll(layoutDir) })
	image := "cq.local/restore:" + filepath.Base(layoutDir)
	crio := filepath.Join(node["NODE_DIR"], "crio")
	out, err = exec.Command(filepath.Join(node["NODE_BIN"], "copyimg"), "--root", filepath.Join(crio, "storage"),
		"--runroot", filepath.Join(crio, "run", "storage"), "--storage-driver", "overlay",
		"--signature-policy", filepath.Join(crio, "policy.json"), "--image-name", image,
		"--import-from", "oci:"+layoutDir).CombinedOutput()
	Expect(err).NotTo(HaveOccurred(), "copyimg: %s", out)

	restored := workloadPod(ns, "restored", 8)
	restored.Labels = map[string]string{"app": "restored"}
	restored.Spec.Containers[0].Image = image
	restored.Spec.Containers[0].Args = nil
	started := time.Now()
	startPods(ctx, restored)
	AddReportEntry("restored pod Running", fmt.Sprintf("%v after it was created, from %s (last tick in its log %d)",
		time.Since(started).Round(10*time.Millisecond), file, last))
	Eventually(func(g Gomega) {
		log := mustKubectl("", "logs", "-n", ns, "restored")
		after := ticks(log)
		g.Expect(after).NotTo(BeEmpty(), "the restored container's log: %q", log)
		// CRI-O restores the container's log too: the ticks before the checkpoint, then the
		// restored process's. A process started afresh would count from 0 again.
		g.Expect(after[len(after)-1]).To(BeNumerically(">", last), "the restored process counts on from tick %d: %q", last, log)
		for i := 1; i < len(after); i++ {
			g.Expect(after[i]).To(BeNumerically(">", after[i-1]), "the count never starts again: %q", log)
		}
	}, time.Minute).Should(Succeed())
	var p corev1.Pod
	Expect(k8s.Get(ctx, client.ObjectKeyFromObject(restored), &p)).To(Succeed())
	Expect(p.Status.ContainerStatuses).To(HaveLen(1))
	Expect(p.Status.ContainerStatuses[0].RestartCount).To(BeZero(), "the restored container did not crash and restart")
	Expect(strings.TrimSpace(p.Status.ContainerStatuses[0].Image)).NotTo(BeEmpty())
}
