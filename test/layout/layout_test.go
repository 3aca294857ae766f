// Package layout checks the shape of the module: what may import what.
package layout

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/checkpoint-quota/checkpoint-quota/test/testenv"
)

// clientPackages are the packages that talk to a cluster. internal/ is domain code (archives,
// policy, quota arithmetic, conversion): the components (controllers/, webhooks/, nodeagent/,
// cmd/) hold the clients.
var clientPackages = []string{
	"k8s.io/client-go/rest",
	"k8s.io/client-go/kubernetes",
	"k8s.io/client-go/tools/cache",
	"sigs.k8s.io/controller-runtime/pkg/client",
	"sigs.k8s.io/controller-runtime/pkg/manager",
}

func TestInternalImportsNoClient(t *testing.T) {
	cmd := exec.Command("go", "list", "-f", `{{.ImportPath}}{{range .Deps}} {{.}}{{end}}`, "./internal/...")
	cmd.Dir = testenv.RepoRoot()
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list ./internal/...: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) < 3 {
		t.Fatalf("go list found %d packages under internal/, expected archive, policy, quota and more", len(lines))
	}
	for _, line := range lines {
		fields := strings.Fields(line)
		deps := map[string]bool{}
		for _, d := range fields[1:] {
			deps[d] = true
		}
		for _, c := range clientPackages {
			if deps[c] {
				t.Errorf("%s imports %s (directly or not): move the code that needs a client to a component (controllers/, webhooks/, nodeagent/)", fields[0], c)
			}
		}
	}
}
