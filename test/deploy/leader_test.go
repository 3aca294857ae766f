package deploy

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"sync"
	"syscall"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/onsi/gomega/gexec"
)

// How long the manager's replicas are without a leader when the leader stops: the time from
// the signal to the other replica's "Successfully acquired lease". CHECKPOINT_QUOTA_MANAGER_BIN
// runs the spec with another build of the manager (the figures of docs/deployment.md compare
// one from before LeaderElectionReleaseOnCancel).
var _ = Describe("leader election", func() {
	It("hands over within a retry period when the leader stops cleanly, and within the lease duration when it is killed", func(ctx SpecContext) {
		bin := os.Getenv("CHECKPOINT_QUOTA_MANAGER_BIN")
		if bin == "" {
			var err error
			bin, err = gexec.Build("github.com/checkpoint-quota/checkpoint-quota/cmd/manager")
			Expect(err).NotTo(HaveOccurred())
			DeferCleanup(gexec.CleanupBuildArtifacts)
		}
		ns, err := env.CreateNamespace(ctx, "leader")
		Expect(err).NotTo(HaveOccurred())
		replicas := []*replica{{name: "a", bin: bin, ns: ns}, {name: "b", bin: bin, ns: ns}}
		for _, r := range replicas {
			r.start()
			DeferCleanup(r.kill)
		}
		leader := func() *replica {
			GinkgoHelper()
			var l *replica
			Eventually(func() *replica {
				for _, r := range replicas {
					if r.leading() {
						l = r
					}
				}
				return l
			}, time.Minute, 50*time.Millisecond).ShouldNot(BeNil(), "no replica acquired the Lease")
			return l
		}

		measure := func(sig syscall.Signal) (gap, stopped time.Duration) {
			GinkgoHelper()
			old := leader()
			other := replicas[0]
			if other == old {
				other = replicas[1]
			}
			Consistently(other.leading, 3*time.Second, 100*time.Millisecond).Should(BeFalse(), "both replicas lead")
			sent := time.Now()
			Expect(old.cmd.Process.Signal(sig)).To(Succeed())
			Eventually(other.leading, time.Minute, 10*time.Millisecond).Should(BeTrue(), "%s never acquired the Lease", other.name)
			gap = other.acquiredAt().Sub(sent)
			<-old.exited
			stopped = old.exitedAt.Sub(sent)
			old.start() // as the Deployment's next pod: it waits as the other replica
			return gap, stopped
		}

		var clean []time.Duration
		for range 3 {
			gap, stopped := measure(syscall.SIGTERM)
			clean = append(clean, gap)
			GinkgoWriter.Printf("SIGTERM: leaderless for %s (the old leader exited after %s)\n", gap, stopped)
		}
		killed, _ := measure(syscall.SIGKILL)
		GinkgoWriter.Printf("SIGKILL: leaderless for %s\n", killed)
		AddReportEntry("leaderless time", fmt.Sprintf("SIGTERM %v, SIGKILL %s", clean, killed))

		// The lease duration (15 s) and retry period (1 s) of cmd/manager's defaults.
		Expect(slices.Max(clean)).To(BeNumerically("<", 3*time.Second), "a leader that stops cleanly must release its Lease")
		Expect(killed).To(BeNumerically("<", 15*time.Second+3*time.Second), "a killed leader's Lease must be taken once it expires")
	})
})

// replica is one manager process of the leader-election spec.
type replica struct {
	name, bin, ns string
	cmd           *exec.Cmd
	exited        chan struct{}
	exitedAt      time.Time
	out           *acquireWatch
}

func (r *replica) start() {
	GinkgoHelper()
	r.out = &acquireWatch{}
	r.cmd = exec.Command(r.bin, "--leader-elect", "--leader-election-namespace="+r.ns, "--enable-webhooks=false",
		"--metrics-bind-address=0", "--health-probe-bind-address=0")
	r.cmd.Env = append(os.Environ(), "KUBECONFIG="+env.Kubeconfig, "POD_NAMESPACE="+r.ns)
	r.cmd.Stdout, r.cmd.Stderr = r.out, r.out
	Expect(r.cmd.Start()).To(Succeed())
	r.exited = make(chan struct{})
	go func() {
		_ = r.cmd.Wait()
		r.exitedAt = time.Now()
		close(r.exited)
	}()
}

func (r *replica) kill() {
	_ = r.cmd.Process.Kill()
	<-r.exited
}

func (r *replica) leading() bool {
	select {
	case <-r.exited:
		return false
	default:
		return !r.acquiredAt().IsZero()
	}
}

func (r *replica) acquiredAt() time.Time { return r.out.at() }

// acquireWatch passes a process's log on to GinkgoWriter and notes when it says it acquired the
// Lease.
type acquireWatch struct {
	mu       sync.Mutex
	buf      []byte
	acquired time.Time
}

func (w *acquireWatch) Write(p []byte) (int, error) {
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		line := w.buf[:i+1]
		if w.acquired.IsZero() && bytes.Contains(bytes.ToLower(line), []byte("successfully acquired lease")) {
			w.acquired = now
		}
		_, _ = GinkgoWriter.Write(line)
		w.buf = w.buf[i+1:]
	}
	return len(p), nil
}

func (w *acquireWatch) at() time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.acquired
}
