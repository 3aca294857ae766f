// Package docs checks that the docs name code that exists: every Go identifier that
// docs/*.md and README.md write as code resolves in the module or what it imports.
package docs

import (
	"go/ast"
	"go/constant"
	"go/token"
	"go/types"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"golang.org/x/tools/go/packages"
)

// index holds what the module declares, type-checked with its tests, and what the
// packages it imports export.
type index struct {
	// packages holds packages by the names code uses for them: their own names and the
	// names they are imported as (cqv1, metav1).
	packages map[string][]*types.Package
	// module says which packages are the module's own.
	module map[*types.Package]bool
	// typeNames holds the module's named types by name.
	typeNames map[string][]*types.TypeName
	// names holds every name the module declares (package-level objects, methods, struct
	// fields) and every exported name of what it imports.
	names map[string]bool
	// apiWords holds the words that the API, the manifests and the imported APIs use as
	// values or field names, which the docs also write as code and which are not Go
	// names: string constants and literals ("DryRun", "PinnedCheckpoints"), JSON field
	// names ("maxAge", "caBundle") and the identifiers of the YAML under charts/ and
	// config/ (alert names, Helm values).
	apiWords map[string]bool
}

// load type-checks the module's packages, tests included; what they import comes from
// export data, whole.
func load(root string) (*index, error) {
	cfg := &packages.Config{
		Mode:  packages.NeedName | packages.NeedTypes | packages.NeedSyntax | packages.NeedTypesInfo,
		Dir:   root,
		Tests: true,
	}
	pkgs, err := packages.Load(cfg, "./...")
	if err != nil {
		return nil, err
	}
	ix := &index{packages: map[string][]*types.Package{}, module: map[*types.Package]bool{},
		typeNames: map[string][]*types.TypeName{}, names: map[string]bool{}, apiWords: map[string]bool{}}
	var errs []string
	for _, p := range pkgs {
		for _, e := range p.Errors {
			errs = append(errs, e.Error())
		}
		if p.Types != nil {
			ix.module[p.Types] = true
		}
	}
	if len(errs) > 0 {
		return nil, &loadError{errs}
	}
	seen := map[*types.Package]bool{}
	for _, p := range pkgs {
		ix.addPackage(p.Types, seen)
		ix.addSyntax(p)
	}
	return ix, ix.addRepository(root)
}

type loadError struct{ errs []string }

func (e *loadError) Error() string { return "loading the module: " + strings.Join(e.errs, "; ") }

// addPackage indexes a package and, once each, what it imports.
func (ix *index) addPackage(p *types.Package, seen map[*types.Package]bool) {
	if seen[p] {
		return
	}
	seen[p] = true
	own := ix.module[p]
	ix.packages[p.Name()] = append(ix.packages[p.Name()], p)
	scope := p.Scope()
	for _, name := range scope.Names() {
		obj := scope.Lookup(name)
		if c, ok := obj.(*types.Const); ok && c.Val().Kind() == constant.String {
			ix.apiWords[constant.StringVal(c.Val())] = true
		}
		if !own && !obj.Exported() {
			continue
		}
		ix.names[name] = true
		tn, ok := obj.(*types.TypeName)
		if !ok {
			continue
		}
		if own {
			ix.typeNames[name] = append(ix.typeNames[name], tn)
		}
		ix.addMembers(tn.Type())
	}
	for _, ip := range p.Imports() {
		ix.addPackage(ip, seen)
	}
}

// addMembers indexes the methods and fields of a named type, and the JSON names of its
// fields.
func (ix *index) addMembers(t types.Type) {
	if named, ok := t.(*types.Named); ok {
		for i := range named.NumMethods() {
			ix.names[named.Method(i).Name()] = true
		}
	}
	switch u := t.Underlying().(type) {
	case *types.Struct:
		for i := range u.NumFields() {
			ix.names[u.Field(i).Name()] = true
			ix.addJSONName(reflect.StructTag(u.Tag(i)))
		}
	case *types.Interface:
		for i := range u.NumMethods() {
			ix.names[u.Method(i).Name()] = true
		}
	}
}

