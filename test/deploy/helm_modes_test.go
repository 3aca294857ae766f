package deploy

import (
	"slices"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/checkpoint-quota/checkpoint-quota/test/testenv"
)

// helm install with the chart's default values answers the cert-manager question from the
// cluster itself (certificates.mode=auto), and says which answer it gave.
var _ = Describe("helm install with the default values", func() {
	It("uses cert-manager on a cluster that serves cert-manager.io/v1, and says so", func(ctx SpecContext) {
		ns, err := env.CreateNamespace(ctx, "helm-auto")
		Expect(err).NotTo(HaveOccurred())
		const release = "auto"
		name := release + "-checkpoint-quota"
		helmEnv := []string{"KUBECONFIG=" + env.Kubeconfig}
		out, err := runHelm(helmEnv, "install", release, chartDir(), "--namespace", ns)
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func() { _, _ = runHelm(helmEnv, "uninstall", release, "--namespace", ns) })
		Expect(out).To(SatisfyAll(
			ContainSubstring("STATUS: deployed"),
			ContainSubstring("Webhook certificates: cert-manager (Certificate "+name+"-serving-cert,"),
			ContainSubstring("certificates.mode=auto chose it because this cluster serves cert-manager.io/v1."),
			ContainSubstring("set\ncertificates.mode=cert-manager."),
		))
		cert := &unstructured.Unstructured{}
		cert.SetAPIVersion(certManagerAPI)
		cert.SetKind("Certificate")
		Expect(env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name + "-serving-cert"}, cert)).To(Succeed())
		Expect(managerArgs(ctx, env, ns, name)).NotTo(ContainElement("--cert-rotation=true"))
	})

	It("uses the built-in rotation on a cluster without it, and an explicit cert-manager there fails saying what to do", func(ctx SpecContext) {
		By("starting a second test bed, without cert-manager's CRDs")
		bare, err := testenv.Start(testenv.Options{})
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(bare.Stop)
		ns, err := bare.CreateNamespace(ctx, "helm-auto")
		Expect(err).NotTo(HaveOccurred())
		const release = "auto"
		name := release + "-checkpoint-quota"
		helmEnv := []string{"KUBECONFIG=" + bare.Kubeconfig}

		out, err := runHelm(helmEnv, "install", release, chartDir(), "--namespace", ns)
		Expect(err).NotTo(HaveOccurred())
		Expect(out).To(SatisfyAll(
			ContainSubstring("STATUS: deployed"),
			ContainSubstring("Webhook certificates: the manager's built-in rotation (its own CA in Secret "+name+"-webhook-server-cert,"),
			ContainSubstring("certificates.mode=auto chose it because this cluster does not serve cert-manager.io/v1."),
			ContainSubstring("set\ncertificates.mode=rotation."),
		))
		Expect(managerArgs(ctx, bare, ns, name)).To(ContainElement("--cert-rotation=true"))
		Expect(bare.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name + "-webhook-server-cert"}, &corev1.Secret{})).To(Succeed())

		By("installing with certificates.mode=cert-manager")
		_, err = runHelm(helmEnv, "install", "explicit", chartDir(), "--namespace", ns, "--set", "certificates.mode=cert-manager")
		Expect(err).To(MatchError(SatisfyAll(
			ContainSubstring("INSTALLATION FAILED"),
			ContainSubstring("certificates.mode is cert-manager, but this cluster does not serve cert-manager.io/v1: "+
				"install cert-manager first (https://cert-manager.io/docs/installation/), or set certificates.mode=auto or rotation"),
			Not(ContainSubstring("no matches for kind")),
		)))
	})
})

// managerArgs are the arguments of the manager container of an installed release.
func managerArgs(ctx SpecContext, e *testenv.Env, ns, name string) []string {
	GinkgoHelper()
	var d appsv1.Deployment
	Expect(e.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name + "-controller-manager"}, &d)).To(Succeed())
	i := slices.IndexFunc(d.Spec.Template.Spec.Containers, func(c corev1.Container) bool { return c.Name == "manager" })
	Expect(i).NotTo(Equal(-1))
	return d.Spec.Template.Spec.Containers[i].Args
}
