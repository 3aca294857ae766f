package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	"github.com/checkpoint-quota/checkpoint-quota/internal/objstore"
	"github.com/checkpoint-quota/checkpoint-quota/nodeagent"
	"github.com/checkpoint-quota/checkpoint-quota/test/archive"
	"github.com/checkpoint-quota/checkpoint-quota/test/localrun"
	"github.com/checkpoint-quota/checkpoint-quota/test/s3server"
	"github.com/checkpoint-quota/checkpoint-quota/test/testenv"
)

var issue32 = Label("issue32")

// Offload with the real manager and agent and a real S3 server (SeaweedFS, test/s3server):
// what a quota prunes moves to the store, verified, and nothing is removed before.
var _ = Describe("offload to a CheckpointStore", Ordered, issue32, func() {
	const bucket = "archives"
	var (
		srv *s3server.Server
		ns  string
		// sums holds each archive's SHA-256, taken as soon as it was written.
		sums map[string]string
	)
	BeforeAll(func(ctx context.Context) {
		srv = startStoreServer(ctx, bucket, "archive-credentials")
		var err error
		ns, err = env.CreateNamespace(ctx, "offload")
		Expect(err).NotTo(HaveOccurred())
		grantStore(ctx, "archive", srv, bucket, "archive-credentials", ns)
		_, stderr, err := env.Kubectl(`apiVersion: checkpointquota.dev/v1alpha1
kind: CheckpointQuota
metadata: {name: offload, namespace: `+ns+`}
spec:
  limits: {perContainer: {checkpoints: 3}}
  offload: {store: archive}
`, "apply", "-f", "-")
		Expect(err).NotTo(HaveOccurred(), stderr)
		sums = map[string]string{}
	})

	// writeAt writes an archive of app-0/app of size bytes (0: the builder's), taken at the
	// given offset from now, and notes its SHA-256 before anything can move it.
	writeAt := func(ctx context.Context, age time.Duration, size int64) string {
		GinkgoHelper()
		uid := createPodOnce(ctx, ns, "app-0", "app")
		archivesWritten++
		at := time.Now().UTC().Add(-age).Truncate(time.Second).Add(time.Duration(archivesWritten) * time.Second)
		a := archive.New(ns, "app-0", "app").WithUID(uid).At(at)
		if size > 0 {
			a = a.WithSize(size)
		}
		path := a.MustWrite(ckptDir)
		data, err := os.ReadFile(path)
		Expect(err).NotTo(HaveOccurred())
		sum := sha256.Sum256(data)
		sums[filepath.Base(path)] = hex.EncodeToString(sum[:])
		return filepath.Base(path)
	}
	// write writes an archive taken an hour ago.
	write := func(ctx context.Context) { writeAt(ctx, time.Hour, 0) }
	// stored lists the keys of the store under the namespace.
	stored := func(g Gomega, ctx context.Context) []string {
		var keys []string
		for o := range srv.Client.ListObjects(ctx, bucket, minio.ListObjectsOptions{Prefix: "e2e/" + ns + "/", Recursive: true}) {
			g.Expect(o.Err).NotTo(HaveOccurred())
			keys = append(keys, o.Key)
		}
		sort.Strings(keys)
		return keys
	}
	// converged checks the whole picture: the node holds the newest three, every other
	// archive is in the store under its Checkpoint's key, with the SHA-256 of the file it
	// came from, and nothing else exists.
	converged := func(g Gomega, ctx context.Context) {
		names := make([]string, 0, len(sums))
		for n := range sums {
			names = append(names, n)
		}
		sort.Strings(names) // the kubelet's names sort by time within one container
		g.Expect(filesOf(g, ns)).To(Equal(names[len(names)-3:]), "the node holds the newest three")
		var keys []string
		for _, c := range checkpointsIn(ctx, g, ns) {
			if c.Status.Location == nil {
				continue
			}
			loc := c.Status.Location
			g.Expect(loc.Store).To(Equal("archive"))
			g.Expect(loc.Key).To(HavePrefix("e2e/"+ns+"/app-0/app/"), "keys hold the namespace")
			g.Expect(loc.SHA256).To(Equal(sums[c.Spec.Archive.FileName]), "the Checkpoint's checksum is its file's")
			info, err := srv.Client.StatObject(ctx, bucket, loc.Key, minio.StatObjectOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(info.Size).To(Equal(c.Spec.Archive.SizeBytes))
			g.Expect(objstore.RecordedSHA256(ctx, srv.Client, bucket, info)).To(Equal(sums[c.Spec.Archive.FileName]), "the SHA-256 the object records")
			obj, err := srv.Client.GetObject(ctx, bucket, loc.Key, minio.GetObjectOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			h := sha256.New()
			_, err = io.Copy(h, obj)
			_ = obj.Close()
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(hex.EncodeToString(h.Sum(nil))).To(Equal(sums[c.Spec.Archive.FileName]), "the stored bytes are the file's")
			keys = append(keys, loc.Key)
		}
		sort.Strings(keys)
		g.Expect(keys).To(HaveLen(len(names) - 3))
		g.Expect(stored(g, ctx)).To(Equal(keys), "the store holds exactly the offloaded archives")
		g.Expect(checkpointsIn(ctx, g, ns)).To(HaveLen(len(names)), "every archive keeps its Checkpoint")
	}

	It("moves what the limits prune to the store, verified, and keeps the newest on the node", func(ctx context.Context) {
		for range 8 {
			write(ctx)
			time.Sleep(200 * time.Millisecond)
		}
		Eventually(converged, 90*time.Second).WithContext(ctx).Should(Succeed())

		By("kubectl get checkpoints says where each archive is")
		out, stderr, err := env.Kubectl("", "get", "checkpoints", "-n", ns)
		Expect(err).NotTo(HaveOccurred(), stderr)
		Expect(out).To(ContainSubstring("STORED-IN"))
		Expect(strings.Count(out, " archive ")).To(Equal(5))

		By("the agent's metrics time each stage of each offload")
		for _, stage := range []string{"upload", "record", "log", "remove"} {
			Expect(metricValue(Default, agentMetrics, `checkpointquota_node_offload_stage_seconds_count{stage="`+stage+`",store="archive"}`)).
				To(BeNumerically(">=", 5), stage)
		}
	})

	It("says in the store's status that the node reaches and writes it, and names the node and the error when it cannot", func(ctx context.Context) {
		storeCondition(ctx, "archive", cqv1.StoreConditionReachable, metav1.ConditionTrue, time.Minute)
		msg := storeCondition(ctx, "archive", cqv1.StoreConditionWritable, metav1.ConditionTrue, time.Minute)
		Expect(msg).To(Equal("every node that checked (1) can write to the store"))

		By("wrong credentials")
		createStore(ctx, "wrong-keys", srv.Endpoint, bucket, s3server.AccessKeyID, "not-the-secret")
		msg = storeCondition(ctx, "wrong-keys", cqv1.StoreConditionReachable, metav1.ConditionFalse, time.Minute)
		Expect(msg).To(HavePrefix("1 of 1 nodes cannot reach the store; " + nodeName + ": "))
		Expect(msg).To(MatchRegexp(`(?i)signature|access ?denied|credentials`))
		GinkgoWriter.Println("wrong credentials:", msg)

		By("a bucket deleted under the store")
		Expect(srv.MakeBucket(ctx, "doomed")).To(Succeed())
		createStore(ctx, "doomed", srv.Endpoint, "doomed", s3server.AccessKeyID, s3server.SecretAccessKey)
		storeCondition(ctx, "doomed", cqv1.StoreConditionWritable, metav1.ConditionTrue, time.Minute)
		// A check of the node may hold an object there for a moment.
		Eventually(func() error { return srv.Client.RemoveBucket(ctx, "doomed") }).WithContext(ctx).Should(Succeed())
		msg = storeCondition(ctx, "doomed", cqv1.StoreConditionReachable, metav1.ConditionFalse, time.Minute)
		Expect(msg).To(Equal("1 of 1 nodes cannot reach the store; " + nodeName + `: bucket "doomed" does not exist`))
		msg = storeCondition(ctx, "doomed", cqv1.StoreConditionWritable, metav1.ConditionFalse, time.Minute)
		Expect(msg).To(ContainSubstring(nodeName + `: bucket "doomed" does not exist`))
	})

	It("fetches an offloaded archive to a local file, byte for byte, with kubectl checkpoint-quota fetch", func(ctx context.Context) {
		plugin := buildPlugin(ctx)
		var stored *cqv1.Checkpoint
		for _, c := range checkpointsIn(ctx, Default, ns) {
			if c.Status.Location != nil {
				stored = &c
				break
			}
		}
		Expect(stored).NotTo(BeNil())
		file := filepath.Join(GinkgoT().TempDir(), "fetched.tar")
		out, err := exec.CommandContext(ctx, plugin, "--kubeconfig", env.Kubeconfig, "-n", ns, "fetch", stored.Name, "-o", file).CombinedOutput()
		Expect(err).NotTo(HaveOccurred(), string(out))
		Expect(string(out)).To(ContainSubstring("verified"))
		data, err := os.ReadFile(file)
		Expect(err).NotTo(HaveOccurred())
		sum := sha256.Sum256(data)
		Expect(hex.EncodeToString(sum[:])).To(Equal(sums[stored.Spec.Archive.FileName]))
	})

	It("keeps every file while the store is down, and moves them once it is back", func(ctx context.Context) {
		srv.Kill()
		for range 4 {
			write(ctx)
			time.Sleep(200 * time.Millisecond)
		}
		By("the uploads fail: the Checkpoints say so, and no file leaves the node")
		Eventually(func(g Gomega) {
			failing := 0
			for _, c := range checkpointsIn(ctx, g, ns) {
				for _, cond := range c.Status.Conditions {
					if cond.Type == cqv1.CheckpointConditionOffloadFailed && cond.Status == metav1.ConditionTrue {
						failing++
					}
				}
			}
			g.Expect(failing).To(BeNumerically(">=", 1))
		}, 60*time.Second).Should(Succeed())
		Consistently(func(g Gomega) []string { return filesOf(g, ns) }, 5*time.Second).Should(HaveLen(3+4), "a file left the node while the store was down")

		By("the store back: everything converges, nothing lost")
		Expect(srv.Restart(ctx)).To(Succeed())
		Eventually(converged, 180*time.Second).WithContext(ctx).Should(Succeed())
		for _, c := range checkpointsIn(ctx, Default, ns) {
			for _, cond := range c.Status.Conditions {
				Expect(cond.Type == cqv1.CheckpointConditionOffloadFailed && cond.Status == metav1.ConditionTrue).To(BeFalse(),
					"%s still says OffloadFailed", c.Name)
			}
		}
	})

	It("still frees a node over perNode while the store is down, says what it lost, and loses nothing else", func(ctx context.Context) {
		DeferCleanup(func() {
			_, _, _ = env.Kubectl("", "delete", "clustercheckpointquota", "offload-node", "--ignore-not-found")
		})
		// The node rule counts every archive of the node; the archives of this spec are the
		// oldest there (taken three hours ago: other specs leave archives of up to two hours
		// on the node, boundary_test.go's victims among them), so that it is they that the
		// rule frees.
		onNode := tarsIn(Default, ckptDir)
		limit := onNode + 2
		_, stderr, err := env.Kubectl(`apiVersion: checkpointquota.dev/v1alpha1
kind: ClusterCheckpointQuota
metadata: {name: offload-node}
spec:
  limits: {perNode: {checkpoints: `+strconv.Itoa(limit)+`}}
  offload: {store: archive}
`, "apply", "-f", "-")
		Expect(err).NotTo(HaveOccurred(), stderr)
		kept := filesOf(Default, ns) // the newest three, which perContainer keeps on the node

		By("watching every file leave the node: each must be stored and verified first, or pruned by the node rule")
		watch := watchRemovals(ctx, ns)

		By("a stream of archives, the store killed in the middle of a multipart upload")
		var written []string
		for range 3 {
			// 40 MiB: three parts of 16 MiB.
			written = append(written, writeAt(ctx, 3*time.Hour, 40<<20))
			time.Sleep(300 * time.Millisecond)
		}
		// The kill lands in the middle of a multipart upload where one is seen in flight; the
		// uploads can also all finish between two looks (an idle machine, a fast disk), and the
		// store is killed then all the same: what follows holds either way, and the report
		// says which it was.
		inFlight := func() bool {
			for u := range srv.Client.ListIncompleteUploads(ctx, bucket, "e2e/"+ns+"/", true) {
				if u.Err == nil {
					return true
				}
			}
			return false
		}
		caught := inFlight()
		for deadline := time.Now().Add(20 * time.Second); !caught && time.Now().Before(deadline); caught = inFlight() {
			time.Sleep(20 * time.Millisecond)
		}
		AddReportEntry("the store killed during a multipart upload", caught)
		failed := func() float64 {
			return metricValue(Default, agentMetrics, `checkpointquota_node_offload_failures_total{store="archive"}`)
		}
		failedBefore := failed()
		srv.Kill()
		killed := time.Now()
		for range 4 {
			written = append(written, writeAt(ctx, 3*time.Hour, 8<<20))
			time.Sleep(300 * time.Millisecond)
		}

		By("the node rule frees the node while the store is down, and says what it lost")
		Eventually(func(g Gomega) int { return tarsIn(g, ckptDir) }, 3*time.Minute, time.Second).Should(BeNumerically("<=", limit),
			"the node stays over perNode while the store is down")
		freedIn := time.Since(killed).Round(time.Second)
		tries := failed() - failedBefore
		lost := offloadLost(ctx)
		Expect(lost).NotTo(BeEmpty(), "no OffloadLost event names what the node rule deleted")
		for _, key := range lost {
			Expect(key).To(HavePrefix(ns+"/"), "the node rule took an archive of another namespace: %s", key)
		}
		Expect(filesOf(Default, ns)).To(ContainElements(kept), "an archive that perContainer keeps left the node")

		By("the store back: everything that is left converges, nothing half-written counts")
		Expect(srv.Restart(ctx)).To(Succeed())
		removed := watch()
		var lostFiles []string
		for file, what := range removed {
			switch what {
			case removedStored:
			case removedDeleted:
				name := nodeagent.ObjectName(nodeName, ckptDir, file)
				Expect(lost).To(ContainElement(ns+"/"+name), "%s left the node unstored, and no OffloadLost event says so", file)
				lostFiles = append(lostFiles, file)
			default:
				Fail(file + " left the node while its Checkpoint had no location: " + string(what))
			}
		}
		Expect(lostFiles).NotTo(BeEmpty())
		for _, f := range lostFiles {
			Expect(written).To(ContainElement(f), "the node rule deleted an archive older than this spec's")
			delete(sums, f) // gone on purpose: it is nowhere now
		}
		Eventually(converged, 3*time.Minute).WithContext(ctx).Should(Succeed())
		GinkgoWriter.Printf("perNode %d: the node within it %s after the store was killed, after %.0f failed uploads; %d of %d archives lost while it was down (%v)\n",
			limit, freedIn, tries, len(lostFiles), len(written), lostFiles)
	})

	It("deletes the stored object of a Checkpoint that a person deletes", func(ctx context.Context) {
		var victim *cqv1.Checkpoint
		for _, c := range checkpointsIn(ctx, Default, ns) {
			if c.Status.Location != nil {
				victim = &c
				break
			}
		}
		Expect(victim).NotTo(BeNil())
		Expect(env.Client.Delete(ctx, victim)).To(Succeed())
		Eventually(func(g Gomega) []string { return stored(g, ctx) }).WithContext(ctx).ShouldNot(ContainElement(victim.Status.Location.Key))
		Expect(filesOf(Default, ns)).To(HaveLen(3))

		By("one deleted while its node's agent is down: the agent, back, deletes its object")
		victim = nil
		for _, c := range checkpointsIn(ctx, Default, ns) {
			if c.Status.Location != nil {
				victim = &c
				break
			}
		}
		Expect(victim).NotTo(BeNil())
		Expect(agent.Stop(10 * time.Second)).To(Succeed())
		Expect(env.Client.Delete(ctx, victim)).To(Succeed())
		Expect(stored(Default, ctx)).To(ContainElement(victim.Status.Location.Key))
		Expect(agent.Start()).To(Succeed())
		Eventually(func(g Gomega) []string { return stored(g, ctx) }, time.Minute).WithContext(ctx).ShouldNot(ContainElement(victim.Status.Location.Key))
		Expect(filesOf(Default, ns)).To(HaveLen(3))
	})

	It("brings an offloaded archive back to its node with fetch --node, byte for byte, as the same Checkpoint; a tenant asks only for her own", func(ctx context.Context) {
		plugin := buildPlugin(ctx)
		quotaAt := func(n int) { offloadQuota(ns, "archive", n) }
		// The copy counts on the node like any archive, and the limits free it first: the
		// container needs room for it.
		quotaAt(4)
		DeferCleanup(func() { quotaAt(3) })
		onNode := filesOf(Default, ns)
		stored := firstStored(ctx, ns)
		count := len(checkpointsIn(ctx, Default, ns))
		alice := newTenant(ctx, ns)
		otherNs, err := env.CreateNamespace(ctx, "fetcher")
		Expect(err).NotTo(HaveOccurred())
		bob, err := env.NewTenant(ctx, "bob", otherNs)
		Expect(err).NotTo(HaveOccurred())
		as := func(id testenv.Identity, args ...string) (string, error) { return pluginAs(ctx, plugin, id, args...) }

		By("bob, an editor of another namespace, cannot ask for it, with the plugin or kubectl --as")
		out, err := as(bob.Identity, "-n", ns, "fetch", stored.Name, "--node", nodeName)
		Expect(err).To(HaveOccurred(), out)
		Expect(out).To(ContainSubstring("forbidden"))
		_, stderr, err := env.KubectlAs(bob.Identity, "", "annotate", "-n", ns, "checkpoint", stored.Name, cqv1.AnnotationFetch+"=bob")
		Expect(err).To(HaveOccurred())
		Expect(stderr).To(ContainSubstring("forbidden"))

		By("another node gets a copy of its own, from its own agent (test/e2e/fetch_node_test.go): here none answers, and the Checkpoint's node is its own, which nobody can change")
		out, err = as(alice.Identity, "-n", ns, "fetch", stored.Name, "--node", "elsewhere", "--timeout", "2s")
		Expect(err).To(HaveOccurred(), out)
		Expect(out).To(ContainSubstring("the node agent of elsewhere did not bring a copy of " + ns + "/" + stored.Name + " within 2s"))
		_, stderr, err = alice.Kubectl("", "label", "checkpoint", stored.Name, cqv1.LabelFetchTo+"-")
		Expect(err).NotTo(HaveOccurred(), stderr)
		_, stderr, err = alice.Kubectl("", "patch", "checkpoint", stored.Name, "--type", "merge", "-p", `{"spec":{"archive":{"nodeName":"elsewhere"}}}`)
		Expect(err).To(HaveOccurred(), "alice moved spec.archive to another node")
		Expect(stderr).To(ContainSubstring("spec.archive is written by the node agent"))

		By("alice, an editor of its namespace, brings it back with the plugin run --as her")
		out, err = as(alice.Identity, "-n", ns, "fetch", stored.Name, "--node", nodeName, "--timeout", "2m")
		Expect(err).NotTo(HaveOccurred(), out)
		Expect(out).To(ContainSubstring("is back on node " + nodeName))
		Expect(out).To(ContainSubstring("SHA-256 " + sums[stored.Spec.Archive.FileName] + ", verified"))
		path := filepath.Join(ckptDir, stored.Spec.Archive.FileName)
		data, err := os.ReadFile(path)
		Expect(err).NotTo(HaveOccurred())
		sum := sha256.Sum256(data)
		Expect(hex.EncodeToString(sum[:])).To(Equal(sums[stored.Spec.Archive.FileName]), "the file is not the archive's bytes")
		info, err := os.Stat(path)
		Expect(err).NotTo(HaveOccurred())
		Expect(info.Mode().Perm()).To(Equal(os.FileMode(0o600)), "the kubelet's mode")

		By("the agent shows it as the same Checkpoint, which stays, and counts on the node")
		Consistently(func(g Gomega) {
			var c cqv1.Checkpoint
			g.Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(&stored), &c)).To(Succeed())
			g.Expect(c.UID).To(Equal(stored.UID))
			g.Expect(c.IsFetchedCopy()).To(BeTrue(), "%v", c.Status)
			g.Expect(c.Status.Location).To(Equal(stored.Status.Location))
			g.Expect(c.Annotations).NotTo(HaveKey(cqv1.AnnotationFetch))
			g.Expect(checkpointsIn(ctx, g, ns)).To(HaveLen(count), "a second Checkpoint for the fetched file")
			g.Expect(filesOf(g, ns)).To(ConsistOf(append(onNode, stored.Spec.Archive.FileName)))
		}, 10*time.Second, time.Second).Should(Succeed())
		out, stderr, err = env.Kubectl("", "describe", "checkpoint", "-n", ns, stored.Name)
		Expect(err).NotTo(HaveOccurred(), stderr)
		Expect(out).To(ContainSubstring("a copy is back on node " + nodeName))

		By("with no room left under the limit, the copy is the first to go, and the archive stays stored")
		quotaAt(3)
		Eventually(func(g Gomega) {
			g.Expect(filesOf(g, ns)).To(ConsistOf(onNode))
			var c cqv1.Checkpoint
			g.Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(&stored), &c)).To(Succeed())
			g.Expect(c.UID).To(Equal(stored.UID))
			g.Expect(c.Status.Location).To(Equal(stored.Status.Location))
			f := meta.FindStatusCondition(c.Status.Conditions, cqv1.CheckpointConditionFetched)
			g.Expect(f).NotTo(BeNil())
			g.Expect(f.Reason).To(Equal("CopyRemoved"), f.Message)
		}, time.Minute).Should(Succeed())
		_, err = srv.Client.StatObject(ctx, bucket, stored.Status.Location.Key, minio.StatObjectOptions{})
		Expect(err).NotTo(HaveOccurred(), "the stored archive went with its copy")
	})

	It("frees a copy fetched back to its node when a node rule must while the store is down, and says it could not check the object", func(ctx context.Context) {
		offloadQuota(ns, "archive", 4) // room for the copy under perContainer
		onNode := filesOf(Default, ns)
		stored := firstStored(ctx, ns)
		path := filepath.Join(ckptDir, stored.Spec.Archive.FileName)
		_, stderr, err := env.Kubectl("", "annotate", "-n", ns, "checkpoint", stored.Name, cqv1.AnnotationFetch+"=admin")
		Expect(err).NotTo(HaveOccurred(), stderr)
		Eventually(func(g Gomega) {
			var c cqv1.Checkpoint
			g.Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(&stored), &c)).To(Succeed())
			g.Expect(c.IsFetchedCopy()).To(BeTrue())
			_, err := os.Stat(path)
			g.Expect(err).NotTo(HaveOccurred())
		}, time.Minute).WithContext(ctx).Should(Succeed())
		var others []string
		entries, err := os.ReadDir(ckptDir)
		Expect(err).NotTo(HaveOccurred())
		for _, e := range entries {
			if strings.HasSuffix(e.Name(), ".tar") && e.Name() != stored.Spec.Archive.FileName {
				others = append(others, e.Name())
			}
		}
		unverified := func() float64 {
			return metricValue(Default, agentMetrics, `checkpointquota_node_removed_unverified_total{store="archive"}`)
		}
		before, lost := unverified(), offloadLost(ctx)

		By("the store killed, and a node rule that must free one archive of the node")
		srv.Kill()
		running := false
		DeferCleanup(func(ctx context.Context) {
			if !running {
				Expect(srv.Restart(ctx)).To(Succeed())
			}
		})
		DeferCleanup(func() {
			_, _, _ = env.Kubectl("", "delete", "clustercheckpointquota", "offload-copy", "--ignore-not-found")
		})
		perNode := func(n int) {
			GinkgoHelper()
			_, stderr, err := env.Kubectl(`apiVersion: checkpointquota.dev/v1alpha1
kind: ClusterCheckpointQuota
metadata: {name: offload-copy}
spec:
  limits: {perNode: {checkpoints: `+strconv.Itoa(n)+`}}
`, "apply", "-f", "-")
			Expect(err).NotTo(HaveOccurred(), stderr)
		}
		perNode(100000)
		var used int64
		Eventually(func(g Gomega) {
			var cq cqv1.ClusterCheckpointQuota
			g.Expect(env.Client.Get(ctx, client.ObjectKey{Name: "offload-copy"}, &cq)).To(Succeed())
			g.Expect(cq.Status.Nodes).To(ContainElement(HaveField("Node", nodeName)))
			for _, n := range cq.Status.Nodes {
				if n.Node == nodeName {
					used = n.Checkpoints
				}
			}
		}, 30*time.Second).WithContext(ctx).Should(Succeed())
		perNode(int(used) - 1)

		By("the copy goes from the node, and nothing else; the Checkpoint says the object could not be checked")
		Eventually(func() error { _, err := os.Stat(path); return err }, time.Minute).Should(MatchError(os.ErrNotExist),
			"the copy stays on the node while the node rule counts it as freed")
		Eventually(func(g Gomega) {
			var c cqv1.Checkpoint
			g.Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(&stored), &c)).To(Succeed())
			g.Expect(c.UID).To(Equal(stored.UID))
			g.Expect(c.Status.Location).To(Equal(stored.Status.Location))
			f := meta.FindStatusCondition(c.Status.Conditions, cqv1.CheckpointConditionFetched)
			g.Expect(f).NotTo(BeNil())
			g.Expect(f.Reason).To(Equal(nodeagent.ReasonCopyRemoved))
			g.Expect(f.Message).To(ContainSubstring("which did not answer the check of its object"))
			var list corev1.EventList
			g.Expect(env.Client.List(ctx, &list, client.InNamespace(ns), client.MatchingFields{"reason": nodeagent.ReasonRemovedUnverified})).To(Succeed())
			g.Expect(list.Items).To(ContainElement(SatisfyAll(
				HaveField("InvolvedObject.Name", stored.Name),
				HaveField("Type", corev1.EventTypeWarning),
				HaveField("Message", ContainSubstring("without checking the object")))))
		}, 30*time.Second).WithContext(ctx).Should(Succeed())
		Expect(unverified() - before).To(BeNumerically(">=", 1))
		Consistently(func(g Gomega) {
			for _, name := range others {
				_, err := os.Stat(filepath.Join(ckptDir, name))
				g.Expect(err).NotTo(HaveOccurred(), "%s left the node: only the copy had to", name)
			}
		}, 3*time.Second).Should(Succeed())
		Expect(offloadLost(ctx)).To(ConsistOf(lost), "an archive that was not stored was deleted")

		By("the store back: the archive is there, as its Checkpoint says")
		Expect(srv.Restart(ctx)).To(Succeed())
		running = true
		_, stderr, err = env.Kubectl("", "delete", "clustercheckpointquota", "offload-copy")
		Expect(err).NotTo(HaveOccurred(), stderr)
		offloadQuota(ns, "archive", 3)
		Eventually(func(g Gomega) {
			info, err := srv.Client.StatObject(ctx, bucket, stored.Status.Location.Key, minio.StatObjectOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(objstore.RecordedSHA256(ctx, srv.Client, bucket, info)).To(Equal(sums[stored.Spec.Archive.FileName]))
		}, time.Minute).WithContext(ctx).Should(Succeed())
		Expect(filesOf(Default, ns)).To(Equal(onNode))
	})

	It("moves the archives older than offload.after while the limits keep them, and deletes none", func(ctx context.Context) {
		before := len(checkpointsIn(ctx, Default, ns))
		_, stderr, err := env.Kubectl(`apiVersion: checkpointquota.dev/v1alpha1
kind: CheckpointQuota
metadata: {name: aged, namespace: `+ns+`}
spec:
  limits: {total: {checkpoints: 100}}
  offload: {store: archive, after: 1s}
`, "apply", "-f", "-")
		Expect(err).NotTo(HaveOccurred(), stderr)
		Eventually(func(g Gomega) {
			g.Expect(filesOf(g, ns)).To(BeEmpty(), "archives an hour old stay on the node")
			for _, c := range checkpointsIn(ctx, g, ns) {
				g.Expect(c.Status.Location).NotTo(BeNil(), "%s is not stored", c.Name)
			}
		}, 240*time.Second).Should(Succeed())
		Expect(checkpointsIn(ctx, Default, ns)).To(HaveLen(before), "offload.after deleted an archive")
	})

	It("lets no tenant write a store, name one that is not granted to her namespace, or set where an archive is", func(ctx context.Context) {
		other, err := env.CreateNamespace(ctx, "elsewhere")
		Expect(err).NotTo(HaveOccurred())
		alice := newTenant(ctx, other)
		c, err := alice.Client()
		Expect(err).NotTo(HaveOccurred())
		Expect(c.List(ctx, &cqv1.CheckpointStoreList{})).To(beForbidden(), "list CheckpointStores")
		Expect(c.Create(ctx, &cqv1.CheckpointStore{ObjectMeta: metav1.ObjectMeta{Name: "alice"},
			Spec: cqv1.CheckpointStoreSpec{Endpoint: "http://127.0.0.1:1", Bucket: "mine", CredentialsSecret: cqv1.SecretName{Name: "x"}}})).
			To(beForbidden(), "create a CheckpointStore")

		By("a quota of her own that offloads to the store, which admits another namespace only: refused, saying why")
		_, stderr, err := alice.Kubectl(`apiVersion: checkpointquota.dev/v1alpha1
kind: CheckpointQuota
metadata: {name: escape, namespace: `+other+`}
spec:
  limits: {perContainer: {checkpoints: 1}}
  offload: {store: archive}
`, "apply", "-f", "-")
		Expect(err).To(HaveOccurred(), "alice offloads to a store not granted to her namespace")
		Expect(stderr).To(ContainSubstring(`spec.offload.store: Forbidden: CheckpointStore "archive" does not admit namespace "` + other + `"`))

		By("writing a location into a Checkpoint's status: forbidden, only the agent writes it")
		mine := publish(ctx, other, "db-0", "db")
		mine.Status.Location = &cqv1.ArchiveLocation{Store: "archive", Bucket: bucket, Key: "e2e/" + ns + "/app-0/app/x.tar",
			SHA256: strings.Repeat("0", 64), StoredTime: metav1.Now()}
		Expect(c.Status().Update(ctx, mine)).To(beForbidden(), "write a Checkpoint's location")
		mine.Status = cqv1.CheckpointStatus{Offload: &cqv1.OffloadRequest{Store: "archive"}}
		Expect(c.Status().Patch(ctx, mine, client.Merge)).To(beForbidden(), "ask for an offload")
	})
	It("says in the store's status what it holds", func(ctx context.Context) {
		Eventually(func(g Gomega) {
			var st cqv1.CheckpointStore
			g.Expect(env.Client.Get(ctx, client.ObjectKey{Name: "archive"}, &st)).To(Succeed())
			var stored int64
			for _, c := range checkpointsIn(ctx, g, ns) {
				if c.Status.Location != nil {
					stored++
				}
			}
			g.Expect(st.Status.Objects).To(Equal(stored))
			g.Expect(st.Status.Size).NotTo(BeEmpty())
		}, 60*time.Second).Should(Succeed())
	})
})

