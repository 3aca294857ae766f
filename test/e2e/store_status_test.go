package e2e

import (
	"context"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	"github.com/checkpoint-quota/checkpoint-quota/test/localrun"
)

// storeCondition waits until the store's condition kind has status, and returns its message.
func storeCondition(ctx context.Context, name, kind string, status metav1.ConditionStatus, timeout time.Duration) string {
	GinkgoHelper()
	var msg string
	Eventually(func(g Gomega) {
		var st cqv1.CheckpointStore
		g.Expect(env.Client.Get(ctx, client.ObjectKey{Name: name}, &st)).To(Succeed())
		cond := meta.FindStatusCondition(st.Status.Conditions, kind)
		g.Expect(cond).NotTo(BeNil(), "%s has no condition %s", name, kind)
		g.Expect(cond.Status).To(Equal(status), "%s %s: %s", name, kind, cond.Message)
		msg = cond.Message
	}, timeout).WithContext(ctx).Should(Succeed())
	return msg
}

// createStore creates a CheckpointStore and its credentials Secret in the agent's namespace.
func createStore(ctx context.Context, name, endpoint, bucket, id, key string) {
	GinkgoHelper()
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name + "-credentials", Namespace: localrun.OrphanNamespace},
		Data: map[string][]byte{cqv1.StoreSecretAccessKeyID: []byte(id), cqv1.StoreSecretSecretAccessKey: []byte(key)}}
	Expect(env.Client.Create(ctx, secret)).To(Succeed())
	store := &cqv1.CheckpointStore{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: cqv1.CheckpointStoreSpec{Endpoint: endpoint, Bucket: bucket, Prefix: "e2e", CredentialsSecret: cqv1.SecretName{Name: secret.Name}}}
	Expect(env.Client.Create(ctx, store)).To(Succeed())
	DeferCleanup(func(ctx context.Context) {
		_ = env.Client.Delete(ctx, store)
		_ = env.Client.Delete(ctx, secret)
	})
}

// The store's status says what the node agents found, end to end: the agent checks, its
// CheckpointNode carries the check, the manager writes the conditions. This one needs no S3
// server: nothing listens at the store's endpoint. The offload specs check a working store,
// wrong credentials and a deleted bucket against the real server.
var _ = Describe("a CheckpointStore that no node can reach", issue32, func() {
	It("says Reachable and Writable False, naming the node and the error", func(ctx context.Context) {
		createStore(ctx, "nowhere", "http://127.0.0.1:1", "archives", "id", "key")
		for _, kind := range []string{cqv1.StoreConditionReachable, cqv1.StoreConditionWritable} {
			msg := storeCondition(ctx, "nowhere", kind, metav1.ConditionFalse, 60*time.Second)
			Expect(msg).To(And(ContainSubstring(nodeName+": "), ContainSubstring("connection refused")))
		}
		out, stderr, err := env.Kubectl("", "describe", "checkpointstore", "nowhere")
		Expect(err).NotTo(HaveOccurred(), stderr)
		Expect(out).To(ContainSubstring("1 of 1 nodes cannot reach the store; " + nodeName))
	})
})
