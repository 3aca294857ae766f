package nodeagent

import (
	"context"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
)

// SweepOnce sweeps the bucket of store once as the agent of cfg.NodeName does when it is the
// store's sweeper, reading and writing through c, the store's credentials Secret through
// secrets; it returns what the sweep published, kept and deleted.
func SweepOnce(ctx context.Context, c client.Client, secrets client.Reader, cfg Config, store string) (published, kept, deleted int, err error) {
	if cfg, err = cfg.withDefaults(); err != nil {
		return 0, 0, 0, err
	}
	o := &Offloader{Client: c, APIReader: c, Recorder: events.NewFakeRecorder(16), Config: cfg,
		stores: newStoreClients(secrets, cfg.OrphanNamespace), stored: map[types.NamespacedName]storedObject{}, fromStore: newPathSet()}
	n, err := bucketSweep{o: o}.sweep(ctx, store, time.Time{})
	return n.published, n.kept, n.deleted, err
}

// ReportOffloadFailure reports, as the Offloader of cfg.NodeName does after an upload of
// the archive of cp failed with cause, the failure on cp, writing through c.
func ReportOffloadFailure(ctx context.Context, c client.Client, cfg Config, cp *cqv1.Checkpoint, cause error) error {
	o := &Offloader{Client: c, APIReader: c, Recorder: events.NewFakeRecorder(16), Config: cfg}
	return o.reportFailure(ctx, cp, cause)
}
