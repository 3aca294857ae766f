package nodeagent_test

import (
	"errors"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/minio/minio-go/v7"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/rand"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	"github.com/checkpoint-quota/checkpoint-quota/internal/objstore"
	"github.com/checkpoint-quota/checkpoint-quota/nodeagent"
	"github.com/checkpoint-quota/checkpoint-quota/test/s3server"
)

// zeros4KiB is the SHA-256 of the archives store writes: 4 KiB of zeros.
const zeros4KiB = "ad7facb2586fc6e966c004d7d1d16b024f5805ff7cb47c7a85dabd8b48892ca7"

// The stored archives of a namespace deleted after their node went for good: the store's
// sweeper publishes each again as an orphan from what its object records. Two sweepers at
// once publish one orphan per archive, and a publication cut short at any step is finished
// (docs/offload.md, "Orphans in the store").
var _ = Describe("the sweep publishing a gone node's stored archives", Ordered, func() {
	const (
		bucket    = "orphans"
		storeName = "sweep-orphans"
		prefix    = "p"
	)
	var (
		srv *s3server.Server
		st  *objstore.Store
		// goneNode stored the archives; it has no Node: it is gone for good.
		goneNode = "gone-" + rand.String(6)
	)
	BeforeAll(func() {
		var err error
		srv, err = s3server.Start(ctx, GinkgoT().TempDir())
		if errors.Is(err, s3server.ErrUnavailable) {
			Skip(err.Error())
		}
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(srv.Kill)
		Expect(srv.MakeBucket(ctx, bucket)).To(Succeed())
		secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: storeName, Namespace: orphanNamespace},
			Data: map[string][]byte{cqv1.StoreSecretAccessKeyID: []byte(s3server.AccessKeyID), cqv1.StoreSecretSecretAccessKey: []byte(s3server.SecretAccessKey)}}
		Expect(env.Client.Create(ctx, secret)).To(Succeed())
		spec := cqv1.CheckpointStoreSpec{Endpoint: srv.Endpoint, Bucket: bucket, Prefix: prefix, CredentialsSecret: cqv1.SecretName{Name: storeName}}
		Expect(env.Client.Create(ctx, &cqv1.CheckpointStore{ObjectMeta: metav1.ObjectMeta{Name: storeName}, Spec: spec})).To(Succeed())
		st, err = objstore.New(objstore.Config{Spec: spec, AccessKeyID: s3server.AccessKeyID, SecretAccessKey: s3server.SecretAccessKey})
		Expect(err).NotTo(HaveOccurred())
	})

	// store uploads an archive of pod in namespace ns from the gone node as its agent did,
	// and returns the Checkpoint it was stored for (deleted with its namespace: ns is never
	// created here) and its key.
	store := func(ns, pod string) (*cqv1.Checkpoint, string) {
		GinkgoHelper()
		c := &cqv1.Checkpoint{ObjectMeta: metav1.ObjectMeta{Namespace: ns, UID: types.UID("uid-" + rand.String(10))}}
		file := "checkpoint-" + pod + "_" + ns + "-db-2026-12-07T05:00:00Z.tar"
		c.Spec.Archive = &cqv1.ArchiveSource{NodeName: goneNode, Directory: "/var/lib/kubelet/checkpoints", FileName: file,
			PodName: pod, PodUID: types.UID("pod-" + rand.String(8)), ContainerName: "db", SizeBytes: 4096, Size: "4Ki",
			CheckpointTime: metav1.NewTime(time.Date(2026, 12, 7, 5, 0, 0, 0, time.UTC)), Runtime: "cri-o", Image: "registry.example/db"}
		path := filepath.Join(GinkgoT().TempDir(), file)
		Expect(os.WriteFile(path, make([]byte, 4096), 0o600)).To(Succeed())
		f, err := os.Open(path)
		Expect(err).NotTo(HaveOccurred())
		defer func() { _ = f.Close() }()
		key, err := objstore.KeyOf(cqv1.CheckpointStoreSpec{Prefix: prefix}, c)
		Expect(err).NotTo(HaveOccurred())
		_, err = st.Upload(ctx, key, objstore.Archive{File: f, Size: 4096, UID: c.UID, Namespace: ns, FileName: file, Record: objstore.RecordOf(c)})
		Expect(err).NotTo(HaveOccurred())
		return c, key
	}
	// sweep sweeps once as the agent of node, with the agent's permissions and identity.
	sweep := func(node string) (published, kept, deleted int, err error) {
		cfg := *env.Config
		cfg.Impersonate = agentOn(node)
		c, err := client.New(&cfg, client.Options{Scheme: nodeagent.Scheme})
		Expect(err).NotTo(HaveOccurred())
		return nodeagent.SweepOnce(ctx, c, env.Client, nodeagent.Config{NodeName: node, OrphanNamespace: orphanNamespace}, storeName)
	}
	orphansOf := func(ns string) []cqv1.Checkpoint {
		GinkgoHelper()
		var list cqv1.CheckpointList
		Expect(env.Client.List(ctx, &list, client.InNamespace(orphanNamespace), client.MatchingLabels{cqv1.LabelOrphanOf: ns})).To(Succeed())
		return list.Items
	}
	ownerOf := func(key string) types.UID {
		GinkgoHelper()
		info, err := srv.Client.StatObject(ctx, bucket, key, minio.StatObjectOptions{})
		Expect(err).NotTo(HaveOccurred())
		return types.UID(info.Metadata.Get("X-Amz-Meta-" + objstore.MetaUID))
	}
	// expectPublished checks that each stored Checkpoint has one orphan with its archive, its
	// key as location, and its object.
	expectPublished := func(ns string, stored map[string]*cqv1.Checkpoint) {
		GinkgoHelper()
		orphans := orphansOf(ns)
		Expect(orphans).To(HaveLen(len(stored)), "one orphan per stored archive")
		for _, o := range orphans {
			Expect(o.Status.Location).NotTo(BeNil(), "orphan %s has its location", o.Name)
			c := stored[o.Status.Location.Key]
			Expect(c).NotTo(BeNil(), "orphan %s names a stored archive's key", o.Name)
			want := c.Spec.Archive.DeepCopy()
			want.OrphanOf = ns
			Expect(cmp.Diff(want, o.Spec.Archive)).To(BeEmpty(), "the stored Checkpoint's archive, an orphan of its namespace (-want +got)")
			Expect(o.Name).To(Equal(nodeagent.ObjectName(goneNode, want.Directory, want.FileName)))
			Expect(ownerOf(o.Status.Location.Key)).To(Equal(o.UID), "the object is the orphan's")
		}
	}

	It("publishes one orphan per archive when two agents sweep at once, and deletes an orphan's object once it is gone", func() {
		ns := "deleted-" + rand.String(6)
		stored := map[string]*cqv1.Checkpoint{}
		for _, pod := range []string{"db-0", "db-1", "db-2", "db-3"} {
			c, key := store(ns, pod)
			stored[key] = c
		}
		var wg sync.WaitGroup
		for _, node := range []string{"sweeper-a", "sweeper-b"} {
			wg.Go(func() {
				defer GinkgoRecover()
				// A conflict on the orphan's location is a race the other won; the next sweep ends it.
				_, _, _, _ = sweep(node)
			})
		}
		wg.Wait()
		// A sweeper that lost a race on an orphan's location leaves it to the next sweep.
		_, _, deleted, err := sweep("sweeper-a")
		Expect(err).NotTo(HaveOccurred())
		Expect(deleted).To(BeZero())
		expectPublished(ns, stored)
		published, _, deleted, err := sweep("sweeper-b")
		Expect(err).NotTo(HaveOccurred())
		Expect(published).To(BeZero(), "nothing left to publish")
		Expect(deleted).To(BeZero())
		expectPublished(ns, stored)

		By("an orphan deleted: the sweep deletes its object, and publishes nothing again")
		gone := orphansOf(ns)[0]
		Expect(env.Client.Delete(ctx, &gone)).To(Succeed())
		published, _, deleted, err = sweep("sweeper-b")
		Expect(err).NotTo(HaveOccurred())
		Expect(deleted).To(Equal(1))
		Expect(published).To(BeZero())
		_, err = srv.Client.StatObject(ctx, bucket, gone.Status.Location.Key, minio.StatObjectOptions{})
		Expect(objstore.IsNotFound(err)).To(BeTrue(), "the deleted orphan's object: %v", err)
		delete(stored, gone.Status.Location.Key)
		expectPublished(ns, stored)
	})

	It("finishes a publication cut short after the orphan's create, or after its location", func() {
		ns := "deleted-" + rand.String(6)
		created, createdKey := store(ns, "db-0")
		located, locatedKey := store(ns, "db-1")
		// The orphans come later than the objects, as a namespace's deletion does (creation
		// times are whole seconds).
		time.Sleep(1100 * time.Millisecond)
		var uids []types.UID
		for _, c := range []*cqv1.Checkpoint{created, located} {
			a := c.Spec.Archive.DeepCopy()
			a.OrphanOf = ns
			o := &cqv1.Checkpoint{ObjectMeta: metav1.ObjectMeta{Name: nodeagent.ObjectName(a.NodeName, a.Directory, a.FileName),
				Namespace: orphanNamespace, Labels: map[string]string{cqv1.LabelOrphanOf: ns}}, Spec: cqv1.CheckpointSpec{Archive: a}}
			Expect(env.Client.Create(ctx, o)).To(Succeed())
			if c == located {
				key, err := objstore.KeyOf(cqv1.CheckpointStoreSpec{Prefix: prefix}, c)
				Expect(err).NotTo(HaveOccurred())
				o.Status.Location = &cqv1.ArchiveLocation{Store: storeName, Bucket: bucket, Key: key,
					SHA256: zeros4KiB, StoredTime: metav1.NewTime(time.Now().UTC().Truncate(time.Second))}
				Expect(env.Client.Status().Update(ctx, o)).To(Succeed())
			}
			uids = append(uids, o.UID)
		}
		Expect(ownerOf(locatedKey)).To(Equal(located.UID), "not given to the orphan yet")
		published, _, _, err := sweep("sweeper-a")
		Expect(err).NotTo(HaveOccurred())
		Expect(published).To(Equal(2))
		expectPublished(ns, map[string]*cqv1.Checkpoint{createdKey: created, locatedKey: located})
		for _, o := range orphansOf(ns) {
			Expect(uids).To(ContainElement(o.UID), "the orphan published before, not a new one")
		}
	})

	It("publishes, and does not delete, what a deleted namespace stored when one of the same name is created again", func() {
		ns := "again-" + rand.String(6)
		c, key := store(ns, "db-0")
		// Created after the object was written (creation times are whole seconds).
		time.Sleep(1100 * time.Millisecond)
		Expect(env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})).To(Succeed())
		published, _, deleted, err := sweep("sweeper-a")
		Expect(err).NotTo(HaveOccurred())
		Expect([]int{published, deleted}).To(Equal([]int{1, 0}), "published, deleted")
		expectPublished(ns, map[string]*cqv1.Checkpoint{key: c})
	})

	It("keeps what records nothing, and what its node's agent will publish", func() {
		ns := "deleted-" + rand.String(6)
		_, recordedKey := store(ns, "db-0")
		Expect(env.Client.Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: goneNode}})).To(Succeed())
		DeferCleanup(func() { _ = env.Client.Delete(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: goneNode}}) })
		oldKey := objstore.Key(prefix, ns, "db-1", "db", "uid-older-agent")
		f, err := os.CreateTemp(GinkgoT().TempDir(), "archive")
		Expect(err).NotTo(HaveOccurred())
		Expect(os.WriteFile(f.Name(), make([]byte, 10), 0o600)).To(Succeed())
		_, err = st.Upload(ctx, oldKey, objstore.Archive{File: f, Size: 10, UID: "uid-older-agent", Namespace: ns, FileName: "checkpoint-db-1_" + ns + "-db-2026-12-01T00:00:00Z.tar"})
		Expect(err).NotTo(HaveOccurred())
		published, kept, deleted, err := sweep("sweeper-a")
		Expect(err).NotTo(HaveOccurred())
		Expect([]int{published, kept, deleted}).To(Equal([]int{0, 2, 0}), "published, kept, deleted")
		Expect(orphansOf(ns)).To(BeEmpty())
		Expect(ownerOf(oldKey)).To(BeEquivalentTo("uid-older-agent"))
		Expect(ownerOf(recordedKey)).NotTo(BeEmpty())
	})
})
