package node

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

// The agent's process as the node sees it: its CPU time and memory, read from /proc, for the
// figures of docs/real-node.md.

// agentPID is the node agent's process: /node-agent watching this node's checkpoint directory.
func agentPID() int {
	GinkgoHelper()
	var found []int
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		cmd, err := os.ReadFile(filepath.Join(d, "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(string(cmd), "\x00")
		if args[0] == "/node-agent" && strings.Contains(string(cmd), node["CHECKPOINT_DIR"]) {
			pid, _ := strconv.Atoi(filepath.Base(d))
			found = append(found, pid)
		}
	}
	Expect(found).To(HaveLen(1), "one node agent process")
	return found[0]
}

// usage is a process's CPU time so far and its resident memory now and at its peak.
type usage struct {
	cpu      time.Duration
	rss, hwm int64 // bytes
}

func (u usage) String() string {
	return fmt.Sprintf("cpu %v rss %d MiB peak %d MiB", u.cpu, u.rss>>20, u.hwm>>20)
}

func processUsage(pid int) usage {
	GinkgoHelper()
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	Expect(err).NotTo(HaveOccurred())
	// Fields after the command's closing parenthesis: utime and stime are the 12th and 13th.
	fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	utime, _ := strconv.ParseInt(fields[11], 10, 64)
	stime, _ := strconv.ParseInt(fields[12], 10, 64)
	// Linux reports them in clock ticks of 1/100 s (USER_HZ).
	u := usage{cpu: time.Duration(utime+stime) * 10 * time.Millisecond}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	Expect(err).NotTo(HaveOccurred())
	for _, line := range strings.Split(string(status), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		kb, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			u.rss = kb << 10
		case "VmHWM:":
			u.hwm = kb << 10
		}
	}
	return u
}
