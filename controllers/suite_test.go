package controllers_test

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	"github.com/checkpoint-quota/checkpoint-quota/controllers"
	"github.com/checkpoint-quota/checkpoint-quota/test/builder"
	"github.com/checkpoint-quota/checkpoint-quota/test/testenv"
)

var (
	env       *testenv.Env
	k8s       client.Client
	fakeClock *clocktesting.FakeClock
	// stopManager stops the manager that the specs share.
	stopManager context.CancelFunc
)

// nodeGrace is the test managers' grace period for gone nodes.
const nodeGrace = 30 * time.Minute

func TestControllers(t *testing.T) {
	RegisterFailHandler(Fail)
	SetDefaultEventuallyTimeout(15 * time.Second)
	SetDefaultEventuallyPollingInterval(100 * time.Millisecond)
	RunSpecs(t, "Controllers Suite")
}

var _ = BeforeSuite(func() {
	ctrl.SetLogger(zap.New(zap.WriteTo(GinkgoWriter), zap.UseDevMode(true)))
	var err error
	env, err = testenv.Start(testenv.Options{})
	Expect(err).NotTo(HaveOccurred())
	k8s = env.Client
	fakeClock = clocktesting.NewFakeClock(time.Now().Truncate(time.Second))
	for _, n := range []string{"node-a", "node-b"} {
		Expect(k8s.Create(context.Background(), &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n}})).To(Succeed())
	}
	stopManager = startManager()
})

var _ = AfterSuite(func() {
	if stopManager != nil {
		stopManager()
	}
	if env != nil {
		Expect(env.Stop()).To(Succeed())
	}
})

// startManager runs a manager with the controllers, on the fake clock, until the returned
// function is called; that function waits for it to stop.
func startManager() context.CancelFunc {
	mgr := newManager()
	o := controllers.DefaultOptions
	o.Clock, o.NodeGracePeriod = fakeClock, nodeGrace
	_, err := controllers.Setup(context.Background(), mgr, o)
	Expect(err).NotTo(HaveOccurred())
	return runManager(mgr)
}

// newManager is a manager of the suite's apiserver, without controllers yet.
func newManager() ctrl.Manager {
	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{
		Cache:                  controllers.CacheOptions(nil),
		Scheme:                 testenv.Scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		// Restarts register the same controllers again.
		Controller: config.Controller{SkipNameValidation: ptr.To(true)},
	})
	Expect(err).NotTo(HaveOccurred())
	return mgr
}

// runManager starts a manager until the returned function is called; that function waits
// for it to stop.
func runManager(mgr ctrl.Manager) context.CancelFunc {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer GinkgoRecover()
		defer close(done)
		Expect(mgr.Start(ctx)).To(Succeed())
	}()
	return func() { cancel(); <-done }
}

// newNamespace creates a namespace for one spec.
func newNamespace(prefix string) string {
	ns, err := env.CreateNamespace(context.Background(), prefix)
	Expect(err).NotTo(HaveOccurred())
	return ns
}

// ckpt describes a Checkpoint as a node agent publishes it.
type ckpt struct {
	ns, pod, uid, container, node string
	at                            time.Time
	size                          int64
	pinned, finalizer             bool
	name                          string
	// orphanOf makes it an orphan of that namespace, living in ns as in the agent's.
	orphanOf string
	// noUID publishes it without a pod UID, as for an archive whose runtime did not record one.
	noUID bool
	// storedIn publishes it offloaded to that CheckpointStore (status.location), as an agent
	// records it once the upload is verified.
	storedIn string
	// copyOf publishes it as a copy fetched from a store to its node (spec.archive.copyOf).
	copyOf *cqv1.ArchiveCopy
}

// publish creates the Checkpoint and sets its status, as an agent does.
func publish(c ckpt) *cqv1.Checkpoint {
	GinkgoHelper()
	if c.uid == "" && !c.noUID {
		c.uid = "uid-" + c.ns + "-" + c.pod
	}
	if c.node == "" {
		c.node = "node-a"
	}
	if c.name == "" {
		c.name = fmt.Sprintf("%s-%s-%d", c.pod, c.container, c.at.Unix())
	}
	file := fmt.Sprintf("checkpoint-%s_%s-%s-%s.tar", c.pod, c.ns, c.container, c.at.UTC().Format(time.RFC3339))
	b := builder.Checkpoint(c.name, c.ns).Of(c.pod, c.uid, c.container).On(c.node, "/var/lib/kubelet/checkpoints", file).
		Size(c.size, fmt.Sprint(c.size)).At(metav1.NewTime(c.at))
	if c.pinned {
		b = b.Pinned()
	}
	if c.orphanOf != "" {
		b = b.OrphanOf(c.orphanOf)
	}
	if c.storedIn != "" {
		b = b.StoredIn(c.storedIn, c.ns+"/"+c.pod+"/"+c.container+"/"+c.name+".tar", metav1.NewTime(c.at))
	}
	obj := b.Obj()
	obj.Spec.Archive.CopyOf = c.copyOf
	if c.finalizer {
		obj.Finalizers = []string{cqv1.LegacyFinalizerArchive}
	}
	status := obj.Status
	Expect(k8s.Create(context.Background(), obj)).To(Succeed())
	obj.Status = status
	Expect(k8s.Status().Update(context.Background(), obj)).To(Succeed())
	return obj
}

// series publishes n archives of a container, one minute apart, the newest at end.
func series(ns, pod, container string, n int, size int64, end time.Time, node string) []string {
	GinkgoHelper()
	return seriesOf(ckpt{ns: ns, pod: pod, container: container, node: node, size: size}, n, end)
}

// seriesOf publishes n archives like c, one minute apart, the newest at end.
func seriesOf(c ckpt, n int, end time.Time) []string {
	GinkgoHelper()
	var names []string
	for i := range n {
		c := c
		c.at = end.Add(-time.Duration(n-1-i) * time.Minute)
		obj := publish(c)
		names = append(names, obj.Name)
	}
	return names
}

// remaining lists the Checkpoints of a namespace that are not being deleted, sorted.
func remaining(g Gomega, ns string) []string {
	var list cqv1.CheckpointList
	g.Expect(k8s.List(context.Background(), &list, client.InNamespace(ns))).To(Succeed())
	var out []string
	for _, c := range list.Items {
		if c.DeletionTimestamp.IsZero() {
			out = append(out, c.Name)
		}
	}
	sort.Strings(out)
	return out
}

func sorted(lists ...[]string) []string {
	var out []string
	for _, l := range lists {
		out = append(out, l...)
	}
	sort.Strings(out)
	return out
}

func create(obj client.Object) {
	GinkgoHelper()
	Expect(k8s.Create(context.Background(), obj)).To(Succeed())
}

// quotaStatus reads a CheckpointQuota's status.
func quotaStatus(ns, name string) func() cqv1.QuotaStatus {
	return func() cqv1.QuotaStatus {
		q := &cqv1.CheckpointQuota{}
		if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, q); err != nil {
			return cqv1.QuotaStatus{}
		}
		return q.Status
	}
}

// events lists the notes of the events about an object with a reason.
func events(ns, name, reason string) func(Gomega) []string {
	return func(g Gomega) []string {
		var list corev1.EventList
		g.Expect(k8s.List(context.Background(), &list, client.InNamespace(ns))).To(Succeed())
		var out []string
		for _, e := range list.Items {
			if e.InvolvedObject.Name == name && e.Reason == reason {
				out = append(out, e.Message)
			}
		}
		return out
	}
}
