package controllers_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	testarchive "github.com/checkpoint-quota/checkpoint-quota/test/archive"
	"github.com/checkpoint-quota/checkpoint-quota/test/builder"
	"github.com/checkpoint-quota/checkpoint-quota/test/testenv"
)

// The scenarios of issue 31, the same for checkpoint-quota and for CRIU's
// checkpoint-restore-operator: 100 containers (10 namespaces x 10 pods x 1) on one node,
// archives of 68 KiB, a limit keeping 5 per container.
const (
	peerNamespaces   = 10
	peerPods         = 10
	peerContainers   = peerNamespaces * peerPods
	peerPerContainer = 50
	peerKeep         = 5
	peerArchiveSize  = 68 << 10
)

// peerSubject is one operator under measurement.
type peerSubject interface {
	name() string
	// install installs what the operator needs in the API before it starts.
	install(b *testing.B, bed *benchBed)
	// start runs the operator against bed over dir and returns the pids of its processes.
	start(b *testing.B, bed *benchBed, dir string) []int
	// ready waits until the operator started on archives on disk is ready for the limit.
	ready(b *testing.B, bed *benchBed, archives int)
	// limit puts the limit of peerKeep per container in force.
	limit(b *testing.B, bed *benchBed, dir string)
	// tokens says the operator authenticates with a bearer token, not a client certificate.
	tokens() bool
}

// BenchmarkPeer runs the burst, the streams and the cold start against checkpoint-quota
// and, when PEER_OPERATOR names a binary of CRIU's checkpoint-restore-operator, against it
// too, each scenario on a control plane of its own, one after the other, and prints both
// with their ratio. `make bench-peer` runs it; it is skipped otherwise.
func BenchmarkPeer(b *testing.B) {
	if os.Getenv("CHECKPOINT_QUOTA_BENCH_PEER") == "" {
		b.Skip("run by make bench-peer (PEER_OPERATOR=/path/to/checkpoint-restore-operator to compare)")
	}
	auth := os.Getenv("PEER_AUTH")
	if auth != "" && auth != "token" && auth != "both" {
		b.Fatalf("PEER_AUTH=%q: say token (the operators authenticate with a bearer token, as pods do), both (checkpoint-quota with either), or leave it empty (the test bed's client certificate)", auth)
	}
	bin := buildOurs(b, testenv.RepoRoot())
	subjects := []peerSubject{ours{label: "checkpoint-quota", bin: bin, token: auth == "token"}}
	if auth == "both" {
		subjects = append(subjects, ours{label: "checkpoint-quota (token)", bin: bin, token: true})
	}
	if base := os.Getenv("CHECKPOINT_QUOTA_BENCH_PEER_BASE"); base != "" {
		subjects = append(subjects, ours{label: "checkpoint-quota@" + base, bin: buildOurs(b, checkout(b, base)), token: auth == "token"})
	}
	if peer := os.Getenv("PEER_OPERATOR"); peer != "" {
		subjects = append(subjects, criuOperator{bin: peer, token: auth != ""})
	} else {
		b.Log("PEER_OPERATOR is not set: measuring checkpoint-quota alone, without CRIU's operator")
	}
	for range b.N {
		figures := map[string]map[string]float64{}
		for _, s := range subjects {
			f := map[string]float64{}
			peerBurstAndStreams(b, s, f)
			peerCold(b, s, f)
			figures[s.name()] = f
			// As it comes, should a later subject fail.
			fmt.Fprintf(os.Stderr, "BenchmarkPeer %s: %v\n", s.name(), f)
		}
		printPeerFigures(b, subjects, figures)
	}
}

// buildOurs builds the manager and the agent of the tree at dir.
func buildOurs(b *testing.B, dir string) string {
	bin := b.TempDir()
	for _, cmd := range []string{"manager", "node-agent"} {
		build := exec.Command("go", "build", "-o", filepath.Join(bin, cmd), "./cmd/"+cmd)
		build.Dir = dir
		if out, err := build.CombinedOutput(); err != nil {
			b.Fatalf("go build ./cmd/%s in %s: %v\n%s", cmd, dir, err, out)
		}
	}
	return bin
}

