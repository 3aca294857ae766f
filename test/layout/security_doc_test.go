package layout

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/checkpoint-quota/checkpoint-quota/test/testenv"
)

// Each actor of docs/security.md's table has a Describe of its own, named as the row, in the
// end-to-end specs that check the row (test/e2e/security_test.go): a row added to the table
// without a test, or a test renamed away from its row, fails here.
func TestSecurityTableRowsHaveSpecs(t *testing.T) {
	root := testenv.RepoRoot()
	doc, err := os.ReadFile(filepath.Join(root, "docs", "security.md"))
	if err != nil {
		t.Fatal(err)
	}
	specs, err := os.ReadFile(filepath.Join(root, "test", "e2e", "security_test.go"))
	if err != nil {
		t.Fatal(err)
	}
	actor := regexp.MustCompile("(?m)^\\| \\*\\*([^*]+)\\*\\*")
	rows := actor.FindAllStringSubmatch(string(doc), -1)
	if len(rows) < 4 {
		t.Fatalf("docs/security.md has %d rows naming an actor in bold, expected the cluster admin, tenants, the node agent and the manager", len(rows))
	}
	for _, row := range rows {
		if !strings.Contains(string(specs), "Describe(\""+row[1]+"\"") {
			t.Errorf("docs/security.md's row %q has no Describe(%q) in test/e2e/security_test.go", row[1], row[1])
		}
	}
}
