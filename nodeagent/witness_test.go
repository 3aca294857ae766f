package nodeagent

import (
	"context"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
)

// gatedReader answers GETs of namespaces from a fake apiserver, one at a time, each only
// once the test lets it through, and says when each has started.
type gatedReader struct {
	client.WithWatch
	started chan struct{}
	release chan struct{}
}

func newGatedReader(objs ...client.Object) *gatedReader {
	g := &gatedReader{started: make(chan struct{}, 100), release: make(chan struct{})}
	g.WithWatch = interceptor.NewClient(fake.NewClientBuilder().WithScheme(Scheme).WithObjects(objs...).Build(), interceptor.Funcs{
		Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			g.started <- struct{}{}
			<-g.release
			return c.Get(ctx, key, obj, opts...)
		},
	})
	return g
}

// A lookup that started before a deletion was observed does not answer for it: the
// namespace may have been deleted in between. One that started after answers for every
// deletion observed before it started, however many.
func TestWitnessLookupAnswersTheDeletionsObservedBeforeItStarted(t *testing.T) {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop", UID: "ns-1"}}
	g := newGatedReader(ns)
	w := newWitnesses(g, "node-a", clock.RealClock{})
	ctx := context.Background()

	early := w.mark()
	first := make(chan presence, 1)
	go func() {
		p, err := w.Namespace(ctx, "shop", early)
		if err != nil {
			t.Error(err)
		}
		first <- p
	}()
	<-g.started // the first lookup is under way

	// Deletions observed now are later than the lookup under way: they wait for the next.
	var wg sync.WaitGroup
	answers := make(chan presence, 10)
	for range 10 {
		late := w.mark()
		wg.Go(func() {
			p, err := w.Namespace(ctx, "shop", late)
			if err != nil {
				t.Error(err)
			}
			answers <- p
		})
	}
	g.release <- struct{}{}
	if p := <-first; p.UID != "ns-1" {
		t.Fatalf("first lookup: %+v", p)
	}
	select {
	case p := <-answers:
		t.Fatalf("a deletion observed while the first lookup was under way was answered by it: %+v", p)
	case <-time.After(50 * time.Millisecond):
	}

	// One more lookup, after lookupInterval, answers all ten.
	<-g.started
	g.release <- struct{}{}
	wg.Wait()
	close(answers)
	for p := range answers {
		if p.UID != "ns-1" {
			t.Errorf("later lookup: %+v", p)
		}
	}
	if got := w.requests.Load(); got != 2 {
		t.Errorf("%d lookups for 11 deletions, want 2", got)
	}

	// A deletion observed before the latest lookup started is answered without asking.
	if _, err := w.Namespace(ctx, "shop", early); err != nil {
		t.Fatal(err)
	}
	if got := w.requests.Load(); got != 2 {
		t.Errorf("%d lookups, want still 2", got)
	}
}

// A failed lookup answers its waiters with the error and is never reused.
func TestWitnessLookupFailureIsNotReused(t *testing.T) {
	fails := true
	var mu sync.Mutex
	reader := interceptor.NewClient(fake.NewClientBuilder().WithScheme(Scheme).Build(), interceptor.Funcs{
		Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			mu.Lock()
			defer mu.Unlock()
			if fails {
				return context.DeadlineExceeded
			}
			return c.Get(ctx, key, obj, opts...)
		},
	})
	w := newWitnesses(reader, "node-a", clock.RealClock{})
	at := w.mark()
	if _, err := w.Node(context.Background(), at); err == nil {
		t.Fatal("no error from a failed lookup")
	}
	mu.Lock()
	fails = false
	mu.Unlock()
	p, err := w.Node(context.Background(), at)
	if err != nil {
		t.Fatal(err)
	}
	if p.UID != "" {
		t.Errorf("a Node that does not exist: %+v", p)
	}
}
