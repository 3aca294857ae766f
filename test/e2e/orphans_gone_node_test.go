package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	"github.com/checkpoint-quota/checkpoint-quota/internal/objstore"
	"github.com/checkpoint-quota/checkpoint-quota/nodeagent"
	"github.com/checkpoint-quota/checkpoint-quota/test/archive"
	"github.com/checkpoint-quota/checkpoint-quota/test/localrun"
	"github.com/checkpoint-quota/checkpoint-quota/test/s3server"
)

// The stored archives of a namespace deleted after the node that stored them is gone for
// good (issue 32, item 3: the orphan rules hold as on nodes): another agent of the same
// store, the suite's, publishes them again as orphans from what their objects record.
var _ = Describe("stored archives of a gone node when their namespace is deleted", Ordered, issue32, func() {
	const (
		bucket = "gone-node"
		store  = "gone-node"
		nodeA  = "e2e-node-gone"
	)
	var (
		srv    *s3server.Server
		ns     string
		dirA   string
		stateA string
		agentA *localrun.Process
		sums   = map[string]string{}
	)
	startA := func() {
		GinkgoHelper()
		Expect(localrun.RegisterNode(context.Background(), env.Client, nodeA)).To(Succeed())
		kubeconfig, err := env.KubeconfigAs(posture.AgentOn(nodeA))
		Expect(err).NotTo(HaveOccurred())
		ports, err := localrun.FreePorts(2)
		Expect(err).NotTo(HaveOccurred())
		// Its sweep is off: the suite's agent ("e2e-node", first by name) sweeps the store.
		agentA = &localrun.Process{Name: "node-agent-gone", Path: agentBinary, Output: logFile("node-agent-gone.log"),
			Args: append(localrun.AgentArgs(kubeconfig, nodeA, dirA, stateA, ports[0], ports[1]),
				"--settle-time=300ms", "--rescan-interval=5s", "--store-check-interval=10s", "--bucket-sweep-interval=-1s")}
		Expect(agentA.Start()).To(Succeed())
	}
	// goneForGood stops node A's agent and takes its node away: the Node, its CheckpointNode,
	// its disk (files and state) with them. It returns what stored.log held.
	goneForGood := func(ctx context.Context) []byte {
		GinkgoHelper()
		Expect(agentA.Stop(10 * time.Second)).To(Succeed())
		storedLog, err := os.ReadFile(filepath.Join(stateA, "stored.log"))
		Expect(err).NotTo(HaveOccurred())
		Expect(os.RemoveAll(stateA)).To(Succeed())
		entries, err := os.ReadDir(dirA)
		Expect(err).NotTo(HaveOccurred())
		for _, e := range entries {
			Expect(os.Remove(filepath.Join(dirA, e.Name()))).To(Succeed())
		}
		Expect(client.IgnoreNotFound(env.Client.Delete(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: nodeA}}))).To(Succeed())
		Expect(client.IgnoreNotFound(env.Client.Delete(ctx, &cqv1.CheckpointNode{ObjectMeta: metav1.ObjectMeta{Name: nodeA}}))).To(Succeed())
		return storedLog
	}
	objects := func(g Gomega, ctx context.Context) []string {
		var keys []string
		for o := range srv.Client.ListObjects(ctx, bucket, minio.ListObjectsOptions{Prefix: "e2e/" + ns + "/", Recursive: true}) {
			g.Expect(o.Err).NotTo(HaveOccurred())
			keys = append(keys, o.Key)
		}
		return keys
	}
	ownerOf := func(g Gomega, ctx context.Context, key string) string {
		info, err := srv.Client.StatObject(ctx, bucket, key, minio.StatObjectOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		return info.Metadata.Get("X-Amz-Meta-" + objstore.MetaUID)
	}

	BeforeAll(func(ctx context.Context) {
		srv = startStoreServer(ctx, bucket, "gone-node-credentials")
		var err error
		ns, err = env.CreateNamespace(ctx, "gonenode")
		Expect(err).NotTo(HaveOccurred())
		grantStore(ctx, store, srv, bucket, "gone-node-credentials", ns)
		offloadQuota(ns, store, 1)
		dirA, stateA = GinkgoT().TempDir(), GinkgoT().TempDir()
		startA()
		DeferCleanup(func(ctx context.Context) {
			_ = agentA.Stop(10 * time.Second)
			for _, c := range orphansOrNot(ctx, Default, localrun.OrphanNamespace, ns) {
				_ = env.Client.Delete(ctx, &c)
			}
			_ = env.Client.Delete(ctx, &cqv1.CheckpointNode{ObjectMeta: metav1.ObjectMeta{Name: nodeA}})
			_ = env.Client.Delete(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: nodeA}})
		})
	})

	It("publishes them again as orphans from their objects' records, gives the objects to them, keeps and reports what records nothing, and deletes an orphan's object with it", func(ctx context.Context) {
		By("node A's agent stores the older of two archives under a limit of one")
		for range 2 {
			uid := createPodOnce(ctx, ns, "db-0", "db")
			archivesWritten++
			at := time.Now().UTC().Add(-time.Hour).Truncate(time.Second).Add(time.Duration(archivesWritten) * time.Second)
			path := archive.New(ns, "db-0", "db").WithUID(uid).At(at).MustWrite(dirA)
			data, err := os.ReadFile(path)
			Expect(err).NotTo(HaveOccurred())
			sum := sha256.Sum256(data)
			sums[filepath.Base(path)] = hex.EncodeToString(sum[:])
		}
		var stored cqv1.Checkpoint
		Eventually(func(g Gomega) {
			var list cqv1.CheckpointList
			g.Expect(env.Client.List(ctx, &list, client.InNamespace(ns))).To(Succeed())
			g.Expect(list.Items).To(HaveLen(2))
			n := 0
			for _, c := range list.Items {
				if c.Status.Location != nil {
					stored, n = c, n+1
				}
			}
			g.Expect(n).To(Equal(1))
			g.Expect(objects(g, ctx)).To(ConsistOf(stored.Status.Location.Key))
		}, 90*time.Second).WithContext(ctx).Should(Succeed())
		Expect(stored.Spec.Archive.NodeName).To(Equal(nodeA))

		By("an object as an older agent stored it: its UID, namespace and file name, no record of the archive")
		oldKey := objstore.Key("e2e", ns, "db-0", "db", "uid-of-an-older-agents-archive")
		body := []byte("an archive\n")
		_, err := srv.Client.PutObject(ctx, bucket, oldKey, bytes.NewReader(body), int64(len(body)), minio.PutObjectOptions{
			UserMetadata: map[string]string{objstore.MetaUID: "uid-of-an-older-agents-archive", objstore.MetaNamespace: ns,
				objstore.MetaFileName: "checkpoint-db-0_" + ns + "-db-2026-12-01T00:00:00Z.tar"}})
		Expect(err).NotTo(HaveOccurred())

		By("node A goes for good, its disk and stored.log with it; then the namespace is deleted")
		storedOfA := goneForGood(ctx)
		Expect(string(storedOfA)).To(ContainSubstring(`"uid":"` + string(stored.UID) + `"`))
		_, stderr, err := env.Kubectl("", "delete", "namespace", ns, "--wait=true", "--timeout=60s")
		Expect(err).NotTo(HaveOccurred(), stderr)

		By("the store's sweeper, the suite's agent, publishes the stored one again as an orphan of the namespace and gives it the object")
		var orphan cqv1.Checkpoint
		Eventually(func(g Gomega) {
			orphans := orphansOrNot(ctx, g, localrun.OrphanNamespace, ns)
			g.Expect(orphans).To(HaveLen(1), "one orphan: the stored archive's")
			orphan = orphans[0]
			g.Expect(orphan.Status.Location).NotTo(BeNil())
			g.Expect(ownerOf(g, ctx, orphan.Status.Location.Key)).To(Equal(string(orphan.UID)), "the object is the orphan's")
		}, 60*time.Second).WithContext(ctx).Should(Succeed())
		want := stored.Spec.Archive.DeepCopy()
		want.OrphanOf = ns
		Expect(orphan.Spec.Archive).To(Equal(want), "the stored Checkpoint's spec.archive, an orphan of its namespace")
		Expect(orphan.Name).To(Equal(stored.Name), "the name every agent gives the archive")
		Expect(orphan.Status.Location.Key).To(Equal(stored.Status.Location.Key))
		Expect(orphan.Status.Location.SHA256).To(Equal(sums[orphan.Spec.Archive.FileName]))
		info, err := srv.Client.StatObject(ctx, bucket, orphan.Status.Location.Key, minio.StatObjectOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(objstore.RecordedSHA256(ctx, srv.Client, bucket, info)).To(Equal(sums[orphan.Spec.Archive.FileName]))

		By("counted in the remote tier: the store's status counts it")
		Eventually(func(g Gomega) int64 {
			var st cqv1.CheckpointStore
			g.Expect(env.Client.Get(ctx, client.ObjectKey{Name: store}, &st)).To(Succeed())
			return st.Status.Objects
		}, 30*time.Second).WithContext(ctx).Should(BeEquivalentTo(1))

		By("the older agent's object is kept and reported on the store")
		Eventually(func(g Gomega) string {
			out, stderr, err := env.Kubectl("", "get", "events", "-A", "--field-selector", "reason="+nodeagent.ReasonUnpublishedArchives, "-o", "jsonpath={.items[*].message}")
			g.Expect(err).NotTo(HaveOccurred(), stderr)
			return out
		}, 30*time.Second).WithContext(ctx).Should(ContainSubstring(oldKey))
		Consistently(func(g Gomega) {
			g.Expect(objects(g, ctx)).To(ConsistOf(orphan.Status.Location.Key, oldKey), "the sweep keeps both")
			g.Expect(orphansOrNot(ctx, g, localrun.OrphanNamespace, ns)).To(HaveLen(1), "one orphan, published once")
			g.Expect(ownerOf(g, ctx, oldKey)).To(Equal("uid-of-an-older-agents-archive"))
		}, 12*time.Second).WithContext(ctx).Should(Succeed())

		By("a tenant of another namespace can neither delete nor change the orphan, nor publish a Checkpoint for the archive")
		mine, err := env.CreateNamespace(ctx, "gonenode-tenant")
		Expect(err).NotTo(HaveOccurred())
		alice := newTenant(ctx, mine)
		for _, args := range [][]string{
			{"delete", "checkpoint", orphan.Name, "-n", localrun.OrphanNamespace},
			{"label", "checkpoint", orphan.Name, "-n", localrun.OrphanNamespace, cqv1.LabelOrphanOf + "=" + mine, "--overwrite"},
		} {
			_, stderr, err := alice.Kubectl("", args...)
			Expect(err).To(HaveOccurred(), "alice: kubectl %v", args)
			Expect(stderr).To(ContainSubstring("forbidden"))
		}
		claim := `{"apiVersion":"checkpointquota.dev/v1alpha1","kind":"Checkpoint","metadata":{"name":"claim"},"spec":{"archive":` +
			`{"nodeName":"` + nodeA + `","directory":"` + dirA + `","fileName":"` + orphan.Spec.Archive.FileName + `","podName":"db-0","containerName":"db","sizeBytes":1,"checkpointTime":"2026-12-07T00:00:00Z"}}}`
		_, stderr, err = alice.Kubectl(claim, "create", "-f", "-")
		Expect(err).To(HaveOccurred(), "alice created a Checkpoint")
		Expect(stderr).To(ContainSubstring("forbidden"))

		By("node A's agent, back with its old stored.log, finds the orphan published and publishes no second one")
		// Not gone for good after all: the same archive published by two agents, one after the other.
		Expect(os.MkdirAll(stateA, 0o700)).To(Succeed())
		Expect(os.WriteFile(filepath.Join(stateA, "stored.log"), storedOfA, 0o600)).To(Succeed())
		startA()
		Eventually(func(g Gomega) []string {
			data, err := os.ReadFile(filepath.Join(stateA, "stored.log"))
			g.Expect(err).NotTo(HaveOccurred())
			return storedUIDs(g, data)
		}, 30*time.Second).WithContext(ctx).ShouldNot(ContainElement(string(stored.UID)), "its entry for the deleted Checkpoint is done")
		Consistently(func(g Gomega) {
			orphans := orphansOrNot(ctx, g, localrun.OrphanNamespace, ns)
			g.Expect(orphans).To(HaveLen(1))
			g.Expect(orphans[0].UID).To(Equal(orphan.UID))
			g.Expect(ownerOf(g, ctx, orphan.Status.Location.Key)).To(Equal(string(orphan.UID)))
		}, 6*time.Second).WithContext(ctx).Should(Succeed())
		goneForGood(ctx)

		By("deleting the orphan deletes its object: no agent of its node is left, the sweep does")
		_, stderr, err = env.Kubectl("", "delete", "checkpoint", orphan.Name, "-n", localrun.OrphanNamespace)
		Expect(err).NotTo(HaveOccurred(), stderr)
		Eventually(func(g Gomega) []string { return objects(g, ctx) }, 30*time.Second).WithContext(ctx).Should(ConsistOf(oldKey))
		Consistently(func(g Gomega) {
			g.Expect(objects(g, ctx)).To(ConsistOf(oldKey), "what records nothing stays")
			g.Expect(orphansOrNot(ctx, g, localrun.OrphanNamespace, ns)).To(BeEmpty(), "the deleted orphan is not published again")
		}, 12*time.Second).WithContext(ctx).Should(Succeed())
		Expect(srv.Client.RemoveObject(ctx, bucket, oldKey, minio.RemoveObjectOptions{})).To(Succeed())
	})
})

// storedUIDs replays an agent's stored.log (a JSON line per archive stored, "put", or
// Checkpoint forgotten, "drop") and returns the UIDs of the Checkpoints it still names.
func storedUIDs(g Gomega, log []byte) []string {
	type key struct{ Namespace, Name string }
	live := map[key]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(log)), "\n") {
		if line == "" {
			continue
		}
		var l struct {
			Put *struct {
				Namespace, Name string
				UID             string `json:"uid"`
			} `json:"put"`
			Drop *key `json:"drop"`
		}
		g.Expect(json.Unmarshal([]byte(line), &l)).To(Succeed(), line)
		switch {
		case l.Put != nil:
			live[key{l.Put.Namespace, l.Put.Name}] = l.Put.UID
		case l.Drop != nil:
			delete(live, *l.Drop)
		}
	}
	uids := make([]string, 0, len(live))
	for _, uid := range live {
		uids = append(uids, uid)
	}
	return uids
}
