package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestBadFlags runs the real binary with flags a person could get wrong and checks that it
// exits with a message that names the flag and the fix, instead of starting or crashing.
func TestBadFlags(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "node-agent")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	// Any kubeconfig will do: the flags are checked before the cluster is contacted.
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfig, []byte(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
`), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := map[string]struct {
		args []string
		want string
	}{
		"no node name": {
			args: []string{"--checkpoint-dir", t.TempDir()},
			want: "set --node-name or the NODE_NAME environment variable",
		},
		"relative directory": {
			args: []string{"--node-name", "n", "--checkpoint-dir", "checkpoints"},
			want: `checkpoint directory \"checkpoints\" is not an absolute path`,
		},
		"memory limit without a unit the quantity parser knows": {
			args: []string{"--node-name", "n", "--memory-limit", "80MB"},
			want: `\"80MB\" is not a size such as 80Mi or 1Gi`,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			cmd := exec.Command(bin, append([]string{"--kubeconfig", kubeconfig, "--metrics-bind-address", "0", "--health-probe-bind-address", "0"}, tc.args...)...)
			// GOMEMLIMIT would take the place of --memory-limit.
			cmd.Env = withoutGOMEMLIMIT(append(os.Environ(), "NODE_NAME="))
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("the agent started; output:\n%s", out)
			}
			if !strings.Contains(string(out), tc.want) {
				t.Errorf("output does not say %q:\n%s", tc.want, out)
			}
		})
	}
}

func withoutGOMEMLIMIT(env []string) []string {
	out := env[:0]
	for _, e := range env {
		if !strings.HasPrefix(e, "GOMEMLIMIT=") {
			out = append(out, e)
		}
	}
	return out
}
