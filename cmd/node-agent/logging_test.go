package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"os/exec"
	"path/filepath"
	"testing"

	"sigs.k8s.io/controller-runtime/pkg/log/zap"
)

// TestProductionLoggingByDefault runs the real binary, which fails to find its cluster,
// and checks that it logs JSON unless --zap-devel is given.
func TestProductionLoggingByDefault(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "bin")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
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

// TestMalformedLogCallDoesNotPanic makes the call that development mode panics on (an odd
// number of key/value arguments) with the flags' defaults, and with --zap-devel to show
// that the test can tell.
func TestMalformedLogCallDoesNotPanic(t *testing.T) {
	tests := map[string]struct {
		args      []string
		wantPanic bool
	}{
		"default":     {wantPanic: false},
		"--zap-devel": {args: []string{"--zap-devel"}, wantPanic: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			opts := zap.Options{Development: false}
			fs := flag.NewFlagSet("test", flag.ContinueOnError)
			opts.BindFlags(fs)
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			log := zap.New(zap.UseFlagOptions(&opts), zap.WriteTo(&buf))
			panicked := func() (p bool) {
				defer func() { p = recover() != nil }()
				log.Info("archive read", "archive") //nolint:loggercheck // the value is missing, on purpose
				return false
			}()
			if panicked != tc.wantPanic {
				t.Errorf("panicked = %v, want %v; logged:\n%s", panicked, tc.wantPanic, buf.String())
			}
			if !tc.wantPanic && !bufio.NewScanner(&buf).Scan() {
				t.Error("the malformed call logged nothing")
			}
		})
	}
}
