package controllers_test

import (
	"context"
	"fmt"
	"math"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	"github.com/checkpoint-quota/checkpoint-quota/internal/archive"
	"github.com/checkpoint-quota/checkpoint-quota/nodeagent"
	testarchive "github.com/checkpoint-quota/checkpoint-quota/test/archive"
	"github.com/checkpoint-quota/checkpoint-quota/test/builder"
)

// scaleEnv turns BenchmarkScale on, and gives its scale: 1 is the full cluster, 0.05 a
// twentieth of it (for development).
const scaleEnv = "CHECKPOINT_QUOTA_BENCH_SCALE"

// The shape of the full scale run: 200 namespaces of 150 pods (30,000), 30 pods per node
// (1,000 nodes), and per pod 3 archives of its app container plus, for every third pod,
// one of its sidecar (100,000 archives, 100 per node).
const (
	scaleNamespaces = 200
	podsPerNS       = 150
	podsPerNode     = 30
	appArchives     = 3
	realAgents      = 10
)

// scaleLayout is the cluster that BenchmarkScale builds.
type scaleLayout struct {
	namespaces, pods, nodes, agents int
}

// layoutFromEnv reads the scale factor, and skips the benchmark when it is not set.
func layoutFromEnv(b *testing.B) scaleLayout {
	v := os.Getenv(scaleEnv)
	if v == "" {
		b.Skipf("set %s=1 (or a fraction such as 0.05) to run the scale benchmark, or run make bench-scale", scaleEnv)
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f <= 0 || f > 1 {
		b.Fatalf("%s=%q: want a scale factor in (0, 1]", scaleEnv, v)
	}
	l := scaleLayout{namespaces: max(4, int(math.Round(scaleNamespaces*f)))}
	l.pods = l.namespaces * podsPerNS
	l.nodes = l.pods / podsPerNode
	l.agents = min(realAgents, l.nodes)
	return l
}

// scalePod is one pod of the layout, and where its archives go.
type scalePod struct {
	ns, name, node string
	uid            types.UID
	// real says its node runs a real agent, which publishes its archive files.
	real bool
	// app are the Checkpoint names of its app container's archives, oldest first.
	app []string
}

func nodeName(i int) string { return fmt.Sprintf("node-%04d", i) }

// scaleWorld creates the layout's objects and archives, and remembers what it created.
type scaleWorld struct {
	l    scaleLayout
	c    client.Client
	pods []*scalePod
	// dirs are the checkpoint directories of the nodes with a real agent.
	dirs map[string]string

	mu       sync.Mutex
	archives int
	// files are the paths of the archives written for the real agents, by Checkpoint name,
	// and expected the Checkpoints those agents should publish for them.
	files    map[string]string
	expected map[string]*cqv1.Checkpoint
}

// parallel runs do for 0..n-1 on 32 workers.
func parallel(n int, do func(i int)) {
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			for i := range jobs {
				do(i)
			}
		})
	}
	for i := range n {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
}

// createCluster creates the Nodes, the namespaces (labelled with a group for the cluster
// quotas' selectors) and the pods, bound to their nodes.
func (w *scaleWorld) createCluster(b *testing.B, groups int) {
	ctx := context.Background()
	parallel(w.l.nodes, func(i int) {
		if err := w.c.Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: nodeName(i)}}); err != nil {
			b.Error(err)
		}
	})
	parallel(w.l.namespaces, func(i int) {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("scale-%03d", i),
			Labels: map[string]string{"scale-group": fmt.Sprintf("g-%02d", i%groups)}}}
		if err := w.c.Create(ctx, ns); err != nil {
			b.Error(err)
		}
	})
	w.pods = make([]*scalePod, w.l.pods)
	parallel(w.l.pods, func(i int) {
		node := i % w.l.nodes
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: fmt.Sprintf("scale-%03d", i/podsPerNS), Name: fmt.Sprintf("pod-%03d", i%podsPerNS),
				Labels: map[string]string{"app": fmt.Sprintf("app-%d", i%5)}},
			Spec: corev1.PodSpec{NodeName: nodeName(node), Containers: []corev1.Container{
				{Name: "app", Image: "app:1.0"}, {Name: "sidecar", Image: "sidecar:1.0"}}},
		}
		if err := w.c.Create(ctx, p); err != nil {
			b.Error(err)
			return
		}
		w.pods[i] = &scalePod{ns: p.Namespace, name: p.Name, node: p.Spec.NodeName, uid: p.UID, real: node < w.l.agents}
	})
	if b.Failed() {
		b.FailNow()
	}
}

