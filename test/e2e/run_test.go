package e2e

import (
	"bufio"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	"github.com/checkpoint-quota/checkpoint-quota/test/archive"
	"github.com/checkpoint-quota/checkpoint-quota/test/s3server"
	"github.com/checkpoint-quota/checkpoint-quota/test/testenv"
)

// makeRun is `make run` (or its program) started as a user starts it, in its own process
// group as a shell would, with its output captured line by line.
type makeRun struct {
	cmd   *exec.Cmd
	lines chan string
	seen  strings.Builder
}

func startMakeRun(localDir string, extraEnv ...string) *makeRun {
	return start(exec.Command("make", "--no-print-directory", "run", "RUN_ARGS=--local-dir="+localDir), extraEnv...)
}

// startProgram runs make run's program, built by buildProgram, without make in between.
func startProgram(program, localDir string, extraEnv ...string) *makeRun {
	return start(exec.Command(program, "--local-dir="+localDir), extraEnv...)
}

// buildProgram builds hack/run, the program behind make run, into a temporary directory.
func buildProgram() string {
	program := filepath.Join(GinkgoT().TempDir(), "run")
	build := exec.Command("go", "build", "-o", program, "./hack/run")
	build.Dir = testenv.RepoRoot()
	out, err := build.CombinedOutput()
	Expect(err).NotTo(HaveOccurred(), string(out))
	return program
}

