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
})

var _ = AfterSuite(func() {
	if env != nil {
		Expect(env.Stop()).To(Succeed())
	}
})

// certManagerCRDs is deploy/crds of the cert-manager Go module, fetched through the module
// proxy (or found in the module cache) rather than copied into this repository.
func certManagerCRDs() (string, error) {
	version := certManagerVersion
	if v := os.Getenv("CERT_MANAGER_VERSION"); v != "" {
		version = v
	}
	cmd := exec.Command("go", "mod", "download", "-json", "github.com/cert-manager/cert-manager@"+version)
	cmd.Dir = testenv.RepoRoot()
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go mod download github.com/cert-manager/cert-manager@%s: %w", version, err)
	}
	var mod struct{ Dir, Error string }
	if err := json.Unmarshal(out, &mod); err != nil {
		return "", err
	}
	if mod.Error != "" || mod.Dir == "" {
		return "", fmt.Errorf("go mod download github.com/cert-manager/cert-manager@%s: %s", version, mod.Error)
	}
	return filepath.Join(mod.Dir, "deploy", "crds"), nil
}
