// Package logtest checks how a binary of this project logs, from the outside.
package logtest

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"testing"
)

// ProductionByDefault builds the main package in dir, runs it where it cannot find a
// cluster, and checks that its first line is JSON at the error level unless --zap-devel is
// given.
func ProductionByDefault(t *testing.T, dir string) {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "bin")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Dir = dir
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", dir, err, out)
	}
	tests := map[string]struct {
		args     []string
		wantJSON bool
	}{
		"default":     {args: nil, wantJSON: true},
		"--zap-devel": {args: []string{"--zap-devel"}, wantJSON: false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			args := append([]string{"--kubeconfig", filepath.Join(t.TempDir(), "missing"), "--metrics-bind-address", "0", "--health-probe-bind-address", "0"}, tc.args...)
			out, err := exec.Command(bin, args...).CombinedOutput()
			if err == nil {
				t.Fatalf("started without a cluster:\n%s", out)
			}
			first, _, _ := bytes.Cut(out, []byte("\n"))
			var line map[string]any
			isJSON := json.Unmarshal(first, &line) == nil
			if isJSON != tc.wantJSON {
				t.Fatalf("first line is JSON = %v, want %v:\n%s", isJSON, tc.wantJSON, out)
			}
			if isJSON && line["level"] != "error" {
				t.Errorf("level %v, want error: %s", line["level"], first)
			}
		})
	}
}