func (ix *index) addJSONName(tag reflect.StructTag) {
	if v, ok := tag.Lookup("json"); ok {
		if n, _, _ := strings.Cut(v, ","); n != "" && n != "-" {
			ix.apiWords[n] = true
		}
	}
}

// addSyntax indexes the names the module's files import packages as, their string
// literals that are identifiers (condition reasons, enum values, the names of older
// versions that tests still write), and the JSON names of their structs.
func (ix *index) addSyntax(p *packages.Package) {
	for _, f := range p.Syntax {
		for _, imp := range f.Imports {
			if imp.Name == nil || imp.Name.Name == "_" || imp.Name.Name == "." {
				continue
			}
			path, _ := strconv.Unquote(imp.Path.Value)
			for _, ip := range p.Types.Imports() {
				if ip.Path() == path {
					ix.packages[imp.Name.Name] = append(ix.packages[imp.Name.Name], ip)
				}
			}
		}
		if strings.HasSuffix(p.PkgPath, "/test/docs") || strings.HasSuffix(p.PkgPath, ".test") {
			// This package's literals are the names its tests expect not to exist; those
			// of the generated test mains are the names of every test.
			continue
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.BasicLit:
				if s, err := strconv.Unquote(n.Value); err == nil && n.Kind == token.STRING && identifier.MatchString(s) {
					ix.apiWords[s] = true
				}
			case *ast.Field:
				// JSON names of every struct, local types too.
				if n.Tag != nil {
					tag, _ := strconv.Unquote(n.Tag.Value)
					ix.addJSONName(reflect.StructTag(tag))
				}
			}
			return true
		})
	}
}

var (
	identifier = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	// yamlWord is a key, or a value that is a single word, of a YAML line.
	yamlWord = regexp.MustCompile(`(?m)^[\s-]*([A-Za-z_][A-Za-z0-9_]*):(?:\s+"?([A-Za-z_][A-Za-z0-9_]*)"?\s*$)?`)
)

