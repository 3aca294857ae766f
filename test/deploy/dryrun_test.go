package deploy

import (
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

var _ = Describe("rendered manifests", func() {
	DescribeTable("are accepted by the kube-apiserver (server-side dry run)",
		func(ctx SpecContext, dir string) {
			var manifests string
			var err error
			if mode, ok := strings.CutPrefix(dir, "helm:"); ok {
				// The test bed serves cert-manager's API; helm template learns it from a flag.
				manifests, err = runHelm(nil, templateArgs([]string{certManagerAPI}, "certificates.mode="+mode,
					"clusterDefaultQuota.enabled=true", "metrics.grafanaDashboard.enabled=true",
					"metrics.serviceMonitor.enabled=true", "metrics.prometheusRule.enabled=true")...)
			} else {
				manifests, err = kustomize(dir)
			}
			Expect(err).NotTo(HaveOccurred())
			objects := len(parse(GinkgoT(), dir, manifests).objs)

			// Namespaced objects are checked only in a namespace that exists, and a dry-run
			// does not create the rendered one; it is left empty.
			ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "checkpoint-quota-system"}}
			Expect(client.IgnoreAlreadyExists(env.Client.Create(ctx, ns))).To(Succeed())

			out, stderr, err := env.Kubectl(manifests, "apply", "--server-side", "--dry-run=server", "--field-manager=deploy-test", "-f", "-")
			Expect(err).NotTo(HaveOccurred(), stderr)
			applied := strings.Count(out, "serverside-applied (server dry run)")
			Expect(applied).To(Equal(objects), out)

			By("having changed nothing")
			err = env.Client.Get(ctx, client.ObjectKey{Namespace: ns.Name, Name: "checkpoint-quota-controller-manager"}, &appsv1.Deployment{})
			Expect(apierrors.IsNotFound(err)).To(BeTrue(), "the dry run created the manager: %v", err)
		},
		Entry("with cert-manager", withCertManager),
		Entry("without cert-manager", withoutCertManager),
		Entry("the samples", "samples"),
		Entry("the Helm chart with cert-manager", "helm:cert-manager"),
		Entry("the Helm chart with the built-in rotation", "helm:rotation"),
	)
})