// firstStored is a stored Checkpoint of ns.
func firstStored(ctx context.Context, ns string) cqv1.Checkpoint {
	GinkgoHelper()
	for _, c := range checkpointsIn(ctx, Default, ns) {
		if c.Status.Location != nil {
			return c
		}
	}
	Fail("no stored Checkpoint in " + ns)
	return cqv1.Checkpoint{}
}

// tarsIn counts the archives in dir.
func tarsIn(g Gomega, dir string) int {
	entries, err := os.ReadDir(dir)
	g.Expect(err).NotTo(HaveOccurred())
	n := 0
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".tar") {
			n++
		}
	}
	return n
}

// offloadLost lists the Checkpoints (namespace/name) that OffloadLost events name.
func offloadLost(ctx context.Context) []string {
	GinkgoHelper()
	var list corev1.EventList
	Expect(env.Client.List(ctx, &list, client.MatchingFields{"reason": "OffloadLost"})).To(Succeed())
	var out []string
	for _, e := range list.Items {
		// "Deleting ns/name from node ..."
		if f := strings.Fields(e.Message); len(f) > 1 && f[0] == "Deleting" {
			out = append(out, f[1])
		}
	}
	return out
}

// removal says how an archive left the node, as its Checkpoint showed right after.
type removal string

const (
	// removedStored: its Checkpoint had a location whose object holds the file's bytes.
	removedStored removal = "stored"
	// removedDeleted: its Checkpoint was gone (pruned).
	removedDeleted removal = "deleted"
)

