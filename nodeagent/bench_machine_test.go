package nodeagent_test

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// machineCPU is a reading of the CPU time used so far by the whole machine and by each of
// its processes, to tell whether a benchmark's window was bound by the machine's cores
// and which processes took them.
type machineCPU struct {
	at          time.Time
	busy, total float64 // clock ticks, /proc/stat's first line
	procs       map[int]procCPUTicks
}

// procCPUTicks is a process's name and the user and system clock ticks it used.
type procCPUTicks struct {
	name  string
	ticks float64
}

// clockTicks is USER_HZ, the unit of /proc/stat and /proc/PID/stat on Linux.
const clockTicks = 100

func readMachineCPU() machineCPU {
	m := machineCPU{at: time.Now(), procs: map[int]procCPUTicks{}}
	if data, err := os.ReadFile("/proc/stat"); err == nil {
		line, _, _ := strings.Cut(string(data), "\n")
		for i, f := range strings.Fields(line)[1:] {
			v, _ := strconv.ParseFloat(f, 64)
			m.total += v
			if i != 3 && i != 4 { // idle, iowait
				m.busy += v
			}
		}
	}
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		if name, ticks, err := procStat(pid); err == nil {
			m.procs[pid] = procCPUTicks{name: name, ticks: ticks}
		}
	}
	return m
}

// procStat reads a process's command name and the user and system clock ticks it used
// from /proc/PID/stat.
func procStat(pid int) (name string, ticks float64, err error) {
	data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return "", 0, err
	}
	// The command name is in parentheses and may hold spaces: fields count from after it.
	s := string(data)
	open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || end < open {
		return "", 0, fmt.Errorf("/proc/%d/stat: no command name in %q", pid, s)
	}
	fields := strings.Fields(s[end+2:])
	if len(fields) < 13 {
		return "", 0, fmt.Errorf("/proc/%d/stat: %d fields after the command name", pid, len(fields))
	}
	utime, _ := strconv.ParseFloat(fields[11], 64)
	stime, _ := strconv.ParseFloat(fields[12], 64)
	return s[open+1 : end], utime + stime, nil
}

// since logs how busy the machine's cores were since m, and the processes that used the
// most CPU, in all and per archive; it returns the machine's busy share (0-1).
func (m machineCPU) since(tb testing.TB, what string, archives int) float64 {
	tb.Helper()
	now := readMachineCPU()
	wall := now.at.Sub(m.at).Seconds()
	busy := (now.busy - m.busy) / clockTicks
	share := (now.busy - m.busy) / (now.total - m.total)
	type use struct {
		proc string
		cpu  float64
	}
	var uses []use
	// By process ID: a kernel worker's name changes with its work. A process started in
	// the window is counted whole.
	for pid, p := range now.procs {
		if d := p.ticks - m.procs[pid].ticks; d > 0 {
			uses = append(uses, use{fmt.Sprintf("%d %s", pid, p.name), d / clockTicks})
		}
	}
	sort.Slice(uses, func(i, j int) bool { return uses[i].cpu > uses[j].cpu })
	var out strings.Builder
	fmt.Fprintf(&out, "CPU, %s: %.2f s wall, the machine's %d cores %.0f%% busy (%.2f CPU-s, %.1f ms per archive)",
		what, wall, numCPU(), 100*share, busy, 1000*busy/float64(archives))
	for i, u := range uses {
		if i == 8 || u.cpu < 0.02 {
			break
		}
		fmt.Fprintf(&out, "\n  %-44s %5.2f s  %5.1f ms per archive", u.proc, u.cpu, 1000*u.cpu/float64(archives))
	}
	tb.Log(out.String())
	return share
}

// numCPU counts the cpuN lines of /proc/stat.
func numCPU() int {
	data, _ := os.ReadFile("/proc/stat")
	n := 0
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "cpu") && !strings.HasPrefix(line, "cpu ") {
			n++
		}
	}
	return n
}
