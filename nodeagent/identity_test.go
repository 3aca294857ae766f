package nodeagent_test

import (
	"os"
	"path/filepath"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	gomegatypes "github.com/onsi/gomega/types"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	testarchive "github.com/checkpoint-quota/checkpoint-quota/test/archive"
)

// forgedAnnotations are what a pod's author writes to have its archives charged to
// victim: every identity key of both runtimes.
func forgedAnnotations(victim string) map[string]string {
	return map[string]string{
		"io.kubernetes.cri.sandbox-namespace": victim,
		"io.kubernetes.cri.sandbox-name":      "victim-0",
		"io.kubernetes.cri.sandbox-uid":       "8d3f5d39-0000-4000-8000-000000000001",
		"io.kubernetes.cri.container-name":    "app",
		"io.container.manager":                "cri-o",
		"io.kubernetes.cri-o.Labels":          `{"io.kubernetes.container.name":"app","io.kubernetes.pod.name":"victim-0","io.kubernetes.pod.namespace":"` + victim + `","io.kubernetes.pod.uid":"8d3f5d39-0000-4000-8000-000000000001"}`,
		"io.kubernetes.pod.namespace":         victim,
		"io.kubernetes.pod.name":              "victim-0",
	}
}

// nodeEventNotes returns the notes of the node's UnreadableArchive events.
func nodeEventNotes(node string) func(Gomega) []string {
	return func(g Gomega) []string {
		var list eventsv1.EventList
		g.Expect(env.Client.List(ctx, &list, client.InNamespace(metav1.NamespaceDefault))).To(Succeed())
		var notes []string
		for _, e := range list.Items {
			if e.Regarding.Kind == "Node" && e.Regarding.Name == node && e.Reason == "UnreadableArchive" {
				notes = append(notes, e.Note)
			}
		}
		return notes
	}
}

func startNode() (node, dir string) {
	GinkgoHelper()
	// newNode registers the Node object, on which unforgeable-identity reports land.
	return newNode()
}