// watchRemovals polls the namespace's archives on the node until stop is called, and for
// each that leaves, looks at its Checkpoint at once: the agent records the location before
// it removes a file, so a file that left with no location was removed before it was stored.
// stop returns how each left.
func watchRemovals(ctx context.Context, ns string) (stop func() map[string]removal) {
	var mu sync.Mutex
	out := map[string]removal{}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer GinkgoRecover()
		defer close(finished)
		seen := map[string]bool{}
		for {
			now := map[string]bool{}
			for _, f := range filesOf(Default, ns) {
				now[f] = true
			}
			for f := range seen {
				if now[f] {
					continue
				}
				var c cqv1.Checkpoint
				err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: nodeagent.ObjectName(nodeName, ckptDir, f)}, &c)
				what := removal("no location")
				switch {
				case apierrors.IsNotFound(err):
					what = removedDeleted
				case err != nil:
					what = removal("unknown: " + err.Error())
				case c.Status.Location != nil:
					what = removedStored
				}
				mu.Lock()
				out[f] = what
				mu.Unlock()
			}
			seen = now
			select {
			case <-done:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	var once sync.Once
	stop = func() map[string]removal {
		once.Do(func() { close(done) })
		<-finished
		mu.Lock()
		defer mu.Unlock()
		return out
	}
	// A spec that fails before it stops the watch stops it still, before the suite's
	// directories go.
	DeferCleanup(func() { stop() })
	return stop
}

