package main

import (
	"os"
	"path/filepath"
	"testing"
)

func TestBundleOf(t *testing.T) {
	tests := map[string]struct {
		args []string
		want string
	}{
		"create":                 {[]string{"--root", "/run/r", "create", "--bundle", "/b", "--pid-file", "/p", "id"}, "/b"},
		"create, short flag":     {[]string{"create", "-b", "/b", "id"}, "/b"},
		"run, with =":            {[]string{"--systemd-cgroup", "run", "--bundle=/b", "id"}, "/b"},
		"checkpoint is not":      {[]string{"checkpoint", "--image-path", "/i", "id"}, ""},
		"exec is not":            {[]string{"exec", "--process", "/p.json", "id"}, ""},
		"a global flag's value":  {[]string{"--root", "create", "state", "id"}, ""},
		"no command":             {[]string{"--version"}, ""},
		"--bundle without value": {[]string{"create", "--bundle"}, ""},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := bundleOf(tc.args); got != tc.want {
				t.Errorf("bundleOf(%q) = %q, want %q", tc.args, got, tc.want)
			}
		})
	}
}

func TestClamp(t *testing.T) {
	tests := map[string]struct{ in, want string }{
		"negative":   {`{"ociVersion":"1.2.0","process":{"oomScoreAdj":-998,"args":["/pause"]},"linux":{"resources":{"memory":{"limit":9223372036854771712}}}}`, `{"linux":{"resources":{"memory":{"limit":9223372036854771712}}},"ociVersion":"1.2.0","process":{"args":["/pause"],"oomScoreAdj":0}}` + "\n"},
		"positive":   {`{"process":{"oomScoreAdj":500}}`, `{"process":{"oomScoreAdj":500}}`},
		"none":       {`{"process":{"args":["/x"]}}`, `{"process":{"args":["/x"]}}`},
		"no process": {`{"ociVersion":"1.2.0"}`, `{"ociVersion":"1.2.0"}`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "config.json")
			if err := os.WriteFile(path, []byte(tc.in), 0o640); err != nil {
				t.Fatal(err)
			}
			if err := clamp(path); err != nil {
				t.Fatal(err)
			}
			got, _ := os.ReadFile(path)
			if string(got) != tc.want {
				t.Errorf("config.json:\n got %s\nwant %s", got, tc.want)
			}
			if info, _ := os.Stat(path); info.Mode().Perm() != 0o640 {
				t.Errorf("mode %v, want 0640", info.Mode().Perm())
			}
		})
	}
	if err := clamp(filepath.Join(t.TempDir(), "missing.json")); err == nil {
		t.Error("a missing config.json: no error")
	}
}