func start(cmd *exec.Cmd, extraEnv ...string) *makeRun {
	cmd.Dir = testenv.RepoRoot()
	cmd.Env = append(withoutKubeconfig(os.Environ()), extraEnv...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.StdoutPipe()
	Expect(err).NotTo(HaveOccurred())
	cmd.Stderr = cmd.Stdout
	Expect(cmd.Start()).To(Succeed())
	r := &makeRun{cmd: cmd, lines: make(chan string, 1000)}
	go func() {
		s := bufio.NewScanner(out)
		for s.Scan() {
			r.lines <- s.Text()
		}
		close(r.lines)
	}()
	return r
}

// waitFor reads output until a line contains text, and returns everything read so far.
func (r *makeRun) waitFor(text string, timeout time.Duration) string {
	deadline := time.After(timeout)
	for {
		select {
		case line, ok := <-r.lines:
			if !ok {
				Fail("make run ended before printing " + strconv.Quote(text) + ":\n" + r.seen.String())
			}
			r.seen.WriteString(line + "\n")
			if strings.Contains(line, text) {
				return r.seen.String()
			}
		case <-deadline:
			Fail("make run did not print " + strconv.Quote(text) + " in time:\n" + r.seen.String())
		}
	}
}

// interrupt sends Ctrl-C to the process group, as a terminal does, waits for the exit and
// returns it with the output printed after the signal.
func (r *makeRun) interrupt() (after string, exit error) {
	Expect(syscall.Kill(-r.cmd.Process.Pid, syscall.SIGINT)).To(Succeed())
	done := make(chan error, 1)
	var rest strings.Builder
	go func() {
		for line := range r.lines {
			rest.WriteString(line + "\n")
		}
		done <- r.cmd.Wait()
	}()
	Eventually(done, 60*time.Second).Should(Receive(&exit))
	return rest.String(), exit
}

// statusBlock opens what make run prints once everything is up.
const statusBlock = "checkpoint-quota is running."

// alarming matches what a newcomer reads as a crash: a goroutine dump, a Go stack frame, a
// panic, or controller-runtime's complaint that logging was never set up.
var alarming = regexp.MustCompile(`(?m)^goroutine \d+ \[|^\s+\S+\.go:\d+|^panic: |never called|logs will not be displayed`)

// logLine is a line of a zap logger: the test bed's and the clients' logs belong in
// <local-dir>/logs/run.log, not on the terminal.
var logLine = regexp.MustCompile(`(?m)^\S+\t(DEBUG|INFO|WARN|ERROR)\t.*$`)

// expectQuietStart fails on anything alarming, and on any log line, in the output before
// the status block.
func expectQuietStart(out string) {
	before, _, found := strings.Cut(out, statusBlock)
	Expect(found).To(BeTrue(), "no status block in:\n%s", out)
	Expect(alarming.FindAllString(before, 5)).To(BeEmpty(), "make run printed this before its status block:\n%s", before)
	Expect(logLine.FindAllString(before, 5)).To(BeEmpty(), "make run logged this before its status block:\n%s", before)
}

// expectCleanExit checks that Ctrl-C ended make run's program with exit status 0.
func expectCleanExit(after string, exit error) {
	Expect(exit).NotTo(HaveOccurred(), "make run's program did not exit 0 after Ctrl-C; it printed:\n%s", after)
	Expect(after).To(ContainSubstring("Stopped."))
}

// expectMakeInterrupted checks that Ctrl-C ended make run without a make error: the program
// exited 0, so make reports nothing. GNU make itself, having been sent the SIGINT too, then
// ends by that signal (it re-raises it so that a calling shell knows it was interrupted), or
// exits 0 where SIGINT was ignored when it started.
func expectMakeInterrupted(after string, exit error) {
	Expect(after).NotTo(ContainSubstring("make: ***"), "make reported an error after Ctrl-C")
	Expect(after).To(ContainSubstring("Stopped."))
	if exit != nil {
		var exitErr *exec.ExitError
		Expect(errors.As(exit, &exitErr)).To(BeTrue(), "waiting for make: %v", exit)
		status := exitErr.Sys().(syscall.WaitStatus)
		Expect(status.Signaled() && status.Signal() == syscall.SIGINT).To(BeTrue(),
			"make ended with %v after Ctrl-C, neither 0 nor by the SIGINT; it printed:\n%s", exit, after)
	}
}

var _ = Describe("make run", Ordered, func() {
	It("starts a local control plane when there is no KUBECONFIG, and Ctrl-C leaves no process behind", func(ctx context.Context) {
		local := GinkgoT().TempDir()
		run := startMakeRun(local, "PATH="+slowGo(GinkgoT().TempDir())+":"+os.Getenv("PATH"))
		out := run.waitFor("Ctrl-C stops everything", 10*time.Minute)
		Expect(out).To(ContainSubstring("starting a local control plane"))
		expectQuietStart(out)
		kubeconfig := filepath.Join(local, "kubeconfig")
		Expect(out).To(ContainSubstring(kubeconfig))
		Expect(out).To(ContainSubstring("make demo"))

		descendants := descendantsOf(run.cmd.Process.Pid)
		Expect(commands(descendants)).To(ContainElements(ContainSubstring("etcd"), ContainSubstring("kube-apiserver"), ContainSubstring("manager"), ContainSubstring("node-agent")))

		By("following the instructions: the printed kubeconfig answers kubectl, and an archive shows up")
		c := clientFor(kubeconfig)
		archive.New("default", "demo-0", "app").MustWrite(filepath.Join(local, "checkpoints"))
		Eventually(func() int {
			var list cqv1.CheckpointList
			if err := c.List(ctx, &list); err != nil {
				return -1
			}
			return len(list.Items)
		}, 60*time.Second).Should(Equal(1))
		stdout, stderr, err := env.KubectlWith(kubeconfig, "", "get", "checkpointquotas,checkpoints", "-A")
		Expect(err).NotTo(HaveOccurred(), stderr)
		Expect(stdout).To(ContainSubstring("demo-0"))

		By("acting as a namespace editor as the instructions say: edit reads Checkpoints, and a pinned one's delete is refused")
		_, stderr, err = env.KubectlWith(kubeconfig, "", "create", "rolebinding", "alice-edit", "--clusterrole=edit", "--user=alice", "-n", "default")
		Expect(err).NotTo(HaveOccurred(), stderr)
		Eventually(func() string {
			stdout, _, _ := env.KubectlWith(kubeconfig, "", "--as", "alice", "-n", "default", "get", "checkpoints")
			return stdout
		}).Should(ContainSubstring("demo-0"))
		var list cqv1.CheckpointList
		Expect(c.List(ctx, &list)).To(Succeed())
		pinned := list.Items[0].Name
		_, stderr, err = env.KubectlWith(kubeconfig, "", "-n", "default", "patch", "checkpoint", pinned, "--type", "merge", "-p", `{"spec":{"pinned":true}}`)
		Expect(err).NotTo(HaveOccurred(), stderr)
		_, stderr, err = env.KubectlWith(kubeconfig, "", "--as", "alice", "-n", "default", "delete", "checkpoint", pinned)
		Expect(err).To(HaveOccurred())
		Expect(stderr).To(ContainSubstring("is pinned"))
		Expect(out).To(ContainSubstring("act as their ServiceAccounts (system:serviceaccount:checkpoint-quota-system:"))

		By("the sample CheckpointStore: offered, reached and written by the node agent, when the S3 server is built")
		if _, err := s3server.Binary(); err != nil {
			Expect(out).To(ContainSubstring("No sample CheckpointStore: the S3 server is not built (hack/s3server.sh"))
		} else {
			Expect(out).To(ContainSubstring(`A sample CheckpointStore "sample": SeaweedFS at http://127.0.0.1:`))
			Expect(commands(descendants)).To(ContainElement(ContainSubstring("weed")))
			Eventually(func(g Gomega) {
				var st cqv1.CheckpointStore
				g.Expect(c.Get(ctx, client.ObjectKey{Name: "sample"}, &st)).To(Succeed())
				g.Expect(meta.IsStatusConditionTrue(st.Status.Conditions, cqv1.StoreConditionWritable)).To(BeTrue(), "%v", st.Status.Conditions)
			}, 90*time.Second).Should(Succeed())
		}

		expectMakeInterrupted(run.interrupt())
		for _, pid := range descendants {
			Expect(alive(pid)).To(BeFalse(), "process %d (%s) is still running after Ctrl-C", pid, command(pid))
		}
	}, NodeTimeout(15*time.Minute))

	It("uses the cluster in KUBECONFIG instead of starting its own", func(ctx context.Context) {
		other, err := testenv.Start(testenv.Options{})
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(other.Stop)
		local := GinkgoT().TempDir()
		run := startMakeRun(local, "KUBECONFIG="+other.Kubeconfig)
		out := run.waitFor("Ctrl-C stops everything", 10*time.Minute)
		Expect(out).To(ContainSubstring("Using the cluster of KUBECONFIG=" + other.Kubeconfig))
		Expect(out).NotTo(ContainSubstring("starting a local control plane"))
		Expect(commands(descendantsOf(run.cmd.Process.Pid))).NotTo(ContainElement(ContainSubstring("etcd")))

		archive.New("default", "elsewhere-0", "app").MustWrite(filepath.Join(local, "checkpoints"))
		Eventually(func(g Gomega) int {
			var list cqv1.CheckpointList
			g.Expect(other.Client.List(ctx, &list)).To(Succeed())
			return len(list.Items)
		}, 60*time.Second).Should(Equal(1))
		expectMakeInterrupted(run.interrupt())

		By("running the program without make: Ctrl-C is exit status 0")
		prog := startProgram(buildProgram(), GinkgoT().TempDir(), "KUBECONFIG="+other.Kubeconfig)
		expectQuietStart(prog.waitFor("Ctrl-C stops everything", 5*time.Minute))
		expectCleanExit(prog.interrupt())
	}, NodeTimeout(15*time.Minute))

	It("exits 0 on Ctrl-C while it is still starting, and leaves no process behind", func(_ context.Context) {
		prog := startProgram(buildProgram(), GinkgoT().TempDir())
		prog.waitFor("starting a local control plane", 5*time.Minute)
		// The control plane is coming up: etcd, at least, has started.
		Eventually(func() []string { return commands(descendantsOf(prog.cmd.Process.Pid)) }, 60*time.Second).
			Should(ContainElement(ContainSubstring("etcd")))
		descendants := descendantsOf(prog.cmd.Process.Pid)
		expectCleanExit(prog.interrupt())
		for _, pid := range descendants {
			Expect(alive(pid)).To(BeFalse(), "process %d (%s) is still running after Ctrl-C", pid, command(pid))
		}
	}, NodeTimeout(10*time.Minute))
})

// slowGo writes into dir a go command that takes over 30 seconds to build the manager, as
// on a fresh clone with a cold build cache, and returns dir. Thirty seconds after start is
// when controller-runtime complains (with a stack dump) about logging that was never set up,
// so the warm cache of a test run would otherwise hide the complaint.
func slowGo(dir string) string {
	goBin, err := exec.LookPath("go")
	Expect(err).NotTo(HaveOccurred())
	script := "#!/bin/sh\nfor a in \"$@\"; do [ \"$a\" = ./cmd/manager ] && sleep 31; done\nexec " + strconv.Quote(goBin) + " \"$@\"\n"
	Expect(os.WriteFile(filepath.Join(dir, "go"), []byte(script), 0o755)).To(Succeed())
	return dir
}

func withoutKubeconfig(envv []string) []string {
	var out []string
	for _, kv := range envv {
		if !strings.HasPrefix(kv, "KUBECONFIG=") {
			out = append(out, kv)
		}
	}
	return out
}

func clientFor(kubeconfig string) client.Client {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	Expect(err).NotTo(HaveOccurred())
	c, err := client.New(cfg, client.Options{Scheme: testenv.Scheme})
	Expect(err).NotTo(HaveOccurred())
	return c
}

// descendantsOf lists every process below pid, from /proc.
func descendantsOf(pid int) []int {
	children := map[int][]int{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ppid := parentOf(p); ppid > 0 {
			children[ppid] = append(children[ppid], p)
		}
	}
	var out []int
	queue := []int{pid}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, c := range children[p] {
			out = append(out, c)
			queue = append(queue, c)
		}
	}
	return out
}

func parentOf(pid int) int {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// The command name is in parentheses and may contain spaces: fields follow the last ')'.
	fields := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+1:]))
	if len(fields) < 2 {
		return 0
	}
	ppid, _ := strconv.Atoi(fields[1])
	return ppid
}

func command(pid int) string {
	data, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	return strings.ReplaceAll(string(data), "\x00", " ")
}

func commands(pids []int) []string {
	out := make([]string, 0, len(pids))
	for _, p := range pids {
		out = append(out, command(p))
	}
	return out
}

// alive is true for a running process; a zombie waiting for its parent counts as gone.
func alive(pid int) bool {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(data)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return len(fields) > 0 && fields[0] != "Z"
}
