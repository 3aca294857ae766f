package deploy

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/checkpoint-quota/checkpoint-quota/test/testenv"
)

// certManagerVersion is the cert-manager whose CRDs the rendered Issuer and Certificate are
// checked against; the e2e workflow installs the same release. CERT_MANAGER_VERSION overrides it.
const certManagerVersion = "v1.21.2"

// prometheusOperatorVersion is the Prometheus Operator whose CRDs (ServiceMonitor, PodMonitor,
// PrometheusRule) the chart's monitoring objects are checked against. PROMETHEUS_OPERATOR_VERSION
// overrides it.
const prometheusOperatorVersion = "v0.85.0"

var env *testenv.Env

// TestDeploy runs the specs that need the test bed's kube-apiserver; the plain Test functions
// of this package only render.
func TestDeploy(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "deploy")
}

var _ = BeforeSuite(func() {
	crds, err := certManagerCRDs()
	Expect(err).NotTo(HaveOccurred())
	env, err = testenv.Start(testenv.Options{ServiceRouting: true})
	Expect(err).NotTo(HaveOccurred())
	_, err = envtest.InstallCRDs(env.Config, envtest.CRDInstallOptions{Paths: []string{crds}, ErrorIfPathMissing: true})
	Expect(err).NotTo(HaveOccurred(), "installing cert-manager's CRDs from %s", crds)
	monitoring, err := monitoringCRDs()
	Expect(err).NotTo(HaveOccurred())
	_, err = envtest.InstallCRDs(env.Config, envtest.CRDInstallOptions{Paths: monitoring, ErrorIfPathMissing: true})
	Expect(err).NotTo(HaveOccurred(), "installing the Prometheus Operator's CRDs from %v", monitoring)
})

var _ = AfterSuite(func() {
	if env != nil {
		Expect(env.Stop()).To(Succeed())
	}
})

// certManagerCRDs is deploy/crds of the cert-manager Go module, fetched through the module
// proxy (or found in the module cache) rather than copied into this repository.
func certManagerCRDs() (string, error) {
	dir, err := moduleDir("github.com/cert-manager/cert-manager", versionOr("CERT_MANAGER_VERSION", certManagerVersion))
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "deploy", "crds"), nil
}

// monitoringCRDs are the Prometheus Operator's CRDs of the kinds the chart renders, from its
// Go module's example/prometheus-operator-crd.
func monitoringCRDs() ([]string, error) {
	dir, err := moduleDir("github.com/prometheus-operator/prometheus-operator", versionOr("PROMETHEUS_OPERATOR_VERSION", prometheusOperatorVersion))
	if err != nil {
		return nil, err
	}
	var out []string
	for _, kind := range []string{"servicemonitors", "podmonitors", "prometheusrules"} {
		out = append(out, filepath.Join(dir, "example", "prometheus-operator-crd", "monitoring.coreos.com_"+kind+".yaml"))
	}
	return out, nil
}

func versionOr(env, version string) string {
	if v := os.Getenv(env); v != "" {
		return v
	}
	return version
}

// moduleDir downloads a Go module through the module proxy (or finds it in the module
// cache) and returns its directory.
func moduleDir(module, version string) (string, error) {
	cmd := exec.Command("go", "mod", "download", "-json", module+"@"+version)
	cmd.Dir = testenv.RepoRoot()
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go mod download %s@%s: %w", module, version, err)
	}
	var mod struct{ Dir, Error string }
	if err := json.Unmarshal(out, &mod); err != nil {
		return "", err
	}
	if mod.Error != "" || mod.Dir == "" {
		return "", fmt.Errorf("go mod download %s@%s: %s", module, version, mod.Error)
	}
	return mod.Dir, nil
}