// peerBed is a fresh control plane with the namespaces and the Node, and the whole-system
// CPU of the apiserver, etcd and the processes it is given.
func peerBed(b *testing.B, s peerSubject) (*benchBed, func(pids []int) float64) {
	bed := newBenchBedWith(b, testenv.Options{TokenAuth: s.tokens()})
	if s.tokens() {
		kubeconfig, err := bed.env.TokenKubeconfig()
		if err != nil {
			b.Fatal(err)
		}
		bed.kubeconfig = kubeconfig
	}
	s.install(b, bed)
	bed.namespaces(b, peerNamespaces, "peer")
	if err := bed.env.Client.Create(context.Background(), &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "bench-node"}}); err != nil {
		b.Fatal(err)
	}
	apiserver, etcd := bed.apiserverPID(b), bed.etcdPID(b)
	return bed, func(pids []int) float64 {
		total := procCPU(b, apiserver) + procCPU(b, etcd)
		for _, pid := range pids {
			total += procCPU(b, pid)
		}
		return total
	}
}

// peerPhase notes, for a phase of a scenario, where its CPU went (the apiserver, etcd and
// each of the operator's processes) and the apiserver's requests per archive, and logs
// both when it ends: the whole-system figure alone does not say what to cut.
func peerPhase(b *testing.B, bed *benchBed, s peerSubject, phase string, pids []int, archives float64) (end func()) {
	apiserver, etcd := bed.apiserverPID(b), bed.etcdPID(b)
	procs := append([]int{apiserver, etcd}, pids...)
	cpu0 := make([]float64, len(procs))
	for i, pid := range procs {
		cpu0[i] = procCPU(b, pid)
	}
	r0 := allRequests(b, bed.env.Config)
	// The apiserver's profile of the phase's first 10 s (BENCH_PROFILE_DIR).
	apiserverProfile(b, bed, strings.NewReplacer(" ", "-", "/", "-per-").Replace("apiserver-"+s.name()+"-"+phase), 10*time.Second)
	return func() {
		var out strings.Builder
		fmt.Fprintf(&out, "%s, %s: CPU s", s.name(), phase)
		for i, pid := range procs {
			fmt.Fprintf(&out, " %s %.2f", procName(pid), procCPU(b, pid)-cpu0[i])
		}
		b.Log(out.String())
		testenv.RequestsPer(b, s.name()+", "+phase, r0, allRequests(b, bed.env.Config), 0, archives)
	}
}

// procName is the name of a process's binary, from /proc/<pid>/comm.
func procName(pid int) string {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil {
		return fmt.Sprint(pid)
	}
	return strings.TrimSpace(string(data))
}

// peerArchives writes peerPerContainer archives per container, the oldest first, and
// returns the names of the peerKeep newest of each container, oldest first. Each is
// modified when it was taken, a minute apart: CRIU's operator orders by modification time,
// ours by the checkpoint time inside, and both then agree on which are the newest.
func peerArchives(_ *testing.B, dir string) map[int][]string {
	newest := map[int][]string{}
	now := time.Now()
	for c := range peerContainers {
		for i := range peerPerContainer {
			at := now.Add(-time.Duration(peerPerContainer+1-i) * time.Minute)
			a := peerArchive(c, at).ModifiedAt(at)
			a.MustWrite(dir)
			if i >= peerPerContainer-peerKeep {
				newest[c] = append(newest[c], a.FileName())
			}
		}
	}
	return newest
}

func peerArchive(c int, at time.Time) *testarchive.Archive {
	return testarchive.New(fmt.Sprintf("peer-%03d", c/peerPods), fmt.Sprintf("pod-%d", c%peerPods), "app").
		WithRuntime(testarchive.Containerd).WithSize(peerArchiveSize).At(at)
}

