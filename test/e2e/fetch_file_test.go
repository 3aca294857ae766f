package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	"github.com/checkpoint-quota/checkpoint-quota/internal/objstore"
	"github.com/checkpoint-quota/checkpoint-quota/internal/sealedurl"
	"github.com/checkpoint-quota/checkpoint-quota/test/archive"
	"github.com/checkpoint-quota/checkpoint-quota/test/s3server"
	"github.com/checkpoint-quota/checkpoint-quota/test/testenv"
)

// fetch -o FILE by a tenant (issue 32, item 5): she cannot read the store's credentials, so
// the agent of the archive's node hands her a short-lived presigned GET of the one object,
// sealed to a key her plugin made for the request (docs/offload.md, "Fetch").
var _ = Describe("fetch to a local file as a tenant", Ordered, issue32, func() {
	const bucket = "files"
	var (
		srv               *s3server.Server
		ns                string
		sums              map[string]string
		plugin            string
		alice, bob        *testenv.Tenant
		viewer            testenv.Identity
		stored, storedToo cqv1.Checkpoint
	)
	run := func(ctx context.Context, id testenv.Identity, args ...string) (string, error) {
		return pluginAs(ctx, plugin, id, args...)
	}
	get := func(g Gomega, ctx context.Context, c *cqv1.Checkpoint) *cqv1.Checkpoint {
		now := &cqv1.Checkpoint{}
		g.Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(c), now)).To(Succeed())
		return now
	}
	// answer waits for the agent's answer to the request ref.
	answer := func(ctx context.Context, c *cqv1.Checkpoint, ref string) *cqv1.SealedDownloadURL {
		GinkgoHelper()
		var a *cqv1.SealedDownloadURL
		Eventually(func(g Gomega) {
			a = get(g, ctx, c).Status.DownloadURL
			g.Expect(a).NotTo(BeNil())
			g.Expect(a.PublicKey).To(Equal(ref))
		}, 30*time.Second).WithContext(ctx).Should(Succeed())
		return a
	}
	// noRequestLeft checks that the request went and the agent cleared its answer.
	noRequestLeft := func(ctx context.Context, c *cqv1.Checkpoint) {
		GinkgoHelper()
		Eventually(func(g Gomega) {
			now := get(g, ctx, c)
			g.Expect(now.Annotations).NotTo(HaveKey(cqv1.AnnotationFetchURL))
			g.Expect(now.Status.DownloadURL).To(BeNil(), "the agent left its answer after the request went")
		}, 30*time.Second).WithContext(ctx).Should(Succeed())
	}
	request := func(ctx context.Context, c *cqv1.Checkpoint, value string) {
		GinkgoHelper()
		tc, err := alice.Client()
		Expect(err).NotTo(HaveOccurred())
		obj := c.DeepCopy()
		patch := client.MergeFrom(c.DeepCopy())
		if obj.Annotations == nil {
			obj.Annotations = map[string]string{}
		}
		obj.Annotations[cqv1.AnnotationFetchURL] = value
		Expect(tc.Patch(ctx, obj, patch)).To(Succeed())
	}
	withdraw := func(ctx context.Context, c *cqv1.Checkpoint) {
		GinkgoHelper()
		_, stderr, err := alice.Kubectl("", "annotate", "checkpoint", c.Name, cqv1.AnnotationFetchURL+"-")
		Expect(err).NotTo(HaveOccurred(), stderr)
		noRequestLeft(ctx, c)
	}

	BeforeAll(func(ctx context.Context) {
		srv = startStoreServer(ctx, bucket, "files-credentials")
		var err error
		ns, err = env.CreateNamespace(ctx, "fetchfile")
		Expect(err).NotTo(HaveOccurred())
		grantStore(ctx, "files", srv, bucket, "files-credentials", ns)
		offloadQuota(ns, "files", 2)
		sums = map[string]string{}
		plugin = buildPlugin(ctx)
		alice = newTenant(ctx, ns)
		otherNs, err := env.CreateNamespace(ctx, "fetchfile-other")
		Expect(err).NotTo(HaveOccurred())
		bob, err = env.NewTenant(ctx, "bob", otherNs)
		Expect(err).NotTo(HaveOccurred())
		viewer = testenv.Person("victor")
		Expect(env.Client.Create(ctx, &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "victor-view", Namespace: ns},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "view"},
			Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: viewer.User}},
		})).To(Succeed())

		By("four archives under a limit of two: the two oldest are moved to the store")
		uid := createPodOnce(ctx, ns, "app-0", "app")
		for range 4 {
			archivesWritten++
			at := time.Now().UTC().Add(-time.Hour).Truncate(time.Second).Add(time.Duration(archivesWritten) * time.Second)
			path := archive.New(ns, "app-0", "app").WithUID(uid).At(at).MustWrite(ckptDir)
			data, err := os.ReadFile(path)
			Expect(err).NotTo(HaveOccurred())
			sum := sha256.Sum256(data)
			sums[filepath.Base(path)] = hex.EncodeToString(sum[:])
		}
		Eventually(func(g Gomega) {
			var stores []cqv1.Checkpoint
			for _, c := range checkpointsIn(ctx, g, ns) {
				if c.Status.Location != nil {
					stores = append(stores, c)
				}
			}
			g.Expect(stores).To(HaveLen(2))
			g.Expect(filesOf(g, ns)).To(HaveLen(2))
			stored, storedToo = stores[0], stores[1]
		}, 90*time.Second).WithContext(ctx).Should(Succeed())
	})

	It("gives alice her archive byte for byte, and nobody else a URL or the bytes", func(ctx context.Context) {
		dir := GinkgoT().TempDir()
		file := filepath.Join(dir, "alice.tar")

		By("bob, an editor of another namespace, can neither ask for it nor read the answer")
		out, err := run(ctx, bob.Identity, "-n", ns, "fetch", stored.Name, "-o", file)
		Expect(err).To(HaveOccurred(), out)
		Expect(out).To(ContainSubstring("forbidden"))
		bobKey, err := sealedurl.NewKey()
		Expect(err).NotTo(HaveOccurred())
		_, stderr, err := env.KubectlAs(bob.Identity, "", "annotate", "-n", ns, "checkpoint", stored.Name, cqv1.AnnotationFetchURL+"="+bobKey.Public())
		Expect(err).To(HaveOccurred())
		Expect(stderr).To(ContainSubstring("forbidden"))
		_, stderr, err = env.KubectlAs(bob.Identity, "", "get", "-n", ns, "checkpoint", stored.Name, "-o", "jsonpath={.status}")
		Expect(err).To(HaveOccurred())
		Expect(stderr).To(ContainSubstring("forbidden"))

		By("a viewer of the namespace cannot ask: -o FILE needs patch, which view lacks")
		out, err = run(ctx, viewer, "-n", ns, "fetch", stored.Name, "-o", file)
		Expect(err).To(HaveOccurred(), out)
		Expect(out).To(ContainSubstring("forbidden"))
		Expect(out).To(ContainSubstring("needs patch on the Checkpoint (the edit role)"))
		_, stderr, err = env.KubectlAs(viewer, "", "annotate", "-n", ns, "checkpoint", stored.Name, cqv1.AnnotationFetchURL+"="+bobKey.Public())
		Expect(err).To(HaveOccurred())
		Expect(stderr).To(ContainSubstring("forbidden"))
		Expect(file).NotTo(BeAnExistingFile())

		By("alice, an editor of the namespace, gets her archive with the plugin run --as her: byte for byte")
		began := time.Now()
		out, err = run(ctx, alice.Identity, "-n", ns, "fetch", stored.Name, "-o", file, "--timeout", "1m")
		tenantTook := time.Since(began)
		Expect(err).NotTo(HaveOccurred(), out)
		Expect(out).To(ContainSubstring("through a download URL from the node agent of " + nodeName))
		Expect(out).NotTo(ContainSubstring("X-Amz-Signature"), "the plugin printed the URL")
		data, err := os.ReadFile(file)
		Expect(err).NotTo(HaveOccurred())
		sum := sha256.Sum256(data)
		Expect(hex.EncodeToString(sum[:])).To(Equal(sums[stored.Spec.Archive.FileName]), "not the archive's bytes")
		Expect(hex.EncodeToString(sum[:])).To(Equal(stored.Status.Location.SHA256))
		info, err := os.Stat(file)
		Expect(err).NotTo(HaveOccurred())
		Expect(info.Mode().Perm()).To(Equal(os.FileMode(0o600)), "a process's memory, readable by others")
		Expect(mustList(dir)).To(ConsistOf("alice.tar"), "a temporary file left beside it")
		noRequestLeft(ctx, &stored)
		now := get(Default, ctx, &stored)
		Expect(now.Status.Location).To(Equal(stored.Status.Location))
		Expect(filesOf(Default, ns)).To(HaveLen(2), "the node changed")

		By("a cluster admin's -o FILE still reads the store with its credentials, and gets the same bytes")
		admin := filepath.Join(GinkgoT().TempDir(), "admin.tar")
		began = time.Now()
		adminOut, err := exec.CommandContext(ctx, plugin, "--kubeconfig", env.Kubeconfig, "-n", ns, "fetch", stored.Name, "-o", admin).CombinedOutput()
		adminTook := time.Since(began)
		Expect(err).NotTo(HaveOccurred(), string(adminOut))
		Expect(string(adminOut)).NotTo(ContainSubstring("download URL"), "the admin went through the agent")
		Expect(admin).To(BeARegularFile())
		adminData, err := os.ReadFile(admin)
		Expect(err).NotTo(HaveOccurred())
		Expect(adminData).To(Equal(data))
		AddReportEntry("fetch -o FILE of a stored archive", fmt.Sprintf("%d bytes: as a tenant through the agent's URL %s, as the admin with the credentials %s",
			len(data), tenantTook.Round(time.Millisecond), adminTook.Round(time.Millisecond)))

		By("what the agent writes into status opens only with the request's key: a viewer reads it and cannot use it")
		key, err := sealedurl.NewKey()
		Expect(err).NotTo(HaveOccurred())
		request(ctx, &stored, key.Public())
		a := answer(ctx, &stored, key.Public())
		Expect(a.Message).To(BeEmpty())
		Expect(a.Expires.Time).To(BeTemporally("~", time.Now().Add(5*time.Minute), time.Minute), "the URL lives minutes")
		seen, stderr, err := env.KubectlAs(viewer, "", "get", "-n", ns, "checkpoint", stored.Name, "-o", "jsonpath={.status.downloadURL.sealed}")
		Expect(err).NotTo(HaveOccurred(), stderr)
		Expect(seen).To(Equal(a.Sealed))
		host := strings.TrimPrefix(strings.TrimPrefix(srv.Endpoint, "http://"), "https://")
		for _, shown := range []string{host, "X-Amz-Signature", stored.Status.Location.Key} {
			Expect(seen).NotTo(ContainSubstring(shown))
		}
		_, err = bobKey.Open(seen)
		Expect(err).To(HaveOccurred(), "another key opened the sealed URL")

		By("the URL is for that object alone: its bytes, and a 403 for any other key")
		grant, err := key.Open(a.Sealed)
		Expect(err).NotTo(HaveOccurred())
		Expect(grant.URL).To(HavePrefix(srv.Endpoint+"/"), "the URL's host is the store's endpoint")
		var buf bytes.Buffer
		computed, _, n, err := objstore.DownloadURL(ctx, http.DefaultClient, grant.URL, &buf)
		Expect(err).NotTo(HaveOccurred())
		Expect(computed).To(Equal(stored.Status.Location.SHA256))
		Expect(n).To(Equal(stored.Spec.Archive.SizeBytes))
		forged := strings.Replace(grant.URL, stored.Status.Location.Key, storedToo.Status.Location.Key, 1)
		Expect(forged).NotTo(Equal(grant.URL))
		_, _, _, err = objstore.DownloadURL(ctx, http.DefaultClient, forged, &bytes.Buffer{})
		Expect(err).To(MatchError(ContainSubstring("403")))
		withdraw(ctx, &stored)
	})

	It("answers a request that is not a key with why, and no URL", func(ctx context.Context) {
		bobKey, err := sealedurl.NewKey()
		Expect(err).NotTo(HaveOccurred())
		for name, value := range map[string]string{
			"garbage":                 "not a key at all",
			"a short key":             "AAAA",
			"a huge annotation":       strings.Repeat("A", 200<<10),
			"another namespace's key": bobKey.Public(),
		} {
			By(name)
			request(ctx, &stored, value)
			a := answer(ctx, &stored, sealedurl.Ref(value))
			if name == "another namespace's key" {
				// A key is a key: the URL is sealed to it, and only bob's plugin holds its
				// private half; bob cannot read this Checkpoint, and alice cannot open it.
				aliceKey, err := sealedurl.NewKey()
				Expect(err).NotTo(HaveOccurred())
				Expect(a.Sealed).NotTo(BeEmpty())
				_, err = aliceKey.Open(a.Sealed)
				Expect(err).To(HaveOccurred())
			} else {
				Expect(a.Sealed).To(BeEmpty(), "a URL for a request that is not a key")
				Expect(a.Message).To(ContainSubstring("annotation " + cqv1.AnnotationFetchURL + ") is not an X25519 public key"))
				Expect(len(a.PublicKey)).To(BeNumerically("<=", 64))
			}
			withdraw(ctx, &stored)
		}
	})

	It("says why while the store is down, writes nothing, and leaves no request", func(ctx context.Context) {
		dir := GinkgoT().TempDir()
		file := filepath.Join(dir, "alice.tar")
		srv.Kill()
		out, err := run(ctx, alice.Identity, "-n", ns, "fetch", storedToo.Name, "-o", file, "--timeout", "1m")
		Expect(err).To(HaveOccurred(), out)
		Expect(out).To(ContainSubstring("the node agent of " + nodeName + " gives no download URL of " + ns + "/" + storedToo.Name))
		Expect(out).To(ContainSubstring("connection refused"))
		Expect(out).To(ContainSubstring("nothing written"))
		Expect(mustList(dir)).To(BeEmpty())
		noRequestLeft(ctx, &storedToo)

		By("the store back, the same command works")
		Expect(srv.Restart(ctx)).To(Succeed())
		Eventually(func(g Gomega) {
			out, err := run(ctx, alice.Identity, "-n", ns, "fetch", storedToo.Name, "-o", file, "--timeout", "1m")
			g.Expect(err).NotTo(HaveOccurred(), out)
		}, time.Minute, 2*time.Second).WithContext(ctx).Should(Succeed())
		data, err := os.ReadFile(file)
		Expect(err).NotTo(HaveOccurred())
		sum := sha256.Sum256(data)
		Expect(hex.EncodeToString(sum[:])).To(Equal(sums[storedToo.Spec.Archive.FileName]))
	})

	It("tells a tenant when no agent answers for a Checkpoint whose node is gone, and writes nothing", func(ctx context.Context) {
		By("a stored Checkpoint of a node that is no more (as the node release leaves them), written as an agent would")
		gone := &cqv1.Checkpoint{ObjectMeta: metav1.ObjectMeta{Name: "gone-node-archive", Namespace: ns}, Spec: *stored.Spec.DeepCopy()}
		gone.Spec.Archive.NodeName = "e2e-node-gone"
		Expect(env.Client.Create(ctx, gone)).To(Succeed())
		DeferCleanup(func(ctx context.Context) { _ = env.Client.Delete(ctx, gone) })
		gone.Status.Location = stored.Status.Location.DeepCopy()
		Expect(env.Client.Status().Update(ctx, gone)).To(Succeed())

		dir := GinkgoT().TempDir()
		out, err := run(ctx, alice.Identity, "-n", ns, "fetch", gone.Name, "-o", filepath.Join(dir, "gone.tar"), "--timeout", "3s")
		Expect(err).To(HaveOccurred(), out)
		Expect(out).To(ContainSubstring("the node agent of e2e-node-gone gave no download URL of " + ns + "/" + gone.Name + " within 3s"))
		Expect(out).To(ContainSubstring("--node NODE brings a copy to a node that is there"))
		Expect(mustList(dir)).To(BeEmpty())
		noRequestLeft(ctx, gone)

		By("a second asker's request replaces the first's: the first plugin stops, saying so, and leaves the second's request")
		type result struct {
			out string
			err error
		}
		first := make(chan result, 1)
		go func() {
			defer GinkgoRecover()
			out, err := run(ctx, alice.Identity, "-n", ns, "fetch", gone.Name, "-o", filepath.Join(dir, "first.tar"), "--timeout", "1m")
			first <- result{out, err}
		}()
		Eventually(func(g Gomega) {
			g.Expect(get(g, ctx, gone).Annotations).To(HaveKey(cqv1.AnnotationFetchURL))
		}, 20*time.Second).WithContext(ctx).Should(Succeed())
		second, err := sealedurl.NewKey()
		Expect(err).NotTo(HaveOccurred())
		request(ctx, get(Default, ctx, gone), second.Public())
		var r result
		Eventually(first).WithTimeout(20 * time.Second).Should(Receive(&r))
		Expect(r.err).To(HaveOccurred(), r.out)
		Expect(r.out).To(ContainSubstring("another request for a download URL of " + ns + "/" + gone.Name + " replaced this one"))
		Expect(get(Default, ctx, gone).Annotations).To(HaveKeyWithValue(cqv1.AnnotationFetchURL, second.Public()), "the first plugin removed the second's request")
		Expect(mustList(dir)).To(BeEmpty())
	})
})

// mustList lists every name in dir.
func mustList(dir string) []string {
	GinkgoHelper()
	entries, err := os.ReadDir(dir)
	Expect(err).NotTo(HaveOccurred())
	out := []string{}
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}
