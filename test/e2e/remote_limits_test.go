package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"time"

	"github.com/minio/minio-go/v7"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	"github.com/checkpoint-quota/checkpoint-quota/internal/objstore"
	"github.com/checkpoint-quota/checkpoint-quota/test/archive"
	"github.com/checkpoint-quota/checkpoint-quota/test/localrun"
	"github.com/checkpoint-quota/checkpoint-quota/test/s3server"
	"github.com/checkpoint-quota/checkpoint-quota/test/testenv"
)

// remoteLimits with the real manager and agent and a real S3 server: the nodes hold what
// the node limits allow, the store what remoteLimits allow, and nothing else exists.
var _ = Describe("remoteLimits on the stored archives", Ordered, issue32, func() {
	const (
		bucket = "remote"
		store  = "remote-limits"
		prefix = "rl"
	)
	var (
		srv *s3server.Server
		// sums holds each archive's SHA-256 by file name, taken as soon as it was written.
		sums = map[string]string{}
	)
	BeforeAll(func(ctx context.Context) {
		srv = startStoreServer(ctx, bucket, "remote-limits-credentials")
		st := &cqv1.CheckpointStore{
			ObjectMeta: metav1.ObjectMeta{Name: store},
			Spec: cqv1.CheckpointStoreSpec{Endpoint: srv.Endpoint, Bucket: bucket, Prefix: prefix,
				CredentialsSecret: cqv1.SecretName{Name: "remote-limits-credentials"},
				NamespaceSelector: &cqv1.LabelSelector{MatchLabels: map[string]string{"remote-limits": "granted"}}},
		}
		Expect(env.Client.Create(ctx, st)).To(Succeed())
		DeferCleanup(func(ctx context.Context) { _ = env.Client.Delete(ctx, st) })
	})

	// write writes an archive of pod/container in ns and notes its SHA-256 before anything
	// can move it.
	write := func(ctx context.Context, ns, pod, container string) {
		GinkgoHelper()
		uid := createPodOnce(ctx, ns, pod, container)
		archivesWritten++
		at := time.Now().UTC().Add(-time.Hour).Truncate(time.Second).Add(time.Duration(archivesWritten) * time.Second)
		path := archive.New(ns, pod, container).WithUID(uid).At(at).MustWrite(ckptDir)
		data, err := os.ReadFile(path)
		Expect(err).NotTo(HaveOccurred())
		sum := sha256.Sum256(data)
		sums[filepath.Base(path)] = hex.EncodeToString(sum[:])
	}
	// objects lists the keys the store holds for a namespace.
	objects := func(g Gomega, ctx context.Context, ns string) []string {
		var keys []string
		for o := range srv.Client.ListObjects(ctx, bucket, minio.ListObjectsOptions{Prefix: prefix + "/" + ns + "/", Recursive: true}) {
			g.Expect(o.Err).NotTo(HaveOccurred())
			keys = append(keys, o.Key)
		}
		sort.Strings(keys)
		return keys
	}
	// tiers checks where the archives of ns are: the newest onNode files on the node, the
	// next stored ones in the store, each object's bytes and metadata with the SHA-256 of
	// the file it came from, and nothing else: no other file, object or Checkpoint. written
	// are the file names of ns, oldest first.
	tiers := func(g Gomega, ctx context.Context, ns string, written []string, onNode, stored int) {
		g.Expect(filesOf(g, ns)).To(Equal(written[len(written)-onNode:]), "the node holds the newest %d", onNode)
		var keys, storedFiles []string
		cps := checkpointsIn(ctx, g, ns)
		for _, c := range cps {
			loc := c.Status.Location
			if loc == nil {
				continue
			}
			storedFiles = append(storedFiles, c.Spec.Archive.FileName)
			info, err := srv.Client.StatObject(ctx, bucket, loc.Key, minio.StatObjectOptions{})
			g.Expect(err).NotTo(HaveOccurred(), "the object of %s", c.Name)
			g.Expect(objstore.RecordedSHA256(ctx, srv.Client, bucket, info)).To(Equal(sums[c.Spec.Archive.FileName]), "the SHA-256 the object records")
			obj, err := srv.Client.GetObject(ctx, bucket, loc.Key, minio.GetObjectOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			h := sha256.New()
			_, err = io.Copy(h, obj)
			_ = obj.Close()
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(hex.EncodeToString(h.Sum(nil))).To(Equal(sums[c.Spec.Archive.FileName]), "the stored bytes of %s are its file's", c.Name)
			keys = append(keys, loc.Key)
		}
		sort.Strings(keys)
		sort.Strings(storedFiles)
		g.Expect(storedFiles).To(ConsistOf(written[len(written)-onNode-stored:len(written)-onNode]), "the store holds the next newest %d", stored)
		g.Expect(objects(g, ctx, ns)).To(Equal(keys), "the store holds exactly the stored archives' objects")
		g.Expect(cps).To(HaveLen(onNode+stored), "no Checkpoint of an archive that is nowhere")
	}
	// writtenIn lists the files written for ns, oldest first.
	writtenIn := func(ns string) []string {
		var out []string
		for name := range sums {
			if matched, _ := filepath.Match("checkpoint-*_"+ns+"-*.tar", name); matched {
				out = append(out, name)
			}
		}
		sort.Strings(out)
		return out
	}
	quotaOf := func(g Gomega, ctx context.Context, ns, name string) *cqv1.CheckpointQuota {
		q := &cqv1.CheckpointQuota{}
		g.Expect(env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, q)).To(Succeed())
		return q
	}

	// granted creates a namespace that the store admits, with a CheckpointQuota name that keeps
	// perContainer archives of each container on the node, moves the rest, and keeps remote of
	// them in the store.
	granted := func(ctx context.Context, prefix, name string, perContainer, remote int) string {
		GinkgoHelper()
		ns, err := env.CreateNamespace(ctx, prefix)
		Expect(err).NotTo(HaveOccurred())
		_, stderr, err := env.Kubectl("", "label", "namespace", ns, "remote-limits=granted")
		Expect(err).NotTo(HaveOccurred(), stderr)
		// The webhook reads the namespace's labels from the manager's cache: it may see the
		// grant a moment after the label.
		Eventually(func() error {
			_, stderr, err := env.Kubectl(fmt.Sprintf(`apiVersion: checkpointquota.dev/v1alpha1
kind: CheckpointQuota
metadata: {name: %s, namespace: %s}
spec:
  limits: {perContainer: {checkpoints: %d}}
  offload: {store: %s}
  remoteLimits: {perContainer: {checkpoints: %d}}
`, name, ns, perContainer, store, remote), "apply", "-f", "-")
			if err != nil {
				return errors.New(stderr)
			}
			return nil
		}).Should(Succeed())
		return ns
	}

	It("keeps on the node what the limits allow, in the store what remoteLimits allow, and nothing else anywhere", func(ctx context.Context) {
		ns := granted(ctx, "remote", "tiers", 2, 3)
		for range 9 {
			write(ctx, ns, "app-0", "app")
			time.Sleep(200 * time.Millisecond)
		}
		written := writtenIn(ns)
		Eventually(tiers, 120*time.Second).WithContext(ctx).WithArguments(ns, written, 2, 3).Should(Succeed())
		Consistently(tiers, 5*time.Second).WithContext(ctx).WithArguments(ns, written, 2, 3).Should(Succeed())

		By("the quota's status shows the stored usage beside the node usage")
		Eventually(func(g Gomega) {
			st := quotaOf(g, ctx, ns, "tiers").Status
			g.Expect(st.Summary.Checkpoints).To(Equal("2/2"))
			g.Expect(st.Summary.Remote).To(HavePrefix("3/3, "))
			g.Expect(st.Pruned.Checkpoints).To(BeEquivalentTo(4), "four archives deleted from the store")
		}).WithContext(ctx).Should(Succeed())
		out, stderr, err := env.Kubectl("", "get", "checkpointquotas", "-n", ns)
		Expect(err).NotTo(HaveOccurred(), stderr)
		Expect(out).To(MatchRegexp(`STORED`))
		Expect(out).To(MatchRegexp(`tiers +2/2 +\S+ +3/3, \S+`))
		out, stderr, err = env.Kubectl("", "describe", "checkpointquota", "tiers", "-n", ns)
		Expect(err).NotTo(HaveOccurred(), stderr)
		Expect(out).To(MatchRegexp(`remoteLimits\.perContainer\.checkpoints +3 +3 +` + ns + `/app-0/app +in force`))

		By("kubectl checkpoint-quota explain of a stored archive names the remote limit it counts against")
		plugin := filepath.Join(GinkgoT().TempDir(), "kubectl-checkpoint_quota")
		build := exec.CommandContext(ctx, "go", "build", "-o", plugin, "./cmd/kubectl-checkpoint_quota")
		build.Dir = testenv.RepoRoot()
		built, err := build.CombinedOutput()
		Expect(err).NotTo(HaveOccurred(), string(built))
		var storedName string
		for _, c := range checkpointsIn(ctx, Default, ns) {
			if c.Status.Location != nil {
				storedName = c.Name
			}
		}
		explained, err := exec.CommandContext(ctx, plugin, "--kubeconfig", env.Kubeconfig, "-n", ns, "explain", storedName).CombinedOutput()
		Expect(err).NotTo(HaveOccurred(), string(explained))
		Expect(string(explained)).To(ContainSubstring("in CheckpointStore " + store))
		Expect(string(explained)).To(MatchRegexp(`remoteLimits\.perContainer\.checkpoints +3 from CheckpointQuota ` + ns + `/tiers`))
	})

	It("deletes from its node, uploading nothing, an archive that remoteLimits would prune from the store as soon as it arrived", func(ctx context.Context) {
		ns := granted(ctx, "arrival", "arrival", 1, 2)
		for range 3 {
			write(ctx, ns, "app-0", "app")
			time.Sleep(200 * time.Millisecond)
		}
		Eventually(tiers, 120*time.Second).WithContext(ctx).WithArguments(ns, writtenIn(ns), 1, 2).Should(Succeed())
		keys := objects(Default, ctx, ns)
		// Every object the store holds for the namespace from now on, however briefly.
		watch, stop := context.WithCancel(ctx)
		seen := make(chan []string, 1)
		go func() {
			defer GinkgoRecover()
			all := map[string]bool{}
			for watch.Err() == nil {
				for o := range srv.Client.ListObjects(watch, bucket, minio.ListObjectsOptions{Prefix: prefix + "/" + ns + "/", Recursive: true}) {
					if o.Err == nil {
						all[o.Key] = true
					}
				}
				time.Sleep(20 * time.Millisecond)
			}
			seen <- slices.Sorted(maps.Keys(all))
		}()

		By("an archive older than both stored ones, which the remote limit would delete at once: gone from the node, never uploaded")
		uid := createPodOnce(ctx, ns, "app-0", "app")
		path := archive.New(ns, "app-0", "app").WithUID(uid).At(time.Now().UTC().Add(-3 * time.Hour).Truncate(time.Second)).MustWrite(ckptDir)
		data, err := os.ReadFile(path)
		Expect(err).NotTo(HaveOccurred())
		sum := sha256.Sum256(data)
		sums[filepath.Base(path)] = hex.EncodeToString(sum[:])
		Eventually(func(g Gomega) {
			g.Expect(filesOf(g, ns)).NotTo(ContainElement(filepath.Base(path)))
			tiers(g, ctx, ns, writtenIn(ns), 1, 2)
		}, 60*time.Second).WithContext(ctx).Should(Succeed())
		Eventually(func(g Gomega) []string {
			var list corev1.EventList
			g.Expect(env.Client.List(ctx, &list, client.InNamespace(ns), client.MatchingFields{"reason": cqv1.ReasonPruned})).To(Succeed())
			var out []string
			for _, e := range list.Items {
				out = append(out, e.Message)
			}
			return out
		}, 30*time.Second).WithContext(ctx).Should(ContainElement(MatchRegexp(
			`^Pruned 1 checkpoint \(\S+\) of ` + ns + `/app-0/app: remoteLimits\.perContainer\.checkpoints 3/2 once stored: deleted from its node instead of moved to CheckpointStore ` + store + `$`)))
		Consistently(func(g Gomega) {
			tiers(g, ctx, ns, writtenIn(ns), 1, 2)
			g.Expect(objects(g, ctx, ns)).To(Equal(keys), "the stored archives stay")
		}, 3*time.Second).WithContext(ctx).Should(Succeed())
		stop()
		Expect(<-seen).To(Equal(keys), "no object was written for it")
		Consistently(func(g Gomega) []corev1.Event {
			var offloaded corev1.EventList
			g.Expect(env.Client.List(ctx, &offloaded, client.InNamespace(ns), client.MatchingFields{"reason": "Offloaded"})).To(Succeed())
			return offloaded.Items
		}, 2*time.Second).Should(HaveLen(2), "two archives moved, the two stored")
		Eventually(func(g Gomega) {
			g.Expect(quotaOf(g, ctx, ns, "arrival").Status.Pruned.Checkpoints).To(BeEquivalentTo(1))
		}, 30*time.Second).WithContext(ctx).Should(Succeed())
	})

	It("lets a namespace editor neither raise remote limits above the cluster's nor make the manager delete another namespace's stored archives", func(ctx context.Context) {
		mine, err := env.CreateNamespace(ctx, "remote-tenant")
		Expect(err).NotTo(HaveOccurred())
		theirs, err := env.CreateNamespace(ctx, "remote-neighbour")
		Expect(err).NotTo(HaveOccurred())
		for _, ns := range []string{mine, theirs} {
			_, stderr, err := env.Kubectl("", "label", "namespace", ns, "remote-tenants=spec")
			Expect(err).NotTo(HaveOccurred(), stderr)
		}
		// The cluster admin's quota: one archive per container on the node, the rest
		// moved to the store, which keeps two per namespace.
		_, stderr, err := env.Kubectl(`apiVersion: checkpointquota.dev/v1alpha1
kind: ClusterCheckpointQuota
metadata: {name: remote-tenants}
spec:
  namespaceSelector: {matchLabels: {remote-tenants: spec}}
  limits: {perContainer: {checkpoints: 1}}
  offload: {store: `+store+`}
  remoteLimits: {perNamespace: {checkpoints: 2}}
`, "apply", "-f", "-")
		Expect(err).NotTo(HaveOccurred(), stderr)
		DeferCleanup(func(ctx context.Context) {
			_ = env.Client.Delete(ctx, &cqv1.ClusterCheckpointQuota{ObjectMeta: metav1.ObjectMeta{Name: "remote-tenants"}})
		})
		for range 4 {
			write(ctx, mine, "web-0", "web")
			write(ctx, theirs, "web-0", "web")
			time.Sleep(200 * time.Millisecond)
		}
		Eventually(tiers, 120*time.Second).WithContext(ctx).WithArguments(mine, writtenIn(mine), 1, 2).Should(Succeed())
		Eventually(tiers, 60*time.Second).WithContext(ctx).WithArguments(theirs, writtenIn(theirs), 1, 2).Should(Succeed())
		theirObjects := objects(Default, ctx, theirs)

		alice := newTenant(ctx, mine)
		By("raising her namespace's remote limit above the cluster's: warned, capped, nothing more kept")
		_, stderr, err = alice.Kubectl(`apiVersion: checkpointquota.dev/v1alpha1
kind: CheckpointQuota
metadata: {name: more, namespace: `+mine+`}
spec:
  remoteLimits: {total: {checkpoints: 100}}
`, "apply", "-f", "-")
		Expect(err).NotTo(HaveOccurred(), stderr)
		Expect(stderr).To(ContainSubstring("Warning: spec.remoteLimits.total.checkpoints: capped by ClusterCheckpointQuota remote-tenants at 2, the cluster's ceiling"))
		write(ctx, mine, "web-0", "web")
		Eventually(tiers, 60*time.Second).WithContext(ctx).WithArguments(mine, writtenIn(mine), 1, 2).Should(Succeed())
		Eventually(func(g Gomega) {
			st := quotaOf(g, ctx, mine, "more").Status
			g.Expect(st.Hard).To(HaveKeyWithValue("remoteLimits.total.checkpoints", resource.MustParse("2")))
			g.Expect(st.EffectivePolicy).To(ContainElement(SatisfyAll(
				HaveField("Limit", "remoteLimits.total.checkpoints"), HaveField("State", cqv1.LimitCapped),
				HaveField("CappedBy", "ClusterCheckpointQuota remote-tenants"))))
		}).WithContext(ctx).Should(Succeed())

		By("a quota in the neighbour's namespace: forbidden")
		_, stderr, err = alice.Kubectl(`apiVersion: checkpointquota.dev/v1alpha1
kind: CheckpointQuota
metadata: {name: theirs, namespace: `+theirs+`}
spec:
  remoteLimits: {total: {checkpoints: 0}}
`, "apply", "-n", theirs, "-f", "-")
		Expect(err).To(HaveOccurred(), "alice wrote a quota in another namespace")
		Expect(stderr).To(ContainSubstring("forbidden"))

		By("remoteLimits of 0 in her own namespace, naming the neighbour's pod: only her own stored archives go")
		_, stderr, err = alice.Kubectl(`apiVersion: checkpointquota.dev/v1alpha1
kind: CheckpointQuota
metadata: {name: none, namespace: `+mine+`}
spec:
  target: {podNames: [web-0]}
  remoteLimits: {total: {checkpoints: 0}}
`, "apply", "-f", "-")
		Expect(err).NotTo(HaveOccurred(), stderr)
		Eventually(tiers, 60*time.Second).WithContext(ctx).WithArguments(mine, writtenIn(mine), 1, 0).Should(Succeed())
		Consistently(func(g Gomega) {
			tiers(g, ctx, theirs, writtenIn(theirs), 1, 2)
			g.Expect(objects(g, ctx, theirs)).To(Equal(theirObjects))
		}, 5*time.Second).WithContext(ctx).Should(Succeed())

		By("her next archive, which her remoteLimits of 0 would delete at once, goes from the node unstored; the neighbour's moves as before")
		offloaded := func(g Gomega, ns string) int {
			var list corev1.EventList
			g.Expect(env.Client.List(ctx, &list, client.InNamespace(ns), client.MatchingFields{"reason": "Offloaded"})).To(Succeed())
			return len(list.Items)
		}
		hers, neighbours := offloaded(Default, mine), offloaded(Default, theirs)
		write(ctx, mine, "web-0", "web")
		write(ctx, theirs, "web-0", "web")
		Eventually(tiers, 60*time.Second).WithContext(ctx).WithArguments(mine, writtenIn(mine), 1, 0).Should(Succeed())
		Eventually(tiers, 60*time.Second).WithContext(ctx).WithArguments(theirs, writtenIn(theirs), 1, 2).Should(Succeed())
		// Events are sent in the background: the neighbour's says when hers would have been sent too.
		Eventually(offloaded, 10*time.Second).WithArguments(theirs).Should(Equal(neighbours+1), "the neighbour's archive was not moved")
		Expect(offloaded(Default, mine)).To(Equal(hers), "an archive of hers was uploaded that her remoteLimits delete at once")
		Expect(objects(Default, ctx, theirs)).NotTo(Equal(theirObjects), "the neighbour's newest stored archive pushes out its oldest")
	})
	It("deletes a stored orphan's object under orphans: Delete as on nodes; a tenant's rule reaches only her namespace", func(ctx context.Context) {
		mine, err := env.CreateNamespace(ctx, "orphan-tenant")
		Expect(err).NotTo(HaveOccurred())
		theirs, err := env.CreateNamespace(ctx, "orphan-neighbour")
		Expect(err).NotTo(HaveOccurred())
		for _, ns := range []string{mine, theirs} {
			_, stderr, err := env.Kubectl("", "label", "namespace", ns, "stored-orphans=spec")
			Expect(err).NotTo(HaveOccurred(), stderr)
		}
		// The cluster admin's quota keeps one archive per container on the node and moves
		// the rest; its orphans are Retain (the default).
		_, stderr, err := env.Kubectl(`apiVersion: checkpointquota.dev/v1alpha1
kind: ClusterCheckpointQuota
metadata: {name: stored-orphans}
spec:
  namespaceSelector: {matchLabels: {stored-orphans: spec}}
  limits: {perContainer: {checkpoints: 1}}
  offload: {store: `+store+`}
`, "apply", "-f", "-")
		Expect(err).NotTo(HaveOccurred(), stderr)
		DeferCleanup(func(ctx context.Context) {
			_ = env.Client.Delete(ctx, &cqv1.ClusterCheckpointQuota{ObjectMeta: metav1.ObjectMeta{Name: "stored-orphans"}})
		})
		for range 3 {
			write(ctx, mine, "job-0", "job")
			write(ctx, theirs, "job-0", "job")
			time.Sleep(200 * time.Millisecond)
		}
		Eventually(tiers, 120*time.Second).WithContext(ctx).WithArguments(mine, writtenIn(mine), 1, 2).Should(Succeed())
		Eventually(tiers, 60*time.Second).WithContext(ctx).WithArguments(theirs, writtenIn(theirs), 1, 2).Should(Succeed())
		theirObjects := objects(Default, ctx, theirs)
		Expect(theirObjects).To(HaveLen(2))

		By("alice, an editor of her namespace, deletes its orphans after 5s; the pods of both namespaces go")
		alice := newTenant(ctx, mine)
		_, stderr, err = alice.Kubectl(`apiVersion: checkpointquota.dev/v1alpha1
kind: CheckpointQuota
metadata: {name: orphans, namespace: `+mine+`}
spec:
  orphans: {policy: Delete, gracePeriod: 5s}
`, "apply", "-f", "-")
		Expect(err).NotTo(HaveOccurred(), stderr)
		_, stderr, err = alice.Kubectl(`apiVersion: checkpointquota.dev/v1alpha1
kind: CheckpointQuota
metadata: {name: orphans, namespace: `+theirs+`}
spec:
  orphans: {policy: Delete, gracePeriod: 0s}
`, "apply", "-n", theirs, "-f", "-")
		Expect(err).To(HaveOccurred(), "alice wrote a quota in another namespace")
		Expect(stderr).To(ContainSubstring("forbidden"))
		for _, ns := range []string{mine, theirs} {
			Expect(env.Client.Delete(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "job-0"}})).To(Succeed())
		}

		By("her stored orphans' objects go with their Checkpoints and the file on the node; the neighbour's stay")
		Eventually(func(g Gomega) {
			g.Expect(filesOf(g, mine)).To(BeEmpty(), "no file on the node")
			g.Expect(checkpointsIn(ctx, g, mine)).To(BeEmpty(), "no Checkpoint")
			g.Expect(objects(g, ctx, mine)).To(BeEmpty(), "no object in the store")
		}, 60*time.Second).WithContext(ctx).Should(Succeed())
		Consistently(func(g Gomega) {
			tiers(g, ctx, theirs, writtenIn(theirs), 1, 2)
			g.Expect(objects(g, ctx, theirs)).To(Equal(theirObjects))
		}, 5*time.Second).WithContext(ctx).Should(Succeed())
		Eventually(func(g Gomega) {
			q := quotaOf(g, ctx, mine, "orphans")
			g.Expect(q.Status.Pruned.Checkpoints).To(BeEquivalentTo(3), "the one on the node and the two stored")
		}).WithContext(ctx).Should(Succeed())
	})
	It("sweeps from the bucket the objects that no Checkpoint stands for, as a gone node's, and nothing else", func(ctx context.Context) {
		ns, err := env.CreateNamespace(ctx, "sweep")
		Expect(err).NotTo(HaveOccurred())
		_, stderr, err := env.Kubectl("", "label", "namespace", ns, "bucket-sweep=spec")
		Expect(err).NotTo(HaveOccurred(), stderr)
		_, stderr, err = env.Kubectl(`apiVersion: checkpointquota.dev/v1alpha1
kind: ClusterCheckpointQuota
metadata: {name: bucket-sweep}
spec:
  namespaceSelector: {matchLabels: {bucket-sweep: spec}}
  limits: {perContainer: {checkpoints: 1}}
  offload: {store: `+store+`}
`, "apply", "-f", "-")
		Expect(err).NotTo(HaveOccurred(), stderr)
		DeferCleanup(func(ctx context.Context) {
			_ = env.Client.Delete(ctx, &cqv1.ClusterCheckpointQuota{ObjectMeta: metav1.ObjectMeta{Name: "bucket-sweep"}})
		})
		for range 2 {
			write(ctx, ns, "job-0", "job")
			time.Sleep(200 * time.Millisecond)
		}
		Eventually(tiers, 120*time.Second).WithContext(ctx).WithArguments(ns, writtenIn(ns), 1, 1).Should(Succeed())
		live := objects(Default, ctx, ns)

		By("objects as a node gone for good leaves them: its Checkpoint deleted, no agent to delete the object")
		put := func(key string, meta map[string]string) {
			body := []byte("an archive\n")
			_, err := srv.Client.PutObject(ctx, bucket, key, bytes.NewReader(body), int64(len(body)), minio.PutObjectOptions{UserMetadata: meta})
			Expect(err).NotTo(HaveOccurred())
		}
		gone := objstore.Key(prefix, ns, "job-0", "job", "uid-of-a-checkpoint-of-a-gone-node")
		put(gone, map[string]string{objstore.MetaUID: "uid-of-a-checkpoint-of-a-gone-node"})
		// Not an agent's: the UID in its key is not in its metadata.
		foreign := objstore.Key(prefix, ns, "job-0", "job", "uid-of-nothing")
		put(foreign, nil)
		// Outside the store's prefix: not the store's.
		outside := objstore.Key("elsewhere", ns, "job-0", "job", "uid-outside")
		put(outside, map[string]string{objstore.MetaUID: "uid-outside"})

		Eventually(func(g Gomega) []string { return objects(g, ctx, ns) }, 60*time.Second).WithContext(ctx).Should(
			ConsistOf(append(slices.Clone(live), foreign)), "the gone node's object is swept, the rest stay")
		Consistently(func(g Gomega) {
			g.Expect(filesOf(g, ns)).To(Equal(writtenIn(ns)[1:]), "the newest stays on the node")
			g.Expect(checkpointsIn(ctx, g, ns)).To(HaveLen(2))
			g.Expect(objects(g, ctx, ns)).To(ConsistOf(append(slices.Clone(live), foreign)))
			_, err := srv.Client.StatObject(ctx, bucket, outside, minio.StatObjectOptions{})
			g.Expect(err).NotTo(HaveOccurred(), "the object outside the prefix stays")
		}, 12*time.Second).WithContext(ctx).Should(Succeed())
	})
	It("keeps a deleted namespace's stored archives as orphans, their objects given to the orphans' Checkpoints", func(ctx context.Context) {
		ns, err := env.CreateNamespace(ctx, "deleted")
		Expect(err).NotTo(HaveOccurred())
		_, stderr, err := env.Kubectl("", "label", "namespace", ns, "stored-deleted=spec")
		Expect(err).NotTo(HaveOccurred(), stderr)
		_, stderr, err = env.Kubectl(`apiVersion: checkpointquota.dev/v1alpha1
kind: ClusterCheckpointQuota
metadata: {name: stored-deleted}
spec:
  namespaceSelector: {matchLabels: {stored-deleted: spec}}
  limits: {perContainer: {checkpoints: 1}}
  offload: {store: `+store+`}
`, "apply", "-f", "-")
		Expect(err).NotTo(HaveOccurred(), stderr)
		DeferCleanup(func(ctx context.Context) {
			_ = env.Client.Delete(ctx, &cqv1.ClusterCheckpointQuota{ObjectMeta: metav1.ObjectMeta{Name: "stored-deleted"}})
		})
		for range 3 {
			write(ctx, ns, "db-0", "db")
			time.Sleep(200 * time.Millisecond)
		}
		written := writtenIn(ns)
		Eventually(tiers, 120*time.Second).WithContext(ctx).WithArguments(ns, written, 1, 2).Should(Succeed())
		keys := objects(Default, ctx, ns)

		By("deleting the namespace: its stored archives become orphans in the agent's namespace, as the one on the node does")
		_, stderr, err = env.Kubectl("", "delete", "namespace", ns, "--wait=true", "--timeout=60s")
		Expect(err).NotTo(HaveOccurred(), stderr)
		var stored []cqv1.Checkpoint
		Eventually(func(g Gomega) {
			orphans := orphansOrNot(ctx, g, localrun.OrphanNamespace, ns)
			g.Expect(orphans).To(HaveLen(3), "the two stored and the one on the node")
			stored = stored[:0]
			var storedKeys []string
			for _, c := range orphans {
				if c.Status.Location == nil {
					continue
				}
				stored = append(stored, c)
				storedKeys = append(storedKeys, c.Status.Location.Key)
				g.Expect(c.Spec.Archive.OrphanOf).To(Equal(ns))
				info, err := srv.Client.StatObject(ctx, bucket, c.Status.Location.Key, minio.StatObjectOptions{})
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(info.Metadata.Get("X-Amz-Meta-"+objstore.MetaUID)).To(Equal(string(c.UID)), "the object is the orphan's")
				g.Expect(objstore.RecordedSHA256(ctx, srv.Client, bucket, info)).To(Equal(sums[c.Spec.Archive.FileName]), "the SHA-256 the object records")
			}
			g.Expect(storedKeys).To(ConsistOf(keys), "the same objects, nothing deleted")
		}, 60*time.Second).WithContext(ctx).Should(Succeed())
		Consistently(func(g Gomega) []string { return objects(g, ctx, ns) }, 12*time.Second).WithContext(ctx).Should(Equal(keys),
			"the bucket sweep leaves them: they have Checkpoints")
		Expect(filesOf(Default, ns)).To(Equal(written[2:]))

		By("a tenant of another namespace can neither see nor delete them")
		mine, err := env.CreateNamespace(ctx, "deleted-tenant")
		Expect(err).NotTo(HaveOccurred())
		alice := newTenant(ctx, mine)
		_, stderr, err = alice.Kubectl("", "delete", "checkpoint", stored[0].Name, "-n", localrun.OrphanNamespace)
		Expect(err).To(HaveOccurred(), "alice deleted an orphan in the agent's namespace")
		Expect(stderr).To(ContainSubstring("forbidden"))

		By("deleting an orphan deletes its object, as for any stored archive")
		_, stderr, err = env.Kubectl("", "delete", "checkpoint", stored[0].Name, "-n", localrun.OrphanNamespace)
		Expect(err).NotTo(HaveOccurred(), stderr)
		Eventually(func(g Gomega) []string { return objects(g, ctx, ns) }, 30*time.Second).WithContext(ctx).Should(
			ConsistOf(stored[1].Status.Location.Key))
		DeferCleanup(func(ctx context.Context) {
			for _, c := range orphansOrNot(ctx, Default, localrun.OrphanNamespace, ns) {
				_ = env.Client.Delete(ctx, &c)
			}
		})
	})
})