// addRepository indexes the names of the files at the top of the repository (Makefile,
// Dockerfile) and the keys and one-word values of the YAML under charts/ and config/
// (alert names, Helm values).
func (ix *index) addRepository(root string) error {
	entries, err := os.ReadDir(root)
	if err != nil {
		return err
	}
	for _, e := range entries {
		ix.apiWords[e.Name()] = true
	}
	for _, dir := range []string{"charts", "config"} {
		err := filepath.WalkDir(filepath.Join(root, dir), func(path string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || filepath.Ext(path) != ".yaml" {
				return err
			}
			data, err := os.ReadFile(path)
			for _, m := range yamlWord.FindAllStringSubmatch(string(data), -1) {
				ix.apiWords[m[1]] = true
				if m[2] != "" {
					ix.apiWords[m[2]] = true
				}
			}
			return err
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// resolves says whether path (a.b.c) names something that exists: a package and what it
// declares, then fields and methods; a type of the module and its fields and methods;
// or, alone, any name the index holds.
func (ix *index) resolves(path []string) bool {
	if len(path) == 1 {
		return ix.names[path[0]]
	}
	for _, p := range ix.packages[path[0]] {
		obj := p.Scope().Lookup(path[1])
		if obj == nil {
			continue
		}
		if len(path) == 2 || selects(obj.Type(), obj.Pkg(), path[2:]) {
			return true
		}
	}
	for _, tn := range ix.typeNames[path[0]] {
		if selects(tn.Type(), tn.Pkg(), path[1:]) {
			return true
		}
	}
	return false
}

// selects follows fields and methods from t; a method stands for what it returns.
func selects(t types.Type, pkg *types.Package, path []string) bool {
	for _, name := range path {
		obj, _, _ := types.LookupFieldOrMethod(t, true, pkg, name)
		if obj == nil {
			return false
		}
		t = obj.Type()
		if sig, ok := t.(*types.Signature); ok && sig.Results().Len() == 1 {
			t = sig.Results().At(0).Type()
		}
	}
	return true
}

// fileExtensions end dotted names that are files (`config.dump`, `types.go`), not Go.
var fileExtensions = map[string]bool{"go": true, "md": true, "log": true, "tmp": true, "tar": true, "json": true,
	"yaml": true, "dump": true, "img": true, "key": true, "crt": true, "sh": true, "txt": true, "io": true}

// checked says whether path is written as Go, so that it must name something that
// exists: a dotted path from a package of the module, from an imported package to an
// exported name, or from a type of the module (unless every part is a word of the API,
// as in the status key `group.storage`); or a single name that reads as Go (a capital, or
// mixedCaps such as setStatus) and is no word of the API or the manifests.
func (ix *index) checked(path []string) bool {
	if cited[strings.Join(path, ".")] {
		return false
	}
	if len(path) > 1 && fileExtensions[path[len(path)-1]] {
		return false
	}
	if len(path) > 1 {
		for _, p := range ix.packages[path[0]] {
			if ix.module[p] || token.IsExported(path[1]) {
				return true
			}
		}
		if len(ix.typeNames[path[0]]) == 0 {
			return false
		}
		for _, part := range path {
			if !ix.apiWords[part] {
				return true
			}
		}
		return false
	}
	name := path[0]
	if ix.apiWords[name] || strings.Contains(name, "_") || name == strings.ToUpper(name) {
		return false
	}
	return token.IsExported(name) || mixedCaps(name)
}

// cited are names of other projects' code and settings that the docs cite with their
// source and that the module does not import: each was read where the doc says.
var cited = map[string]bool{
	// cri-o/cri-o (docs/node-agent.md, "What the runtimes write")
	"prepareCheckpointExport": true, "exportCheckpoint": true, "SpecAddAnnotations": true, "SetNameAndID": true,
	// containerd/containerd (the same section)
	"CheckpointContainer": true, "DefaultCRIAnnotations": true, "makeContainerName": true, "archive.Diff": true,
	// containers/storage (the same section)
	"TarWithOptions": true,
	// cri-o/cri-o and containerd/containerd, the image a runtime records (docs/node-agent.md)
	"generateContainerConfig": true, "GetImageRef": true, "UserSpecifiedImage": true, "UserRequestedImage": true,
	"SomeNameOfTheImage": true, "buildImageResult": true, "resolveAndVerifyContainerImage": true,
	"setupContainerEtcDirectory": true, "CRCreateRootFsDiffTar": true, "ImageSpec": true,
	// cri-o/cri-o v1.36.3 on the real node (docs/real-node-crio.md)
	"EnableCriuSupport": true, "checkRelevantControllers": true, "CgroupHasHugetlb": true, "CRImportCheckpoint": true,
	// the kubelet and containerd on a real node (docs/real-node.md)
	"podLogsDir": true, "setupKernelTunables": true, "StopPodSandbox": true, "MakeRShared": true,
	// kubernetes/kubernetes: the apiserver's watch cache (docs/node-agent.md), feature gates
	// (docs/quota-controller.md)
	"storeSnapshotter": true, "CBORServingAndStorage": true, "ClientsAllowCBOR": true, "ClientsPreferCBOR": true,
	// cert-manager's feature gate (docs/deployment.md)
	"CAInjectorMerging": true,
	// cert-manager's version variables and cmctl's renewal condition (docs/real-node.md,
	// "The cert-manager lane")
	"AppVersion": true, "AppGitCommit": true, "Issuing": true, "ManuallyTriggered": true,
	// Linux's /proc/PID/status (docs/quota-controller.md)
	"VmHWM": true,
}

// mixedCaps: a lower-case letter followed by an upper-case one (setStatus, QuotaView).
func mixedCaps(s string) bool {
	for i := 1; i < len(s); i++ {
		if s[i-1] >= 'a' && s[i-1] <= 'z' && s[i] >= 'A' && s[i] <= 'Z' {
			return true
		}
	}
	return false
}
