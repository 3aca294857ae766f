package nodeagent

import (
	"context"
	"path/filepath"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
)

// TestOwnArrivalsSkipped checks which Checkpoint events reach the agent's queue: every
// event but the creation of a Checkpoint whose UID the records hold for its archive (the
// agent's own create coming back on its watch).
func TestOwnArrivalsSkipped(t *testing.T) {
	rs, _ := mustOpen(t, t.TempDir())
	rec := testRecord(1, "uid-mine")
	if err := rs.put(rec); err != nil {
		t.Fatal(err)
	}
	dir, file := filepath.Split(rec.Path)
	checkpoint := func(uid string) *cqv1.Checkpoint {
		return &cqv1.Checkpoint{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: rec.Name, UID: types.UID(uid)},
			Spec: cqv1.CheckpointSpec{Archive: &cqv1.ArchiveSource{NodeName: "node-a", Directory: filepath.Clean(dir), FileName: file}}}
	}
	enqueue := handler.TypedEnqueueRequestsFromMapFunc(func(_ context.Context, obj *cqv1.Checkpoint) []fileKey {
		k, _ := keyOf(obj)
		return []fileKey{k}
	})
	h := ownArrivalsSkipped(enqueue, rs)
	ctx := context.Background()
	mine, other := checkpoint("uid-mine"), checkpoint("uid-other")
	cases := map[string]struct {
		send func(workqueue.TypedRateLimitingInterface[fileKey])
		want int
	}{
		"the agent's own Checkpoint arrives": {func(q workqueue.TypedRateLimitingInterface[fileKey]) {
			h.Create(ctx, event.TypedCreateEvent[*cqv1.Checkpoint]{Object: mine}, q)
		}, 0},
		"another Checkpoint for the archive arrives": {func(q workqueue.TypedRateLimitingInterface[fileKey]) {
			h.Create(ctx, event.TypedCreateEvent[*cqv1.Checkpoint]{Object: other}, q)
		}, 1},
		"the agent's own Checkpoint changes": {func(q workqueue.TypedRateLimitingInterface[fileKey]) {
			h.Update(ctx, event.TypedUpdateEvent[*cqv1.Checkpoint]{ObjectOld: mine, ObjectNew: mine}, q)
		}, 1},
		"the agent's own Checkpoint is deleted": {func(q workqueue.TypedRateLimitingInterface[fileKey]) {
			h.Delete(ctx, event.TypedDeleteEvent[*cqv1.Checkpoint]{Object: mine}, q)
		}, 1},
	}
	for name, tc := range cases {
		q := workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[fileKey]())
		tc.send(q)
		if got := q.Len(); got != tc.want {
			t.Errorf("%s: %d archives queued, want %d", name, got, tc.want)
		}
		q.ShutDown()
	}

	// Once the record is dropped (the agent released the archive), its arrival is news.
	if err := rs.drop(rec.Path); err != nil {
		t.Fatal(err)
	}
	q := workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[fileKey]())
	defer q.ShutDown()
	h.Create(ctx, event.TypedCreateEvent[*cqv1.Checkpoint]{Object: mine}, q)
	if q.Len() != 1 {
		t.Errorf("a Checkpoint without a record arrived and was not queued")
	}
}
