package node

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// The kubelet asks for a negative oom_score_adj for a Guaranteed pod's containers (-997) and
// for a pod's infra container (-998). This VM has no CAP_SYS_RESOURCE, so the runtime must
// clamp it: containerd with restrict_oom_score_adj, CRI-O through oomclamp
// (docs/real-node-crio.md). Without that, such a pod never starts.
var _ = Describe("A Guaranteed pod", func() {
	It("runs with its oom_score_adj clamped to 0 and is checkpointed", func(ctx context.Context) {
		const ns = "qos"
		createNamespace(ctx, ns)
		pod := workloadPod(ns, "guaranteed", 8)
		limits := pod.Spec.Containers[0].Resources.Limits
		limits[corev1.ResourceCPU] = resource.MustParse("100m")
		pod.Spec.Containers[0].Resources.Requests = limits.DeepCopy()
		var c checkpointed
		DeferCleanup(func(ctx context.Context) {
			// No operator runs between the lanes: the spec removes what it made.
			Expect(k8s.Delete(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})).To(Succeed())
			if c.path != "" {
				Expect(os.Remove(c.path)).To(Succeed())
			}
		})
		startPods(ctx, pod)
		Expect(k8s.Get(ctx, client.ObjectKeyFromObject(pod), pod)).To(Succeed())
		Expect(pod.Status.QOSClass).To(Equal(corev1.PodQOSGuaranteed))

		adj := oomScoreAdj(string(pod.UID))
		AddReportEntry("oom_score_adj of a Guaranteed pod's process", fmt.Sprintf("%d (%s)", adj, node["RUNTIME"]))
		Expect(adj).To(BeZero(), "the kubelet's -997, clamped by the runtime")

		var err error
		c, err = checkpoint(ns, pod.Name, "work")
		Expect(err).NotTo(HaveOccurred())
	}, NodeTimeout(5*time.Minute))
})

// oomScoreAdj is the oom_score_adj of the workload process of the pod with this UID: the
// process whose cgroup path names the pod (kubepods/.../pod<uid>/...).
func oomScoreAdj(uid string) int {
	GinkgoHelper()
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		cmd, err := os.ReadFile(filepath.Join(d, "cmdline"))
		if err != nil || !strings.HasPrefix(string(cmd), "/workload\x00") {
			continue
		}
		cgroup, err := os.ReadFile(filepath.Join(d, "cgroup"))
		if err != nil || !strings.Contains(string(cgroup), "pod"+uid) {
			continue
		}
		data, err := os.ReadFile(filepath.Join(d, "oom_score_adj"))
		Expect(err).NotTo(HaveOccurred())
		adj, err := strconv.Atoi(strings.TrimSpace(string(data)))
		Expect(err).NotTo(HaveOccurred())
		return adj
	}
	Fail("no /workload process in the cgroup of pod " + uid)
	return 0
}