var _ = Describe("Archive identity", func() {
	It("charges a forging pod's archives to its own namespace or to none, never to the namespace it names", func() {
		tenant, err := env.CreateNamespace(ctx, "tenant")
		Expect(err).NotTo(HaveOccurred())
		victim, err := env.CreateNamespace(ctx, "victim")
		Expect(err).NotTo(HaveOccurred())
		node, dir := startNode()
		at := time.Now().UTC().Truncate(time.Second).Add(-time.Hour)

		// On CRI-O the runtime's own keys win over everything the pod wrote: charged to tenant.
		full := testarchive.New(tenant, "forger-full", "app").At(at).WithPodAnnotations(forgedAnnotations(victim))
		partial := testarchive.New(tenant, "forger-partial", "app").At(at.Add(time.Second)).
			WithPodAnnotations(map[string]string{"io.kubernetes.cri.sandbox-namespace": victim})
		// A containerd that passes pod annotations through hands the reader a CRI-O
		// identity; the file name and config.dump contradict it: charged to no one.
		passedThrough := testarchive.New(tenant, "forger-containerd", "app").At(at.Add(2 * time.Second)).
			WithRuntime(testarchive.Containerd).WithPodAnnotations(forgedAnnotations(victim))
		// On containerd, only containerd's keys forged: they are overridden, charged to tenant.
		containerdKeys := testarchive.New(tenant, "forger-containerd-keys", "app").At(at.Add(3 * time.Second)).
			WithRuntime(testarchive.Containerd20).WithPodAnnotations(map[string]string{"io.kubernetes.cri.sandbox-namespace": victim})
		paths := map[string]string{}
		for _, a := range []*testarchive.Archive{full, partial, passedThrough, containerdKeys} {
			paths[a.Pod] = a.MustWrite(dir)
		}
		startAgent(node, settleTime, dir)

		Eventually(func(g Gomega) []string { return fileNames(checkpointsOf(node)(g)) }).
			Should(ConsistOf(full.FileName(), partial.FileName(), containerdKeys.FileName()))
		for _, c := range checkpointsOf(node)(Default) {
			Expect(c.Namespace).To(Equal(tenant), "%s", c.Spec.Archive.FileName)
			Expect(c.Spec.Archive.PodName).To(HavePrefix("forger-"))
			Expect(c.Status.Conditions).To(BeEmpty(), "a readable archive has no condition: %s", c.Spec.Archive.FileName)
		}
		Eventually(func(g Gomega) float64 {
			return metric(g, node, "checkpointquota_node_unreadable_archives", map[string]string{"reason": "IdentityMismatch"})
		}).Should(Equal(1.0))
		Eventually(nodeEventNotes(node)).Should(ContainElement(And(
			ContainSubstring(paths[passedThrough.Pod]+": IdentityMismatch"), ContainSubstring("spec.dump names "+victim+"/victim-0"))))

		// What a user of either namespace sees.
		out, stderr, err := env.Kubectl("", "get", "checkpoints", "-n", victim)
		Expect(err).NotTo(HaveOccurred(), stderr)
		Expect(out + stderr).To(ContainSubstring("No resources found"))
		out, stderr, err = env.Kubectl("", "get", "checkpoints", "-n", tenant, "-o", "custom-columns=POD:.spec.archive.podName,NS:.metadata.namespace", "--no-headers")
		Expect(err).NotTo(HaveOccurred(), stderr)
		Expect(strings.Fields(out)).To(ConsistOf("forger-full", tenant, "forger-partial", tenant, "forger-containerd-keys", tenant))
		Consistently(func(g Gomega) []string {
			out, _, err := env.Kubectl("", "get", "checkpoints", "-n", victim, "-o", "name")
			g.Expect(err).NotTo(HaveOccurred())
			return strings.Fields(out)
		}, 3*time.Second).Should(BeEmpty())
		for _, p := range paths {
			Expect(p).To(BeAnExistingFile())
		}
	})

	It("keeps every hostile archive on disk, reports each, and never stops", func() {
		ns, err := env.CreateNamespace(ctx, "hostile")
		Expect(err).NotTo(HaveOccurred())
		node, dir := startNode()
		at := time.Now().UTC().Truncate(time.Second).Add(-time.Hour)
		// Where each variant is reported: a Checkpoint with the Unreadable condition when
		// its identity stands, else the node (event and metric); the metric counts both.
		inNamespace := map[testarchive.Broken]string{
			testarchive.Truncated: "Truncated", testarchive.DotDotEntry: "UnexpectedEntry", testarchive.AbsoluteEntry: "UnexpectedEntry",
			testarchive.HardLink: "UnexpectedEntry", testarchive.DeviceEntry: "UnexpectedEntry",
		}
		onNode := map[testarchive.Broken]string{
			testarchive.NotTar: "NotTar", testarchive.NoIdentity: "NoIdentity", testarchive.HugeSpec: "MetadataTooLarge",
			testarchive.Symlink: "NotRegularFile", testarchive.Directory: "NotRegularFile",
			testarchive.OversizedEntry: "Truncated", testarchive.TwoConfigDumps: "IdentityMismatch",
			testarchive.HugeAnnotation: "MetadataTooLarge", testarchive.NonUTF8: "BadMetadata", testarchive.TarInSpecDump: "BadMetadata",
		}
		Expect(len(inNamespace) + len(onNode)).To(Equal(len(testarchive.BrokenVariants) + len(testarchive.HostileVariants)))
		paths := map[testarchive.Broken]string{}
		for i, broken := range append(append([]testarchive.Broken{}, testarchive.BrokenVariants...), testarchive.HostileVariants...) {
			a := testarchive.New(ns, "pod-"+string(broken), "app").At(at.Add(time.Duration(i) * time.Second)).Damaged(broken)
			paths[broken] = a.MustWrite(dir)
		}
		target, err := os.Readlink(paths[testarchive.Symlink])
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(os.RemoveAll, filepath.Dir(target))
		agent := startAgent(node, settleTime, dir)

		want := map[string]float64{}
		for _, reason := range inNamespace {
			want[reason]++
		}
		for _, reason := range onNode {
			want[reason]++
		}
		unreadable := func(g Gomega) map[string]float64 {
			got := map[string]float64{}
			for reason := range want {
				got[reason] = metric(g, node, "checkpointquota_node_unreadable_archives", map[string]string{"reason": reason})
			}
			return got
		}
		Eventually(unreadable).Should(Equal(want))

		var wantFiles []string
		for broken := range inNamespace {
			wantFiles = append(wantFiles, filepath.Base(paths[broken]))
		}
		Eventually(func(g Gomega) []string { return fileNames(checkpointsOf(node)(g)) }).Should(ConsistOf(wantFiles))
		for _, c := range checkpointsOf(node)(Default) {
			Expect(c.Namespace).To(Equal(ns))
			cond := meta.FindStatusCondition(c.Status.Conditions, cqv1.CheckpointConditionUnreadable)
			Expect(cond).NotTo(BeNil(), c.Spec.Archive.FileName)
			Expect(cond.Status).To(Equal(metav1.ConditionTrue), c.Spec.Archive.FileName)
		}
		for broken, reason := range inNamespace {
			var found bool
			for _, c := range checkpointsOf(node)(Default) {
				if c.Spec.Archive.FileName == filepath.Base(paths[broken]) {
					found = true
					Expect(meta.FindStatusCondition(c.Status.Conditions, cqv1.CheckpointConditionUnreadable).Reason).To(Equal(reason), string(broken))
				}
			}
			Expect(found).To(BeTrue(), string(broken))
		}
		// One event series on the Node per reason of the archives without a namespace.
		var reasons []gomegatypes.GomegaMatcher
		for _, reason := range onNode {
			reasons = append(reasons, ContainElement(ContainSubstring(": "+reason+": ")))
		}
		Eventually(nodeEventNotes(node)).Should(And(reasons...))

		// Through several rescans: nothing removed, nothing re-counted, the agent still running.
		Consistently(func(g Gomega) {
			g.Expect(agent.done).NotTo(Receive(), "the agent stopped")
			g.Expect(unreadable(g)).To(Equal(want))
			for broken, p := range paths {
				_, err := os.Lstat(p)
				g.Expect(err).NotTo(HaveOccurred(), "the %s archive is gone", broken)
			}
		}, 5*time.Second, 500*time.Millisecond).Should(Succeed())
		Expect(target).To(BeAnExistingFile())
	})
})
