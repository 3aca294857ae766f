package node

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// The Helm chart as a cluster operator installs it on a cluster without cert-manager
// (certificates.mode=rotation); only where the node keeps its files and the image differ from
// the defaults.
func helmInstall() {
	GinkgoHelper()
	repo, tag, _ := strings.Cut(node["NODE_IMAGE"], ":")
	helm("install", release, filepath.Join(root, "charts", "checkpoint-quota"),
		"--namespace", systemNS, "--create-namespace", "--wait", "--timeout", "5m",
		"--set", "image.repository="+repo, "--set", "image.tag="+tag, "--set", "image.pullPolicy=Never",
		"--set", "certificates.mode=rotation",
		"--set", "agent.checkpointDirs[0]="+node["CHECKPOINT_DIR"],
		"--set", "agent.stateDir="+node["AGENT_STATE_DIR"])
}

var _ = Describe("Installed with the Helm chart", Ordered, func() {
	const ns = "shop"
	var pods []*corev1.Pod

	BeforeAll(func(ctx context.Context) {
		helmInstall()
		DeferCleanup(func() {
			// The lane leaves the cluster as it found it, the archives aside.
			_, _, _ = run("", helmBin, "uninstall", release, "--namespace", systemNS, "--wait")
		})
		createNamespace(ctx, ns)
		for i := range 3 {
			pods = append(pods, workloadPod(ns, fmt.Sprintf("small-%d", i), 8))
		}
		startPods(ctx, pods...)
	}, NodeTimeout(8*time.Minute))

	It("refuses a malformed quota through the webhook Service, with the fix, not a TLS failure", func() {
		expectWebhookRefusal(ns)
	})

	It("publishes every archive of a checkpoint stream, each with its pod's identity, and prunes to the quota", func(ctx context.Context) {
		const keep = 2
		applyQuota(fmt.Sprintf(`apiVersion: checkpointquota.dev/v1alpha1
kind: CheckpointQuota
metadata: {name: keep-two, namespace: %s}
spec: {limits: {perContainer: {checkpoints: %d}}}
`, ns, keep))

		published := watchPublished(ctx)
		defer published.stop()
		agent := agentPID()
		agentBefore := processUsage(agent)
		// Rounds a little over a second apart (the kubelet names archives to the second), each a
		// burst of every pod at once: three checkpoints a second across the pods.
		var (
			mu    sync.Mutex
			taken []checkpointed
		)
		for round := range 6 {
			next := time.Now().Add(1100 * time.Millisecond)
			var wg sync.WaitGroup
			for _, p := range pods {
				wg.Go(func() {
					defer GinkgoRecover() // a failed checkpoint fails the spec with its error, not the process
					c, err := checkpoint(ns, p.Name, "work")
					Expect(err).NotTo(HaveOccurred(), "round %d", round)
					mu.Lock()
					taken = append(taken, c)
					mu.Unlock()
				})
			}
			wg.Wait()
			time.Sleep(time.Until(next))
		}
		var took []time.Duration
		for _, c := range taken {
			took = append(took, c.took)
			Expect(filepath.Dir(c.path)).To(Equal(node["CHECKPOINT_DIR"]))
		}
		AddReportEntry("kubelet checkpoint answer", fmt.Sprintf("p50 %v p99 %v over %d", percentile(took, .5), percentile(took, .99), len(took)))

		By("every archive's Checkpoint was published, and the newest two of each container are kept")
		Eventually(func(g Gomega) {
			byFile := checkpointsByFile(ctx, g, ns)
			for _, p := range pods {
				var kept []string
				for file, c := range byFile {
					a := c.Spec.Archive
					if a.PodName != p.Name {
						continue
					}
					g.Expect(a.PodUID).To(Equal(p.UID), "the archive's pod UID is the pod's")
					g.Expect(a.ContainerName).To(Equal("work"))
					g.Expect(a.NodeName).To(Equal(node["NODE_NAME"]))
					g.Expect(a.Runtime).To(Equal(nodeRuntime()))
					g.Expect(a.Image).To(ContainSubstring(node["WORKLOAD_IMAGE"]))
					kept = append(kept, file)
				}
				g.Expect(kept).To(HaveLen(keep), "pod %s keeps %d", p.Name, keep)
				// The newest ones: the last rounds' archives of this pod.
				var newest []string
				for _, c := range taken[len(taken)-keep*len(pods):] {
					if c.pod == p.Name {
						newest = append(newest, filepath.Base(c.path))
					}
				}
				g.Expect(kept).To(ConsistOf(newest))
			}
			onDisk := archivesOf(ns)
			g.Expect(onDisk).To(HaveLen(keep*len(pods)), "the pruned archives are gone from %s", node["CHECKPOINT_DIR"])
			for file := range onDisk {
				g.Expect(byFile).To(HaveKey(file))
			}
		}, 3*time.Minute).Should(Succeed())

		var lag []time.Duration
		for _, c := range taken {
			if at, ok := published.at(filepath.Base(c.path)); ok {
				lag = append(lag, at.Sub(c.answered))
			}
		}
		Expect(len(lag)).To(BeNumerically(">=", keep*len(pods)))
		AddReportEntry("checkpoint answer to Checkpoint object", fmt.Sprintf("p50 %v p99 %v over %d", percentile(lag, .5), percentile(lag, .99), len(lag)))
		agentAfter := processUsage(agent)
		AddReportEntry("node agent over the stream", fmt.Sprintf("%v for %d archives (%v each); before: %v; after: %v",
			agentAfter.cpu-agentBefore.cpu, len(taken), (agentAfter.cpu-agentBefore.cpu)/time.Duration(len(taken)), agentBefore, agentAfter))

		By("kubectl get cpq shows the usage")
		Eventually(func(g Gomega) {
			out := mustKubectl("", "get", "cpq", "-n", ns, "keep-two")
			// The columns by their headers: CHECKPOINTS is the fullest limit's used/hard, each
			// container at its 2 of 2.
			lines := strings.Split(strings.TrimSpace(out), "\n")
			g.Expect(lines).To(HaveLen(2), "lines of %q", out)
			column := tableColumns(lines[0], lines[1])
			g.Expect(column).To(HaveKeyWithValue("CHECKPOINTS", fmt.Sprintf("%d/%d", keep, keep)), "usage in %q", out)
			g.Expect(column).To(HaveKeyWithValue("STORAGE", MatchRegexp(`^[0-9.]+Mi$`)), "storage in %q", out)
		}).Should(Succeed())
	}, NodeTimeout(6*time.Minute))

	It("publishes the archive of a container holding 1 GiB", func(ctx context.Context) {
		big := workloadPod(ns, "big", 1024)
		startPods(ctx, big)
		// The workload writes its memory before it counts: wait for the first tick.
		Eventually(func() string {
			out, _, _ := kubectl("", "logs", "-n", ns, "big")
			return out
		}, 2*time.Minute).Should(ContainSubstring("tick"))
		// What one archive costs the agent, for a 10 MiB container and a 1 GiB one: while the
		// runtime writes it (the agent sees the file grow), and from the kubelet's answer (the
		// file complete) until its Checkpoint is published, which is the agent reading it.
		cost := func(pod string, minSize int64) (read time.Duration, after usage) {
			agent := agentPID()
			before := processUsage(agent)
			c, err := checkpoint(ns, pod, "work")
			Expect(err).NotTo(HaveOccurred())
			written := processUsage(agent)
			AddReportEntry("kubelet checkpoint answer, "+pod, c.took.String())
			Eventually(func(g Gomega) {
				byFile := checkpointsByFile(ctx, g, ns)
				g.Expect(byFile).To(HaveKey(filepath.Base(c.path)))
				a := byFile[filepath.Base(c.path)].Spec.Archive
				g.Expect(a.PodName).To(Equal(pod))
				g.Expect(a.SizeBytes).To(BeNumerically(">", minSize))
			}, 3*time.Minute).Should(Succeed())
			after = processUsage(agent)
			AddReportEntry("node agent, "+pod+"'s archive", fmt.Sprintf("cpu while written %v, from the answer to published %v; after: %v",
				written.cpu-before.cpu, after.cpu-written.cpu, after))
			return after.cpu - written.cpu, after
		}
		smallRead, smallAfter := cost("small-0", 8<<20)
		bigRead, bigAfter := cost("big", 1<<30)
		// The agent reads an archive's metadata and seeks past its memory pages: a 1 GiB
		// archive costs it about what a 10 MiB one does (a margin for the shared machine).
		Expect(bigRead).To(BeNumerically("<", smallRead+200*time.Millisecond), "CPU reading 1 GiB %v, 10 MiB %v", bigRead, smallRead)
		Expect(bigAfter.hwm).To(BeNumerically("<", smallAfter.hwm+32<<20), "peak RSS after 1 GiB %v, after 10 MiB %v", bigAfter, smallAfter)
	}, NodeTimeout(8*time.Minute))

	It("keeps exactly the newest archives when the agent's pod is killed and the kubelet restarted during a stream", func(ctx context.Context) {
		agentKilledKubeletRestarted(ctx, ns, pods, 2)
	}, NodeTimeout(8*time.Minute))

	It("prunes again within the lease time when the leader's pod is deleted", func(ctx context.Context) {
		leaderDeleted(ctx, ns, pods[1])
	}, NodeTimeout(4*time.Minute))

	It("keeps archives a runtime can restore", func(ctx context.Context) {
		var kept string
		for file := range archivesOf(ns) {
			if strings.HasPrefix(file, "checkpoint-"+pods[0].Name+"_") {
				kept = file
			}
		}
		Expect(kept).NotTo(BeEmpty())
		restorable(ctx, ns, kept)
	}, NodeTimeout(5*time.Minute))

	It("keeps a deleted namespace's archives, as orphans", func(ctx context.Context) {
		before := archivesOf(ns)
		Expect(before).NotTo(BeEmpty())
		Expect(k8s.Delete(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})).To(Succeed())
		Eventually(func(g Gomega) {
			var gone corev1.Namespace
			g.Expect(client.IgnoreNotFound(k8s.Get(ctx, client.ObjectKey{Name: ns}, &gone))).To(Succeed())
			g.Expect(gone.Name).To(BeEmpty(), "namespace %s is gone", ns)
		}, 3*time.Minute).Should(Succeed())
		Eventually(func(g Gomega) {
			byFile := checkpointsByFile(ctx, g, systemNS)
			for file := range before {
				g.Expect(byFile).To(HaveKey(file))
				g.Expect(byFile[file].Spec.Archive.OrphanOf).To(Equal(ns))
				g.Expect(byFile[file].Labels).To(HaveKeyWithValue("checkpointquota.dev/orphan-of", ns))
			}
		}, 2*time.Minute).Should(Succeed())
		Expect(archivesOf(ns)).To(Equal(before), "no archive changed or went away")
	}, NodeTimeout(6*time.Minute))

	It("keeps every archive through helm uninstall and the CRDs' removal, and a reinstall publishes them again", func(ctx context.Context) {
		before := archives()
		helm("uninstall", release, "--namespace", systemNS, "--wait", "--timeout", "3m")
		// The agents' pods are gone before the files are compared.
		Eventually(func() string {
			out, _, _ := kubectl("", "get", "pods", "-n", systemNS, "-o", "name")
			return out
		}, 2*time.Minute).Should(BeEmpty())
		Expect(archives()).To(Equal(before), "helm uninstall left every archive byte-identical")
		// Helm keeps the CRDs, and so the Checkpoints; removing them by hand, as the chart's
		// README says to for a clean slate, removes every Checkpoint and no archive.
		mustKubectl("", "delete", "crd", "checkpoints.checkpointquota.dev", "--wait", "--timeout", "2m")
		Expect(archives()).To(Equal(before), "removing the CRDs left every archive byte-identical")

		helmInstall()
		Eventually(func(g Gomega) {
			byFile := checkpointsByFile(ctx, g, "")
			for file := range before {
				g.Expect(byFile).To(HaveKey(file))
			}
		}, 3*time.Minute).Should(Succeed())
		Expect(archives()).To(Equal(before))
	}, NodeTimeout(10*time.Minute))
})

// tableColumns reads a row of kubectl's table by its header: each value starts where its
// column's header does and runs to the next one, so an empty column (STORED for a quota with
// no remoteLimits) is read as empty rather than shifting the ones after it.
func tableColumns(header, row string) map[string]string {
	columns := map[string]string{}
	names := strings.Fields(header)
	starts := make([]int, len(names))
	at := 0
	for i, name := range names {
		starts[i] = at + strings.Index(header[at:], name)
		at = starts[i] + len(name)
	}
	for i, name := range names {
		from, to := min(starts[i], len(row)), len(row)
		if i+1 < len(names) {
			to = min(starts[i+1], len(row))
		}
		columns[name] = strings.TrimSpace(row[from:to])
	}
	return columns
}