// awaitKept waits until dir holds exactly the archives of kept and fails if it holds others.
func awaitKept(b *testing.B, dir string, kept map[int][]string, timeout time.Duration) {
	var want []string
	for _, names := range kept {
		want = append(want, names...)
	}
	waitFor(b, timeout, 50*time.Millisecond, fmt.Sprintf("%d archives on disk", len(want)), func() bool {
		return countFiles(dir) == len(want)
	})
	entries, _ := os.ReadDir(dir)
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	sort.Strings(want)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		b.Fatalf("the directory holds %d archives, but not the newest %d of each container", len(got), peerKeep)
	}
}

// peerBurstAndStreams: 5,000 archives on disk and the operator running; the limit is put in
// force and the time until the 500 newest are left is the burst. Then new archives arrive
// at 20/s and at 100/s, each for 10 s, spread over the containers.
func peerBurstAndStreams(b *testing.B, s peerSubject, f map[string]float64) {
	bed, cpu := peerBed(b, s)
	defer bed.close()
	dir := b.TempDir()
	kept := peerArchives(b, dir)
	pids := s.start(b, bed, dir)
	s.ready(b, bed, peerContainers*peerPerContainer)
	end := peerPhase(b, bed, s, "burst", pids, peerContainers*(peerPerContainer-peerKeep))
	cpu0, t0 := cpu(pids), time.Now()
	s.limit(b, bed, dir)
	awaitKept(b, dir, kept, 10*time.Minute)
	f["burst: s to 500 newest"] = time.Since(t0).Seconds()
	f["burst: whole-system CPU s"] = cpu(pids) - cpu0
	end()
	for _, rate := range []int{20, 100} {
		end := peerPhase(b, bed, s, fmt.Sprintf("stream %d/s", rate), pids, float64(rate*10))
		peerStream(b, dir, kept, rate, 10*time.Second, cpu, pids, f)
		end()
	}
}

// peerStream writes rate archives a second for d, each to the next container with a
// checkpoint time one second after that container's newest, and measures, for each, the
// time from its last byte until the archive it displaces is gone (the lag), and the most
// archives over the limit at once (the backlog).
func peerStream(b *testing.B, dir string, kept map[int][]string, rate int, d time.Duration, cpu func([]int) float64, pids []int, f map[string]float64) {
	next := time.Now().Truncate(time.Second).Add(time.Hour)
	times := map[int]time.Time{}
	type pending struct {
		name    string
		written time.Time
	}
	var waiting []pending
	var lags []time.Duration
	backlog, limit := 0, len(kept)*peerKeep
	poll := func() {
		d, err := os.Open(dir)
		if err != nil {
			b.Fatal(err)
		}
		names, _ := d.Readdirnames(-1)
		_ = d.Close()
		backlog = max(backlog, len(names)-limit)
		present := map[string]bool{}
		for _, n := range names {
			present[n] = true
		}
		left := waiting[:0]
		for _, p := range waiting {
			if present[p.name] {
				left = append(left, p)
			} else {
				lags = append(lags, time.Since(p.written))
			}
		}
		waiting = left
	}
	cpu0 := cpu(pids)
	n := int(d.Seconds()) * rate
	tick := time.NewTicker(time.Second / time.Duration(rate))
	for i := range n {
		<-tick.C
		c := i % peerContainers
		at, ok := times[c]
		if !ok {
			at = next
		}
		times[c] = at.Add(time.Second)
		a := peerArchive(c, at).ModifiedAt(time.Now())
		a.MustWrite(dir)
		waiting = append(waiting, pending{name: kept[c][0], written: time.Now()})
		kept[c] = append(kept[c][1:], a.FileName())
		if i%max(1, rate/50) == 0 {
			poll()
		}
	}
	tick.Stop()
	deadline := time.Now().Add(2 * time.Minute)
	for len(waiting) > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
		poll()
	}
	if len(waiting) > 0 {
		// An operator that falls that far behind still gets its figures, with these lags
		// counted as what they are at least, so that one slow subject does not end the run.
		b.Logf("stream %d/s: %d displaced archives still on disk after 2 minutes; their lag counts as the time waited", rate, len(waiting))
		for _, p := range waiting {
			lags = append(lags, time.Since(p.written))
		}
	}
	sort.Slice(lags, func(i, j int) bool { return lags[i] < lags[j] })
	key := fmt.Sprintf("stream %d/s: ", rate)
	f[key+"lag p50 s"] = lags[len(lags)/2].Seconds()
	f[key+"lag p99 s"] = lags[len(lags)*99/100].Seconds()
	f[key+"largest backlog"] = float64(backlog)
	f[key+"whole-system CPU ms/archive"] = (cpu(pids) - cpu0) * 1000 / float64(n)
}

