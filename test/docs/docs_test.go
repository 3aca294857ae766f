package docs

import (
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/checkpoint-quota/checkpoint-quota/test/testenv"
)

// A name that a doc writes as code: where, and the dotted path.
type mention struct {
	line int
	text string
	path []string
}

var (
	// codeSpan is an inline code span; it may wrap onto the next line.
	codeSpan = regexp.MustCompile("`([^`]+)`")
	// goPath is a Go name or a dotted path of them, as in `quota.Rules.Held`, with a
	// leading * or & and a trailing call left out.
	goPath = regexp.MustCompile(`^[*&]?([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)(?:\(.*\))?$`)
	fence  = regexp.MustCompile("^\\s*(```|~~~)")
)

// mentions finds the Go names that a markdown text writes as inline code, fenced blocks
// left out.
func mentions(text string) []mention {
	lines := strings.Split(text, "\n")
	inFence := false
	for i, l := range lines {
		if fence.MatchString(l) {
			inFence = !inFence
			lines[i] = ""
			continue
		}
		if inFence {
			lines[i] = ""
		}
	}
	prose := strings.Join(lines, "\n")
	var out []mention
	for _, m := range codeSpan.FindAllStringSubmatchIndex(prose, -1) {
		span := strings.Join(strings.Fields(prose[m[2]:m[3]]), " ")
		if g := goPath.FindStringSubmatch(span); g != nil {
			out = append(out, mention{line: 1 + strings.Count(prose[:m[0]], "\n"), text: span, path: strings.Split(g[1], ".")})
		}
	}
	return out
}

// problems lists, as doc:line, the Go names of text that name nothing that exists, and
// counts the names it checked.
func (ix *index) problems(doc, text string) (out []string, checked int) {
	for _, m := range mentions(text) {
		if !ix.checked(m.path) {
			continue
		}
		checked++
		if !ix.resolves(m.path) {
			out = append(out, doc+":"+strconv.Itoa(m.line)+": `"+m.text+"` names nothing in the module or what it imports: "+
				"write the name the code has now")
		}
	}
	return out, checked
}

var (
	loadOnce sync.Once
	loaded   *index
	loadErr  error
)

// moduleIndex loads the module once for every test of the package (a minute on a busy
// machine: it type-checks every package with its tests).
func moduleIndex(t *testing.T) *index {
	t.Helper()
	loadOnce.Do(func() { loaded, loadErr = load(testenv.RepoRoot()) })
	if loadErr != nil {
		t.Fatal(loadErr)
	}
	return loaded
}

func TestDocsNameCodeThatExists(t *testing.T) {
	ix := moduleIndex(t)
	root := testenv.RepoRoot()
	docs, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil || len(docs) == 0 {
		t.Fatalf("no docs/*.md under %s (%v)", root, err)
	}
	docs = append(docs, filepath.Join(root, "README.md"))
	sort.Strings(docs)
	total := 0
	for _, d := range docs {
		data, err := os.ReadFile(d)
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(root, d)
		problems, checked := ix.problems(rel, string(data))
		total += checked
		for _, p := range problems {
			t.Error(p)
		}
	}
	// The docs name a few hundred identifiers; far fewer means the check lost its way.
	if total < 200 {
		t.Errorf("only %d names of the docs checked: the check finds too little to be trusted", total)
	}
}

// The check fails on a name renamed or removed, wherever the doc writes it, and passes
// the names that exist and the words that are not Go.
func TestCheckFindsRenamedNames(t *testing.T) {
	ix := moduleIndex(t)
	doc := "The pass calls `setStatus`, then `quota.Govern` and `policy.FromCheckpointQuota(cq)`;\n" +
		"`StatusWriter.settle` holds it and `*passScope` carries it; `metav1.Condition` and `cqv1.ReasonInvalidSpec`.\n" +
		"Not Go: `spec.maxAge`, `DryRun`, `config.dump`, `kubectl get`, `perPod.storage`, `caBundle`.\n" +
		"```go\nnotChecked.InAFence()\n```\n" +
		"Renamed: `setStatusFromView`, `quota.Resolved`, `StatusWriter.settles`, `ViewStore.View.Nope`,\n" +
		"`cqv1.ReasonNoSuchThing`, `metav1.NoSuchType`, `QuotaViewer` and `policy.Quota.NoField`.\n"
	got, checked := ix.problems("doc.md", doc)
	want := []string{}
	for line, names := range map[int][]string{
		7: {"setStatusFromView", "quota.Resolved", "StatusWriter.settles", "ViewStore.View.Nope"},
		8: {"cqv1.ReasonNoSuchThing", "metav1.NoSuchType", "QuotaViewer", "policy.Quota.NoField"},
	} {
		for _, n := range names {
			want = append(want, "doc.md:"+strconv.Itoa(line)+": `"+n+"` names nothing in the module or what it imports: write the name the code has now")
		}
	}
	sort.Strings(want)
	sort.Strings(got)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("problems (-want +got):\n%s", diff)
	}
	if checked != 15 {
		t.Errorf("checked %d names, want the 7 that exist and the 8 that do not", checked)
	}
}
