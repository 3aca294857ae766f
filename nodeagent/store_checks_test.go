package nodeagent_test

import (
	"io/fs"
	"os"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	testarchive "github.com/checkpoint-quota/checkpoint-quota/test/archive"
)

// grantStoreCredentials lets the agents read Secrets in their namespace, as
// config/rbac/agent/store_credentials_role.yaml does in the namespace an overlay names.
func grantStoreCredentials() {
	GinkgoHelper()
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "store-credentials-" + rand.String(5), Namespace: orphanNamespace},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get"}}}}
	Expect(env.Client.Create(ctx, role)).To(Succeed())
	DeferCleanup(env.Client.Delete, ctx, role)
	binding := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: role.Name, Namespace: orphanNamespace},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "node-agent", Namespace: "system"}}}
	Expect(env.Client.Create(ctx, binding)).To(Succeed())
	DeferCleanup(env.Client.Delete, ctx, binding)
}

// newStore creates a CheckpointStore at endpoint with a credentials Secret in the agents'
// namespace, and returns its name.
func newStore(endpoint string) string {
	GinkgoHelper()
	name := "store-" + rand.String(6)
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: orphanNamespace},
		Data: map[string][]byte{cqv1.StoreSecretAccessKeyID: []byte("id"), cqv1.StoreSecretSecretAccessKey: []byte("key")}}
	Expect(env.Client.Create(ctx, secret)).To(Succeed())
	DeferCleanup(env.Client.Delete, ctx, secret)
	store := &cqv1.CheckpointStore{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: cqv1.CheckpointStoreSpec{Endpoint: endpoint, Bucket: "archives", CredentialsSecret: cqv1.SecretName{Name: name}}}
	Expect(env.Client.Create(ctx, store)).To(Succeed())
	DeferCleanup(env.Client.Delete, ctx, store)
	return name
}

var _ = Describe("The agent's checks of the CheckpointStores", func() {
	It("puts each check into the node's CheckpointNode, saying what failed", func() {
		grantStoreCredentials()
		// Nothing listens on port 1 of loopback: the store is down.
		down := newStore("http://127.0.0.1:1")
		node, dir := newNode()
		startAgent(node, settleTime, dir)
		Eventually(func(g Gomega) []cqv1.NodeStoreCheck { return checkpointNode(node)(g).Stores }).Should(ContainElement(And(
			HaveField("Store", down),
			HaveField("Reachable", false),
			HaveField("Writable", false),
			HaveField("Message", ContainSubstring("connection refused")),
		)))

		By("a store created while the agent runs is checked too")
		later := newStore("http://127.0.0.1:1")
		Eventually(func(g Gomega) []cqv1.NodeStoreCheck { return checkpointNode(node)(g).Stores }, "30s").Should(ContainElement(
			HaveField("Store", later)))
	})
})

var _ = Describe("A fetch of an offloaded archive while its store is down", func() {
	It("says why in the Fetched condition, keeps the request, and puts nothing in the directory", func() {
		grantStoreCredentials()
		down := newStore("http://127.0.0.1:1")
		ns, err := env.CreateNamespace(ctx, "fetch")
		Expect(err).NotTo(HaveOccurred())
		node, dir := newNode()
		a := testarchive.New(ns, "web-0", "app")
		path := a.MustWrite(dir)
		startAgent(node, settleTime, dir)
		c := publishedAs(node, a)

		By("recording a location, as the Offloader would, and the file leaving the node")
		patch := client.MergeFrom(c.DeepCopy())
		c.Status.Location = &cqv1.ArchiveLocation{Store: down, Bucket: "archives", Key: "k/" + string(c.UID) + ".tar",
			SHA256: strings.Repeat("0", 64), StoredTime: metav1.Now()}
		c.Status.Offload = &cqv1.OffloadRequest{Store: down}
		Expect(env.Client.Status().Patch(ctx, &c, patch)).To(Succeed())
		// The Offloader removes a file only after its cache shows the location it wrote; a
		// file removed before the cache shows it would be one gone by other means.
		time.Sleep(2 * time.Second)
		// The agent may have removed it already: a stored archive's file leaves its node when
		// the store does not answer the check of its object (docs/offload.md, "A copy freed
		// while its store is down").
		Expect(os.Remove(path)).To(Or(Succeed(), MatchError(fs.ErrNotExist)))
		Consistently(checkpointsOf(node), 3*time.Second).Should(HaveLen(1), "an offloaded Checkpoint went with its file")

		By("asking for the fetch")
		patch = client.MergeFrom(c.DeepCopy())
		c.Annotations = map[string]string{cqv1.AnnotationFetch: "test"}
		Expect(env.Client.Patch(ctx, &c, patch)).To(Succeed())
		Eventually(func(g Gomega) {
			var got cqv1.Checkpoint
			g.Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(&c), &got)).To(Succeed())
			f := meta.FindStatusCondition(got.Status.Conditions, cqv1.CheckpointConditionFetched)
			g.Expect(f).NotTo(BeNil())
			g.Expect(f.Status).To(Equal(metav1.ConditionFalse))
			g.Expect(f.Reason).To(Equal("FetchFailed"))
			g.Expect(f.Message).To(And(ContainSubstring("bringing the archive back to node "+node), ContainSubstring("connection refused")))
			g.Expect(got.Annotations).To(HaveKey(cqv1.AnnotationFetch), "the request went without its copy")
		}).Should(Succeed())
		entries, err := os.ReadDir(dir)
		Expect(err).NotTo(HaveOccurred())
		Expect(entries).To(BeEmpty(), "a fetch that failed left a file")
	})
})
