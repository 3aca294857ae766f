package node

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// The operator's pods and the kubelet going away in the middle of things, on the real node.

// checkpointRetrying calls the kubelet until it answers (it may be restarting), at most one
// call a second: the kubelet names archives to the second.
func checkpointRetrying(ns, pod string) checkpointed {
	GinkgoHelper()
	var c checkpointed
	Eventually(func() error {
		var err error
		c, err = checkpoint(ns, pod, "work")
		return err
	}, 2*time.Minute, 1100*time.Millisecond).Should(Succeed())
	return c
}

// keptExactly checks that each pod keeps exactly its newest `keep` answered archives: on the
// disk, and as Checkpoint objects, nothing more.
func keptExactly(ctx context.Context, ns string, pods []*corev1.Pod, taken []checkpointed, keep int) {
	GinkgoHelper()
	Eventually(func(g Gomega) {
		byFile := checkpointsByFile(ctx, g, ns)
		onDisk := archivesOf(ns)
		for _, p := range pods {
			var newest []string
			for _, c := range taken {
				if c.pod == p.Name {
					newest = append(newest, filepath.Base(c.path))
				}
			}
			newest = newest[max(0, len(newest)-keep):]
			var published, files []string
			for file, c := range byFile {
				if c.Spec.Archive.PodName == p.Name {
					published = append(published, file)
				}
			}
			for file := range onDisk {
				if strings.HasPrefix(file, "checkpoint-"+p.Name+"_") {
					files = append(files, file)
				}
			}
			g.Expect(files).To(ConsistOf(newest), "archives of %s on the node", p.Name)
			g.Expect(published).To(ConsistOf(newest), "Checkpoints of %s", p.Name)
		}
	}, 3*time.Minute).Should(Succeed())
}

// agentKilledKubeletRestarted takes checkpoints of every pod, a round a little over a second,
// kills the agent's pod after the second round and restarts the kubelet after the fourth.
func agentKilledKubeletRestarted(ctx context.Context, ns string, pods []*corev1.Pod, keep int) {
	GinkgoHelper()
	var taken []checkpointed
	for round := range 7 {
		switch round {
		case 2:
			mustKubectl("", "delete", "pod", "-n", systemNS, "-l", "app.kubernetes.io/component=node-agent",
				"--grace-period=0", "--force", "--wait=false")
		case 4:
			out, err := exec.Command(filepath.Join(root, "hack", "node", "node.sh"), "restart", "kubelet").CombinedOutput()
			Expect(err).NotTo(HaveOccurred(), "restarting the kubelet: %s", out)
		}
		next := time.Now().Add(1100 * time.Millisecond)
		for _, p := range pods {
			taken = append(taken, checkpointRetrying(ns, p.Name))
		}
		time.Sleep(time.Until(next))
	}
	keptExactly(ctx, ns, pods, taken, keep)
}

// leaderDeleted deletes the pod of the manager that holds the lease, takes one checkpoint
// over the quota at once, and measures how long until it is pruned: the time without a leader.
func leaderDeleted(ctx context.Context, ns string, pod *corev1.Pod) {
	GinkgoHelper()
	var lease coordinationv1.Lease
	Expect(k8s.Get(ctx, client.ObjectKey{Namespace: systemNS, Name: "manager.checkpointquota.dev"}, &lease)).To(Succeed())
	Expect(lease.Spec.HolderIdentity).NotTo(BeNil())
	holder := *lease.Spec.HolderIdentity
	// controller-runtime's identity is the pod's host name (its name), "_", a UUID.
	leaderPod, _, _ := strings.Cut(holder, "_")
	leaseTime := time.Duration(*lease.Spec.LeaseDurationSeconds) * time.Second

	before := archivesOf(ns)
	time.Sleep(1100 * time.Millisecond) // a new archive name for the pod
	// The leader's last words (its shutdown and the Lease's release), for a slow hand-over.
	var lastWords bytes.Buffer
	follow := exec.Command(node["KUBECTL"], "logs", "--follow", "--tail=5", "-n", systemNS, leaderPod)
	follow.Env = append(os.Environ(), "KUBECONFIG="+node["KUBECONFIG"])
	follow.Stdout, follow.Stderr = &lastWords, &lastWords
	Expect(follow.Start()).To(Succeed())
	stopFollowing := sync.OnceFunc(func() { _ = follow.Process.Kill(); _ = follow.Wait() })
	defer stopFollowing()
	deleted := time.Now()
	mustKubectl("", "delete", "pod", "-n", systemNS, leaderPod, "--wait=false")
	c := checkpointRetrying(ns, pod.Name)
	var oldest string
	for file := range before {
		if strings.HasPrefix(file, "checkpoint-"+pod.Name+"_") && (oldest == "" || file < oldest) {
			oldest = file
		}
	}
	Expect(oldest).NotTo(BeEmpty())
	Eventually(func(g Gomega) {
		g.Expect(archivesOf(ns)).NotTo(HaveKey(oldest), "the oldest archive of %s is pruned", pod.Name)
		g.Expect(archivesOf(ns)).To(HaveKey(filepath.Base(c.path)))
	}, 2*time.Minute, 100*time.Millisecond).Should(Succeed())
	pruned := time.Since(deleted)
	Expect(k8s.Get(ctx, client.ObjectKeyFromObject(&lease), &lease)).To(Succeed())
	AddReportEntry("leader's pod deleted to the next prune", fmt.Sprintf("%v (lease %v; new holder %s)", pruned, leaseTime, *lease.Spec.HolderIdentity))
	Expect(*lease.Spec.HolderIdentity).NotTo(Equal(holder))
	// Within the lease time, and the few seconds a new leader's first pass takes.
	stopFollowing()
	Expect(pruned).To(BeNumerically("<", leaseTime+10*time.Second), "the deleted leader's log:\n%s", lastWords.String())
}

// restorable checks that a kept archive is a complete CRIU dump a runtime can restore from:
// CRIU's images and its own word that the dump finished. On CRI-O it then restores it into a
// new pod (restoreOnCRIO). On containerd it cannot: the kubelet has no restore API, and
// containerd 2.4.2's CRI has no restore path (its internal/cri/server implements
// CheckpointContainer only).
func restorable(ctx context.Context, ns, file string) {
	GinkgoHelper()
	entries := tarEntries(filepath.Join(node["CHECKPOINT_DIR"], file))
	Expect(entries).To(HaveKey("checkpoint/inventory.img"))
	Expect(entries).To(HaveKey("config.dump"))
	Expect(entries).To(HaveKey("spec.dump"))
	Expect(string(entries["dump.log"])).To(ContainSubstring("Dumping finished successfully"))
	var pages int
	for name := range entries {
		if strings.HasPrefix(name, "checkpoint/pages-") {
			pages++
		}
	}
	Expect(pages).To(BeNumerically(">", 0), "CRIU's memory pages")
	if node["RUNTIME"] == "crio" {
		restoreOnCRIO(ctx, ns, file)
		return
	}
	Skip("restoring " + file + " needs a runtime with a restore path: the kubelet has none and containerd " +
		"2.4.2's CRI implements checkpointing only; the archive holds a complete CRIU dump (checked above)")
}
