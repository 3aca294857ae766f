// Command oomclamp runs runc for CRI-O on a machine without CAP_SYS_RESOURCE: before runc
// creates a container, it raises a negative process.oomScoreAdj in the bundle's config.json
// to 0, which an unprivileged writer of /proc/self/oom_score_adj may set. The kubelet asks for
// -998 for a pod's infra (pause) container; without the capability runc fails on it, and
// CRI-O has no setting like containerd's restrict_oom_score_adj. Every other call reaches
// runc unchanged.
//
//	oomclamp /path/to/runc [runc's arguments...]
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: oomclamp /path/to/runc [runc's arguments...]")
		os.Exit(2)
	}
	runc, args := os.Args[1], os.Args[2:]
	if bundle := bundleOf(args); bundle != "" {
		if err := clamp(filepath.Join(bundle, "config.json")); err != nil {
			fmt.Fprintln(os.Stderr, "oomclamp:", err)
			os.Exit(1)
		}
	}
	err := syscall.Exec(runc, append([]string{runc}, args...), os.Environ())
	fmt.Fprintf(os.Stderr, "oomclamp: running %s: %v\n", runc, err)
	os.Exit(1)
}

// globalWithValue are runc's global flags that take a value as the next argument.
var globalWithValue = map[string]bool{"--root": true, "--log": true, "--log-format": true, "--criu": true}

// bundleOf is the bundle directory of a `create` or `run` call (--bundle, -b), or "".
func bundleOf(args []string) string {
	command := ""
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case command == "" && globalWithValue[a]:
			i++
		case a == "--bundle" || a == "-b":
			if i+1 < len(args) && (command == "create" || command == "run") {
				return args[i+1]
			}
			i++
		case strings.HasPrefix(a, "--bundle="):
			if command == "create" || command == "run" {
				return strings.TrimPrefix(a, "--bundle=")
			}
		case command == "" && !strings.HasPrefix(a, "-"):
			command = a
		}
	}
	return ""
}

// clamp rewrites config.json with process.oomScoreAdj 0 where it is negative; every other
// value is kept as written (numbers as their text).
func clamp(path string) error {
	info, err := os.Stat(path)
	if err != nil {
		return err
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var spec map[string]json.RawMessage
	if err := json.Unmarshal(data, &spec); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	var process map[string]json.RawMessage
	if raw, ok := spec["process"]; !ok || json.Unmarshal(raw, &process) != nil {
		return nil
	}
	var adj int
	if raw, ok := process["oomScoreAdj"]; !ok || json.Unmarshal(raw, &adj) != nil || adj >= 0 {
		return nil
	}
	process["oomScoreAdj"] = json.RawMessage("0")
	if spec["process"], err = json.Marshal(process); err != nil {
		return err
	}
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(spec); err != nil {
		return err
	}
	return os.WriteFile(path, out.Bytes(), info.Mode().Perm())
}
