package layout

import (
	"go/ast"
	"go/constant"
	"go/types"
	"regexp"
	"strings"
	"testing"
	"unicode"

	"golang.org/x/tools/go/packages"

	"github.com/checkpoint-quota/checkpoint-quota/test/testenv"
)

// lowerCamel is a structured-logging key: "quota", "checkpoint", "freeBytes".
var lowerCamel = regexp.MustCompile(`^[a-z][a-zA-Z0-9]*$`)

// TestLogMessagesFollowTheConvention checks every message the components log through logr
// against the project's convention (docs/observability.md, "Logs"), which is Kubernetes'
// structured logging one: the message starts with a capital letter, does not end with a
// period, and says what happened; the details go in key/value pairs whose keys are
// lowerCamelCase words. golangci-lint's loggercheck checks that the pairs are pairs.
func TestLogMessagesFollowTheConvention(t *testing.T) {
	cfg := &packages.Config{Mode: packages.NeedName | packages.NeedTypes | packages.NeedSyntax | packages.NeedTypesInfo,
		Dir: testenv.RepoRoot()}
	pkgs, err := packages.Load(cfg, "./...")
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, p := range pkgs {
		for _, e := range p.Errors {
			t.Fatalf("loading %s: %v", p.PkgPath, e)
		}
		for _, f := range p.Syntax {
			ast.Inspect(f, func(n ast.Node) bool {
				call, ok := n.(*ast.CallExpr)
				if !ok {
					return true
				}
				msgAt, ok := logrCall(p.TypesInfo, call)
				if !ok || len(call.Args) <= msgAt {
					return true
				}
				checked++
				where := p.Fset.Position(call.Pos()).String()
				if msg, ok := constString(p.TypesInfo, call.Args[msgAt]); ok {
					if problem := messageProblem(msg); problem != "" {
						t.Errorf("%s: log message %q %s", where, msg, problem)
					}
				}
				for i := msgAt + 1; i < len(call.Args); i += 2 {
					if key, ok := constString(p.TypesInfo, call.Args[i]); ok && !lowerCamel.MatchString(key) {
						t.Errorf("%s: log key %q: write keys as lowerCamelCase words (\"freeBytes\")", where, key)
					}
				}
				return true
			})
		}
	}
	if checked < 30 {
		t.Errorf("only %d log calls found: the check lost its way", checked)
	}
}

// messageProblem says what is wrong with a log message, "" when nothing is.
func messageProblem(msg string) string {
	first := []rune(msg)
	switch {
	case msg == "":
		return "is empty: say what happened"
	case !unicode.IsUpper(first[0]):
		return "must start with a capital letter"
	case strings.HasSuffix(msg, "."):
		return "must not end with a period"
	}
	return ""
}

// logrCall says whether call is logr.Logger's Info or Error, and where its message is.
func logrCall(info *types.Info, call *ast.CallExpr) (int, bool) {
	sel, ok := call.Fun.(*ast.SelectorExpr)
	if !ok || (sel.Sel.Name != "Info" && sel.Sel.Name != "Error") {
		return 0, false
	}
	s := info.Selections[sel]
	if s == nil {
		return 0, false
	}
	named, ok := types.Unalias(derefed(s.Recv())).(*types.Named)
	if !ok || named.Obj().Pkg() == nil || named.Obj().Pkg().Path() != "github.com/go-logr/logr" || named.Obj().Name() != "Logger" {
		return 0, false
	}
	if sel.Sel.Name == "Error" {
		return 1, true
	}
	return 0, true
}

func derefed(t types.Type) types.Type {
	if p, ok := t.(*types.Pointer); ok {
		return p.Elem()
	}
	return t
}

func constString(info *types.Info, e ast.Expr) (string, bool) {
	tv, ok := info.Types[e]
	if !ok || tv.Value == nil || tv.Value.Kind() != constant.String {
		return "", false
	}
	return constant.StringVal(tv.Value), true
}

func TestMessageProblem(t *testing.T) {
	cases := map[string]string{
		"Pruned a Checkpoint":                     "",
		"Released the Checkpoints of a gone node": "",
		"pruned":                         "must start with a capital letter",
		"Wrote the serving certificate.": "must not end with a period",
		"":                               "is empty: say what happened",
	}
	for msg, want := range cases {
		if got := messageProblem(msg); got != want {
			t.Errorf("messageProblem(%q) = %q, want %q", msg, got, want)
		}
	}
}