// peerCold: the limit in force and 5,000 archives on disk before the operator starts; the
// time from its start until the 500 newest are left.
func peerCold(b *testing.B, s peerSubject, f map[string]float64) {
	bed, cpu := peerBed(b, s)
	defer bed.close()
	dir := b.TempDir()
	kept := peerArchives(b, dir)
	s.limit(b, bed, dir)
	end := peerPhase(b, bed, s, "cold start", nil, peerContainers*(peerPerContainer-peerKeep))
	cpu0, t0 := cpu(nil), time.Now()
	pids := s.start(b, bed, dir)
	awaitKept(b, dir, kept, 10*time.Minute)
	f["cold: s to 500 newest"] = time.Since(t0).Seconds()
	f["cold: whole-system CPU s"] = cpu(pids) - cpu0
	end()
}

func printPeerFigures(b *testing.B, subjects []peerSubject, figures map[string]map[string]float64) {
	var keys []string
	for k := range figures[subjects[0].name()] {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	// With CRIU's operator, the last subject, each of ours gets its ratio to it.
	peer := subjects[len(subjects)-1]
	if _, ok := peer.(criuOperator); !ok {
		peer = nil
	}
	var out strings.Builder
	fmt.Fprintf(&out, "\n%-44s", "")
	for _, s := range subjects {
		fmt.Fprintf(&out, " %28s", s.name())
	}
	for _, s := range subjects[:len(subjects)-1] {
		if peer != nil {
			fmt.Fprintf(&out, " %28s", "ratio "+s.name())
		}
	}
	out.WriteString("\n")
	for _, k := range keys {
		fmt.Fprintf(&out, "%-44s", k)
		for _, s := range subjects {
			fmt.Fprintf(&out, " %28.3f", figures[s.name()][k])
			b.ReportMetric(figures[s.name()][k], strings.NewReplacer(" ", "-", ":", "", "/", "-per-").Replace(s.name()+"/"+k))
		}
		for _, s := range subjects[:len(subjects)-1] {
			if peer != nil {
				fmt.Fprintf(&out, " %28.2f", figures[s.name()][k]/figures[peer.name()][k])
			}
		}
		out.WriteString("\n")
	}
	b.Log(out.String())
}

// ours is checkpoint-quota: the manager and one node agent, as binaries, with their
// default settings.
type ours struct {
	label, bin string
	token      bool
}

func (o ours) name() string { return o.label }

func (o ours) tokens() bool { return o.token }

func (ours) install(*testing.B, *benchBed) {}

// ready waits until the agent has published every archive: the burst is the prune.
func (ours) ready(b *testing.B, bed *benchBed, archives int) {
	waitFor(b, 10*time.Minute, 200*time.Millisecond, fmt.Sprintf("%d Checkpoints", archives), func() bool {
		return countCheckpoints(b, bed.env.Client) == archives
	})
}

func (o ours) start(b *testing.B, bed *benchBed, dir string) []int {
	manager := bed.process(b, filepath.Join(o.bin, "manager"), "--kubeconfig", bed.kubeconfig,
		"--enable-webhooks=false", "--metrics-bind-address=0", "--health-probe-bind-address=0", "--zap-log-level=info")
	agent := bed.process(b, filepath.Join(o.bin, "node-agent"), "--kubeconfig", bed.kubeconfig, "--node-name", "bench-node",
		"--checkpoint-dir", dir, "--state-dir", b.TempDir(), "--metrics-bind-address=0", "--health-probe-bind-address=0", "--zap-log-level=info")
	return []int{manager, agent}
}

func (ours) limit(b *testing.B, bed *benchBed, _ string) {
	q := builder.ClusterQuota("peer").NamespaceSelector(map[string]string{"bench": "peer"}).PerContainer(peerKeep, "").Obj()
	if err := bed.env.Client.Create(context.Background(), q); err != nil {
		b.Fatal(err)
	}
}

// criuOperator is CRIU's checkpoint-restore-operator, run as its binary outside a cluster:
// its pod watcher needs an in-cluster configuration and does not run, which, with
// retainOrphan (its default), changes nothing it decides here.
type criuOperator struct {
	bin   string
	token bool
}

func (criuOperator) name() string { return "checkpoint-restore-operator" }

func (c criuOperator) tokens() bool { return c.token }

// criuKinds are the kinds the operator's controllers watch; it needs their CRDs to start.
var criuKinds = []string{"CheckpointRestoreOperator", "CheckpointSchedule", "ForensicSnapshotChain", "PodRestore"}

// ready gives the operator a few seconds to start: it reads nothing before its policy comes.
func (criuOperator) ready(*testing.B, *benchBed, int) { time.Sleep(5 * time.Second) }

func (criuOperator) install(b *testing.B, bed *benchBed) {
	var crds strings.Builder
	for _, kind := range criuKinds {
		plural := strings.ToLower(kind) + "s"
		fmt.Fprintf(&crds, `---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: %[1]s.criu.org}
spec:
  group: criu.org
  scope: Namespaced
  names: {kind: %[2]s, plural: %[1]s, listKind: %[2]sList, singular: %[3]s}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
`, plural, kind, strings.ToLower(kind))
	}
	if out, stderr, err := bed.env.Kubectl(crds.String(), "apply", "--server-side", "-f", "-"); err != nil {
		b.Fatalf("installing the operator's CRDs: %v\n%s%s", err, out, stderr)
	}
	for _, kind := range criuKinds {
		if out, stderr, err := bed.env.Kubectl("", "wait", "--for=condition=Established", "crd/"+strings.ToLower(kind)+"s.criu.org"); err != nil {
			b.Fatalf("waiting for the operator's CRDs: %v\n%s%s", err, out, stderr)
		}
	}
}

func (c criuOperator) start(b *testing.B, bed *benchBed, _ string) []int {
	cmd := exec.Command(c.bin, "--metrics-bind-address=0", "--health-probe-bind-address=0")
	cmd.Env = append(os.Environ(), "KUBECONFIG="+bed.kubeconfig)
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	bed.stop = append(bed.stop, func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return []int{cmd.Process.Pid}
}

// limit keeps peerKeep per container and nothing else: the operator limits pods to 20 and
// namespaces to 30 unless told otherwise, and a limit of 0 is none.
func (criuOperator) limit(b *testing.B, bed *benchBed, dir string) {
	cr := fmt.Sprintf(`apiVersion: criu.org/v1
kind: CheckpointRestoreOperator
metadata: {name: peer, namespace: default}
spec:
  checkpointDirectory: %s
  applyPoliciesImmediately: true
  globalPolicy: {maxCheckpointsPerContainer: %d, maxCheckpointsPerPod: 0, maxCheckpointsPerNamespace: 0}
`, dir, peerKeep)
	if out, stderr, err := bed.env.Kubectl(cr, "apply", "-f", "-"); err != nil {
		b.Fatalf("applying the operator's policy: %v\n%s%s", err, out, stderr)
	}
}