// startStoreServer starts the test bed's S3 server for an Ordered container, skipping it where
// the server is not built, with bucket made and the agent's credentials for it in a Secret
// named secret; all of them go when the container ends.
func startStoreServer(ctx context.Context, bucket, secret string) *s3server.Server {
	GinkgoHelper()
	srv, err := s3server.Start(ctx, GinkgoT().TempDir())
	if errors.Is(err, s3server.ErrUnavailable) {
		Skip(err.Error())
	}
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(srv.Kill)
	Expect(srv.MakeBucket(ctx, bucket)).To(Succeed())
	credentials := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: secret, Namespace: localrun.OrphanNamespace},
		Data: map[string][]byte{cqv1.StoreSecretAccessKeyID: []byte(s3server.AccessKeyID),
			cqv1.StoreSecretSecretAccessKey: []byte(s3server.SecretAccessKey)},
	}
	Expect(env.Client.Create(ctx, credentials)).To(Succeed())
	DeferCleanup(func(ctx context.Context) { _ = env.Client.Delete(ctx, credentials) })
	return srv
}

// grantStore creates, for the container, the CheckpointStore name on srv's bucket under the
// prefix e2e, with the credentials Secret secret, that admits namespace ns.
func grantStore(ctx context.Context, name string, srv *s3server.Server, bucket, secret, ns string) {
	GinkgoHelper()
	store := &cqv1.CheckpointStore{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: cqv1.CheckpointStoreSpec{Endpoint: srv.Endpoint, Bucket: bucket, Prefix: "e2e",
			CredentialsSecret: cqv1.SecretName{Name: secret},
			NamespaceSelector: &cqv1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": ns}}},
	}
	Expect(env.Client.Create(ctx, store)).To(Succeed())
	DeferCleanup(func(ctx context.Context) { _ = env.Client.Delete(ctx, store) })
}

// offloadQuota applies the CheckpointQuota offload of ns: perContainer.checkpoints n, what it
// prunes moved to store.
func offloadQuota(ns, store string, n int) {
	GinkgoHelper()
	_, stderr, err := env.Kubectl(`apiVersion: checkpointquota.dev/v1alpha1
kind: CheckpointQuota
metadata: {name: offload, namespace: `+ns+`}
spec:
  limits: {perContainer: {checkpoints: `+strconv.Itoa(n)+`}}
  offload: {store: `+store+`}
`, "apply", "-f", "-")
	Expect(err).NotTo(HaveOccurred(), stderr)
}

// pluginAs runs the plugin at path as id, and returns what it printed.
func pluginAs(ctx context.Context, path string, id testenv.Identity, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, path, append(append([]string{"--kubeconfig", env.Kubeconfig}, id.KubectlArgs()...), args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// buildPlugin builds the kubectl plugin and returns its path.
func buildPlugin(ctx context.Context) string {
	GinkgoHelper()
	plugin := filepath.Join(GinkgoT().TempDir(), "kubectl-checkpoint_quota")
	build := exec.CommandContext(ctx, "go", "build", "-o", plugin, "./cmd/kubectl-checkpoint_quota")
	build.Dir = testenv.RepoRoot()
	out, err := build.CombinedOutput()
	Expect(err).NotTo(HaveOccurred(), string(out))
	return plugin
}

// metricValue reads one series of a /metrics endpoint, 0 when it is not there.
func metricValue(g Gomega, url, series string) float64 {
	GinkgoHelper()
	resp, err := http.Get(url) //nolint:gosec,noctx // the test's own local endpoint
	g.Expect(err).NotTo(HaveOccurred())
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	g.Expect(err).NotTo(HaveOccurred())
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			g.Expect(err).NotTo(HaveOccurred())
			return f
		}
	}
	return 0
}
