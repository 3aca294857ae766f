package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/minio/minio-go/v7"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	"github.com/checkpoint-quota/checkpoint-quota/internal/objstore"
	"github.com/checkpoint-quota/checkpoint-quota/test/archive"
	"github.com/checkpoint-quota/checkpoint-quota/test/localrun"
	"github.com/checkpoint-quota/checkpoint-quota/test/s3server"
	"github.com/checkpoint-quota/checkpoint-quota/test/testenv"
)

// fetch --node to another node than the archive's (issue 32, item 5): a second node, with an
// agent of its own as the suite runs the first, gets a copy that its agent publishes as a
// new archive of that node, marked a copy; the stored Checkpoint and its object stay.
var _ = Describe("fetch to another node", Ordered, issue32, func() {
	const (
		bucket = "copies"
		nodeB  = "e2e-node-b"
	)
	var (
		srv        *s3server.Server
		ns         string
		dirB       string
		sums       map[string]string
		plugin     string
		alice, bob *testenv.Tenant
	)
	quotaAt := func(n int) { offloadQuota(ns, "copies", n) }
	// write writes an archive of pod/container in namespace into dir, taken age ago, and
	// returns its file name, with its SHA-256 noted.
	write := func(ctx context.Context, dir, namespace, pod string, age time.Duration) string {
		GinkgoHelper()
		uid := createPodOnce(ctx, namespace, pod, "app")
		archivesWritten++
		at := time.Now().UTC().Add(-age).Truncate(time.Second).Add(time.Duration(archivesWritten) * time.Second)
		path := archive.New(namespace, pod, "app").WithUID(uid).At(at).MustWrite(dir)
		data, err := os.ReadFile(path)
		Expect(err).NotTo(HaveOccurred())
		sum := sha256.Sum256(data)
		sums[filepath.Base(path)] = hex.EncodeToString(sum[:])
		return filepath.Base(path)
	}
	onNode := func(g Gomega, ctx context.Context, namespace, node string) []cqv1.Checkpoint {
		var list cqv1.CheckpointList
		g.Expect(env.Client.List(ctx, &list, client.InNamespace(namespace), client.MatchingFields{cqv1.FieldArchiveNode: node})).To(Succeed())
		return list.Items
	}
	// storedOne is the Checkpoint of the first node whose archive is in the store.
	storedOne := func(ctx context.Context) cqv1.Checkpoint {
		GinkgoHelper()
		var stored cqv1.Checkpoint
		for _, c := range onNode(Default, ctx, ns, nodeName) {
			if c.Status.Location != nil {
				stored = c
			}
		}
		Expect(stored.Status.Location).NotTo(BeNil())
		return stored
	}
	run := func(ctx context.Context, id testenv.Identity, args ...string) (string, error) {
		return pluginAs(ctx, plugin, id, args...)
	}

	BeforeAll(func(ctx context.Context) {
		srv = startStoreServer(ctx, bucket, "copies-credentials")
		var err error
		ns, err = env.CreateNamespace(ctx, "fetchnode")
		Expect(err).NotTo(HaveOccurred())
		grantStore(ctx, "copies", srv, bucket, "copies-credentials", ns)
		quotaAt(2)
		sums = map[string]string{}
		plugin = buildPlugin(ctx)
		alice = newTenant(ctx, ns)
		otherNs, err := env.CreateNamespace(ctx, "fetchnode-other")
		Expect(err).NotTo(HaveOccurred())
		bob, err = env.NewTenant(ctx, "bob", otherNs)
		Expect(err).NotTo(HaveOccurred())

		By("a second node, whose agent runs as the suite runs the first: its own token, directory and state")
		Expect(localrun.RegisterNode(ctx, env.Client, nodeB)).To(Succeed())
		kubeconfig, err := env.KubeconfigAs(posture.AgentOn(nodeB))
		Expect(err).NotTo(HaveOccurred())
		dirB = GinkgoT().TempDir()
		ports, err := localrun.FreePorts(2)
		Expect(err).NotTo(HaveOccurred())
		agentB := &localrun.Process{Name: "node-agent-b", Path: agentBinary, Output: logFile("node-agent-b.log"),
			Args: append(localrun.AgentArgs(kubeconfig, nodeB, dirB, GinkgoT().TempDir(), ports[0], ports[1]),
				"--settle-time=300ms", "--rescan-interval=5s", "--store-check-interval=10s", "--bucket-sweep-interval=-1s")}
		Expect(agentB.Start()).To(Succeed())
		DeferCleanup(func(ctx context.Context) {
			_ = agentB.Stop(10 * time.Second)
			// The suite's other specs see one node: the second goes with its objects.
			var list cqv1.CheckpointList
			_ = env.Client.List(ctx, &list, client.MatchingFields{cqv1.FieldArchiveNode: nodeB})
			for i := range list.Items {
				_ = env.Client.Delete(ctx, &list.Items[i])
			}
			_ = env.Client.Delete(ctx, &cqv1.CheckpointNode{ObjectMeta: metav1.ObjectMeta{Name: nodeB}})
			_ = env.Client.Delete(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: nodeB}})
		})

		By("three archives on the first node under a limit of two: the oldest is moved to the store")
		for range 3 {
			write(ctx, ckptDir, ns, "app-0", time.Hour)
		}
		Eventually(func(g Gomega) {
			g.Expect(filesOf(g, ns)).To(HaveLen(2))
			stored := 0
			for _, c := range onNode(g, ctx, ns, nodeName) {
				if c.Status.Location != nil {
					stored++
				}
			}
			g.Expect(stored).To(Equal(1))
		}, 90*time.Second).WithContext(ctx).Should(Succeed())
	})

	It("copies an offloaded archive to another node, byte for byte, as a Checkpoint of that node marked a copy, freed first; the stored one stays", func(ctx context.Context) {
		stored := storedOne(ctx)
		onA := filesOf(Default, ns)

		By("bob, an editor of another namespace, cannot ask for it, with the plugin or kubectl --as")
		out, err := run(ctx, bob.Identity, "-n", ns, "fetch", stored.Name, "--node", nodeB)
		Expect(err).To(HaveOccurred(), out)
		Expect(out).To(ContainSubstring("forbidden"))
		_, stderr, err := env.KubectlAs(bob.Identity, "", "label", "-n", ns, "checkpoint", stored.Name, cqv1.LabelFetchTo+"="+nodeB)
		Expect(err).To(HaveOccurred())
		Expect(stderr).To(ContainSubstring("forbidden"))

		By("alice, an editor of the namespace, asks for a copy on the second node with the plugin run --as her")
		quotaAt(3) // the copy counts against her limits like any archive: room for it first
		out, err = run(ctx, alice.Identity, "-n", ns, "fetch", stored.Name, "--node", nodeB, "--timeout", "2m")
		Expect(err).NotTo(HaveOccurred(), out)
		Expect(out).To(ContainSubstring("is on node " + nodeB))
		Expect(out).To(ContainSubstring("marked a copy"))
		path := filepath.Join(dirB, stored.Spec.Archive.FileName)
		data, err := os.ReadFile(path)
		Expect(err).NotTo(HaveOccurred())
		sum := sha256.Sum256(data)
		Expect(hex.EncodeToString(sum[:])).To(Equal(sums[stored.Spec.Archive.FileName]), "the copy is not the archive's bytes")
		Expect(hex.EncodeToString(sum[:])).To(Equal(stored.Status.Location.SHA256))
		info, err := os.Stat(path)
		Expect(err).NotTo(HaveOccurred())
		Expect(info.Mode().Perm()).To(Equal(os.FileMode(0o600)), "the kubelet's mode")

		By("the second node's agent shows it as a Checkpoint of its node, marked a copy; the stored Checkpoint and its object are untouched")
		var copied cqv1.Checkpoint
		Consistently(func(g Gomega) {
			copies := onNode(g, ctx, ns, nodeB)
			g.Expect(copies).To(HaveLen(1))
			copied = copies[0]
			a := copied.Spec.Archive
			g.Expect(a.FileName).To(Equal(stored.Spec.Archive.FileName))
			g.Expect(a.Directory).To(Equal(dirB))
			g.Expect(a.SizeBytes).To(Equal(stored.Spec.Archive.SizeBytes))
			g.Expect(a.PodUID).To(Equal(stored.Spec.Archive.PodUID))
			g.Expect(a.CopyOf).To(Equal(&cqv1.ArchiveCopy{Namespace: ns, Name: stored.Name, UID: stored.UID, NodeName: nodeName}))
			g.Expect(copied.IsCopy()).To(BeTrue())
			g.Expect(copied.Status.Location).To(BeNil(), "the copy was stored again")
			g.Expect(copied.Status.Offload).To(BeNil(), "the copy is to be stored again")

			var now cqv1.Checkpoint
			g.Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(&stored), &now)).To(Succeed())
			g.Expect(now.UID).To(Equal(stored.UID))
			g.Expect(now.Spec).To(Equal(stored.Spec))
			g.Expect(now.Status.Location).To(Equal(stored.Status.Location))
			g.Expect(now.Labels).NotTo(HaveKey(cqv1.LabelFetchTo), "the request stays")
			g.Expect(now.IsFetchedCopy()).To(BeFalse())
			g.Expect(filesOf(g, ns)).To(Equal(onA), "the first node changed")
			obj, err := srv.Client.StatObject(ctx, bucket, stored.Status.Location.Key, minio.StatObjectOptions{})
			g.Expect(err).NotTo(HaveOccurred(), "the stored archive went")
			g.Expect(obj.Metadata.Get("X-Amz-Meta-" + objstore.MetaSHA256)).To(Equal(stored.Status.Location.SHA256))
		}, 8*time.Second, time.Second).WithContext(ctx).Should(Succeed())
		out, stderr, err = env.Kubectl("", "get", "checkpoints", "-n", ns, "-o", "wide", "--field-selector", cqv1.FieldArchiveNode+"="+nodeB)
		Expect(err).NotTo(HaveOccurred(), stderr)
		Expect(out).To(ContainSubstring("COPY-OF"))
		Expect(out).To(ContainSubstring(stored.Name))
		out, err = run(ctx, alice.Identity, "-n", ns, "fetch", stored.Name, "--node", nodeB)
		Expect(err).NotTo(HaveOccurred(), out)
		Expect(out).To(ContainSubstring("is on node " + nodeB + " already: Checkpoint " + ns + "/" + copied.Name))

		By("nobody makes the copy an archive of its own: spec.archive, copyOf with it, is the agent's")
		_, stderr, err = alice.Kubectl("", "patch", "checkpoint", copied.Name, "--type", "json", "-p", `[{"op":"remove","path":"/spec/archive/copyOf"}]`)
		Expect(err).To(HaveOccurred(), "alice unmarked the copy")
		Expect(stderr).To(ContainSubstring("spec.archive is written by the node agent"))

		By("a request for an archive that is not stored is refused, and nothing is written on the node")
		onB := len(mustReadDir(dirB))
		notStored := ""
		for _, c := range onNode(Default, ctx, ns, nodeName) {
			if c.Status.Location == nil {
				notStored = c.Name
			}
		}
		_, stderr, err = alice.Kubectl("", "label", "checkpoint", notStored, cqv1.LabelFetchTo+"="+nodeB)
		Expect(err).NotTo(HaveOccurred(), stderr)
		Eventually(func(g Gomega) {
			for _, c := range onNode(g, ctx, ns, nodeName) {
				g.Expect(c.Labels).NotTo(HaveKey(cqv1.LabelFetchTo), "the agent of %s left the request on %s", nodeB, c.Name)
			}
		}, 30*time.Second).WithContext(ctx).Should(Succeed())
		Expect(mustReadDir(dirB)).To(HaveLen(onB))

		By("the second node's own limit needs room: the copy goes first, newer than the archives kept, and the stored archive stays")
		filler, err := env.CreateNamespace(ctx, "fetchnode-filler")
		Expect(err).NotTo(HaveOccurred())
		entries := mustReadDir(ckptDir)
		limit := len(entries) + 2 // the first node stays under it
		var fillers []string
		for range limit {
			// Two hours old: older than the copy, which an hour-old archive is.
			fillers = append(fillers, write(ctx, dirB, filler, "filler-0", 2*time.Hour))
		}
		Eventually(func(g Gomega) { g.Expect(onNode(g, ctx, filler, nodeB)).To(HaveLen(limit)) }, time.Minute).WithContext(ctx).Should(Succeed())
		_, stderr, err = env.Kubectl(fmt.Sprintf(`apiVersion: checkpointquota.dev/v1alpha1
kind: ClusterCheckpointQuota
metadata: {name: fetchnode-per-node}
spec:
  namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: %s}}
  limits: {perNode: {checkpoints: %d}}
`, filler, limit), "apply", "-f", "-")
		Expect(err).NotTo(HaveOccurred(), stderr)
		DeferCleanup(func(ctx context.Context) {
			_ = env.Client.Delete(ctx, &cqv1.ClusterCheckpointQuota{ObjectMeta: metav1.ObjectMeta{Name: "fetchnode-per-node"}})
		})
		Eventually(func(g Gomega) {
			_, err := os.Stat(path)
			g.Expect(os.IsNotExist(err)).To(BeTrue(), "the copy is still on %s", nodeB)
			g.Expect(onNode(g, ctx, ns, nodeB)).To(BeEmpty(), "the copy's Checkpoint stays")
		}, time.Minute).WithContext(ctx).Should(Succeed())
		for _, f := range fillers {
			Expect(filepath.Join(dirB, f)).To(BeARegularFile(), "an archive older than the copy went before it")
		}
		Expect(onNode(Default, ctx, filler, nodeB)).To(HaveLen(limit))
		Expect(filesOf(Default, ns)).To(Equal(onA), "the first node changed")
		Expect(mustReadDir(ckptDir)).To(HaveLen(len(entries)), "the first node changed")
		var now cqv1.Checkpoint
		Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(&stored), &now)).To(Succeed())
		Expect(now.UID).To(Equal(stored.UID))
		Expect(now.Status.Location).To(Equal(stored.Status.Location))
		_, err = srv.Client.StatObject(ctx, bucket, stored.Status.Location.Key, minio.StatObjectOptions{})
		Expect(err).NotTo(HaveOccurred(), "the stored archive went with its copy")
	})

	It("says why while the store is down, writes nothing on the node, and brings the copy once the store is back", func(ctx context.Context) {
		stored := storedOne(ctx)
		path := filepath.Join(dirB, stored.Spec.Archive.FileName)
		Expect(path).NotTo(BeAnExistingFile(), "the previous spec's copy is still there")
		srv.Kill()
		out, err := run(ctx, alice.Identity, "-n", ns, "fetch", stored.Name, "--node", nodeB, "--timeout", "15s")
		Expect(err).To(HaveOccurred(), out)
		Expect(out).To(ContainSubstring("not yet: bringing a copy to node " + nodeB + ": "))
		Expect(out).To(ContainSubstring("did not bring a copy of " + ns + "/" + stored.Name + " within 15s: bringing a copy to node " + nodeB))
		entries, err := os.ReadDir(dirB)
		Expect(err).NotTo(HaveOccurred())
		for _, e := range entries {
			Expect(e.Name()).NotTo(HavePrefix(".fetch-"), "a download left behind")
		}
		Expect(path).NotTo(BeAnExistingFile())
		var now cqv1.Checkpoint
		Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(&stored), &now)).To(Succeed())
		Expect(now.Labels).To(HaveKeyWithValue(cqv1.LabelFetchTo, nodeB), "the request went with the failure")

		By("the store back: the request that stayed is served")
		Expect(srv.Restart(ctx)).To(Succeed())
		Eventually(func(g Gomega) {
			copies := onNode(g, ctx, ns, nodeB)
			g.Expect(copies).To(HaveLen(1))
			g.Expect(copies[0].Spec.Archive.CopyOf).NotTo(BeNil())
			g.Expect(copies[0].Spec.Archive.CopyOf.UID).To(Equal(stored.UID))
			g.Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(&stored), &now)).To(Succeed())
			g.Expect(now.Labels).NotTo(HaveKey(cqv1.LabelFetchTo))
		}, 3*time.Minute).WithContext(ctx).Should(Succeed())
		data, err := os.ReadFile(path)
		Expect(err).NotTo(HaveOccurred())
		sum := sha256.Sum256(data)
		Expect(hex.EncodeToString(sum[:])).To(Equal(stored.Status.Location.SHA256))
	})
})

// mustReadDir lists the archives in dir.
func mustReadDir(dir string) []string {
	GinkgoHelper()
	entries, err := os.ReadDir(dir)
	Expect(err).NotTo(HaveOccurred())
	var out []string
	for _, e := range entries {
		if matched, _ := filepath.Match("checkpoint-*.tar", e.Name()); matched {
			out = append(out, e.Name())
		}
	}
	return out
}
