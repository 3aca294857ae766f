package apiserver

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
	"k8s.io/client-go/rest"
)

// unreachable is a kube-apiserver address nothing answers at: a closed port, which refuses at
// once, or a listener that accepts and never speaks, as a dropped connection behaves.
func unreachable(t *testing.T, silent bool) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if !silent {
		_ = l.Close()
		return addr
	}
	t.Cleanup(func() { _ = l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { _ = c.Close() })
		}
	}()
	return addr
}

// Each failed attempt is logged, the first within the first second, with the address, the
// error and the attempt's number; Wait ends when its context does.
func TestWaitLogsEachAttempt(t *testing.T) {
	tests := map[string]struct {
		silent    bool
		wantError string
	}{
		"closed port":           {wantError: "connection refused"},
		"listener that is mute": {silent: true, wantError: "no answer within"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			addr := unreachable(t, tc.silent)
			type line struct {
				at   time.Duration
				args map[string]any
			}
			lines := make(chan line, 100)
			start := time.Now()
			log := funcr.NewJSON(func(obj string) {
				var m map[string]any
				_ = json.Unmarshal([]byte(obj), &m)
				lines <- line{time.Since(start), m}
			}, funcr.Options{})
			ctx, cancel := context.WithTimeout(context.Background(), 3500*time.Millisecond)
			defer cancel()
			err := Wait(ctx, &rest.Config{Host: "https://" + addr, BearerToken: "t"}, log)
			if err == nil {
				t.Fatal("Wait returned nil with nothing answering")
			}
			close(lines)
			n := 0
			for l := range lines {
				n++
				if n == 1 && l.at > time.Second {
					t.Errorf("first line after %s, want within the first second", l.at)
				}
				if l.args["msg"] != "Waiting for the kube-apiserver" || l.args["address"] != "https://"+addr ||
					l.args["attempt"] != float64(n) || !strings.Contains(l.args["error"].(string), tc.wantError) {
					t.Errorf("line %d: %v, want attempt %d at https://%s failing with %q", n, l.args, n, addr, tc.wantError)
				}
			}
			if n < 2 {
				t.Errorf("%d lines in 3.5 s, want one per attempt (at least 2)", n)
			}
		})
	}
}

// Both binaries, pointed at a closed port, log at info what they wait for from the first
// second, and stop cleanly on SIGTERM while waiting.
func TestBinariesSayWhatTheyWaitFor(t *testing.T) {
	addr := unreachable(t, false)
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfig, []byte(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://`+addr+`"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
`), 0o600); err != nil {
		t.Fatal(err)
	}
	common := []string{"--kubeconfig", kubeconfig, "--metrics-bind-address", "0", "--health-probe-bind-address", "0"}
	tests := map[string][]string{
		"manager":    common,
		"node-agent": append([]string{"--node-name", "n", "--checkpoint-dir", t.TempDir(), "--state-dir", t.TempDir()}, common...),
	}
	for name, args := range tests {
		t.Run(name, func(t *testing.T) {
			bin := filepath.Join(t.TempDir(), name)
			if out, err := exec.Command("go", "build", "-o", bin, "../../"+name).CombinedOutput(); err != nil {
				t.Fatalf("go build: %v\n%s", err, out)
			}
			var out bytes.Buffer
			cmd := exec.Command(bin, args...)
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			time.Sleep(1500 * time.Millisecond)
			if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			if err := cmd.Wait(); err != nil {
				t.Errorf("stopped while waiting: %v, want a clean exit", err)
			}
			var first map[string]any
			sc := bufio.NewScanner(&out)
			for sc.Scan() {
				var m map[string]any
				if json.Unmarshal(sc.Bytes(), &m) == nil && m["msg"] == "Waiting for the kube-apiserver" {
					first = m
					break
				}
			}
			if first == nil {
				t.Fatalf("no line says what it waits for in 1.5 s:\n%s", out.String())
			}
			if first["level"] != "info" || first["address"] != "https://"+addr || first["attempt"] != float64(1) ||
				!strings.Contains(first["error"].(string), "connection refused") {
				t.Errorf("first line %v: want level info, address https://%s, attempt 1, the error", first, addr)
			}
		})
	}
}