// createQuotas applies one CheckpointQuota without a target per namespace (3 archives per
// container), one naming the sidecar container in every fourth namespace, a cluster quota
// per namespace group and a cluster-wide per-node limit with a free-space floor: 300 at full
// scale. Every limit holds for the archives as created.
func (w *scaleWorld) createQuotas(b *testing.B, groups int) int {
	var quotas []client.Object
	for i := range w.l.namespaces {
		ns := fmt.Sprintf("scale-%03d", i)
		quotas = append(quotas, builder.Quota("default", ns).Total(podsPerNS*5, "").PerPod(10, "").PerContainer(appArchives, "").Obj())
		if i%4 == 0 {
			quotas = append(quotas, builder.Quota("sidecars", ns).ContainerNames("sidecar").PerContainer(2, "").Obj())
		}
	}
	for g := range groups {
		quotas = append(quotas, builder.ClusterQuota(fmt.Sprintf("group-%02d", g)).NamespaceSelector(map[string]string{"scale-group": fmt.Sprintf("g-%02d", g)}).
			PerNamespace(podsPerNS*6, "").PerPod(8, "").PerContainer(5, "").Obj())
	}
	quotas = append(quotas, builder.ClusterQuota("node-guard").PerNode(podsPerNode*5, "").MinFree("1%").Obj())
	parallel(len(quotas), func(i int) {
		if err := w.c.Create(context.Background(), quotas[i]); err != nil {
			b.Error(err)
		}
	})
	return len(quotas)
}

// archiveOf describes an archive of a pod's container taken at t, as the runtime writes it.
func archiveOf(p *scalePod, container string, t time.Time) *testarchive.Archive {
	return testarchive.New(p.ns, p.name, container).WithUID(string(p.uid)).At(t)
}

// asAgent is the Checkpoint that the agent of p's node publishes for the archive a in dir:
// the agent's own code builds it, from the identity the agent reads from such an archive.
func asAgent(p *scalePod, dir string, a *testarchive.Archive) *cqv1.Checkpoint {
	return nodeagent.Publication{Node: p.node, Dir: dir, File: a.FileName(), Size: a.Size, Namespace: a.Namespace,
		Identity: archive.Identity{Namespace: a.Namespace, Pod: a.Pod, PodUID: a.PodUID, Container: a.Container,
			Image: a.Image, Runtime: a.Runtime.RuntimeName(), CheckpointTime: a.RuntimeTime()}}.Checkpoint()
}

// dirOf is the checkpoint directory of a pod's node: a temp directory for a real agent,
// the kubelet's default for the nodes of the load generator.
func (w *scaleWorld) dirOf(p *scalePod) string {
	if p.real {
		return w.dirs[p.node]
	}
	return nodeagent.DefaultCheckpointDir
}

// publish puts one archive of p's container on its node: a file for a real agent to
// publish, or the agent's Create from the load generator. It returns the Checkpoint's name.
func (w *scaleWorld) publish(b *testing.B, p *scalePod, container string, t time.Time) string {
	a := archiveOf(p, container, t)
	obj := asAgent(p, w.dirOf(p), a)
	if p.real {
		path := a.MustWrite(w.dirs[p.node])
		w.mu.Lock()
		w.files[obj.Name], w.expected[obj.Name] = path, obj
		w.mu.Unlock()
		return obj.Name
	}
	if err := w.c.Create(context.Background(), obj); err != nil {
		b.Error(err)
	}
	return obj.Name
}

// createArchives puts every pod's archives on its node, an hour old and older, one
// minute apart per container.
func (w *scaleWorld) createArchives(b *testing.B, now time.Time) {
	parallel(len(w.pods), func(i int) {
		p := w.pods[i]
		base := now.Add(-time.Hour - time.Duration(i%3600)*time.Second)
		var app []string
		for k := range appArchives {
			app = append(app, w.publish(b, p, "app", base.Add(-time.Duration(appArchives-k)*time.Minute)))
		}
		n := appArchives
		if i%3 == 0 {
			w.publish(b, p, "sidecar", base)
			n++
		}
		w.mu.Lock()
		p.app, w.archives = app, w.archives+n
		w.mu.Unlock()
	})
}
