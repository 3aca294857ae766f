package webhooks

import (
	"context"
	"fmt"
	"strings"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// PinLedgerName is the name of the Lease, in the manager's namespace, in which the replicas
// that serve admission record the pins they admitted.
const PinLedgerName = "pins.checkpointquota.dev"

// pinAnnotationPrefix starts the key of each pin recorded on the ledger; the rest of the
// key is the Checkpoint's UID, the value the time of the admission (RFC 3339).
const pinAnnotationPrefix = "pins.checkpointquota.dev/"

// ledgerAttempts bounds the tries of one admission while other replicas record pins.
const ledgerAttempts = 5

// PinLedger is where every replica serving admission records a pin it admitted, until its
// cache shows the pin (at most pendingFor): a Lease whose annotations are the pins, written
// with its resourceVersion. Two replicas that admit a pin at the same instant both write the
// same version; the apiserver takes one write, and the other replica checks its pin again
// with the first one counted. So pins are admitted one at a time across replicas, as they
// are within one (docs/node-agent.md, "Pins").
type PinLedger struct {
	// Client reads and writes the apiserver directly: a cache would show another
	// replica's pin too late.
	Client client.Client
	// Key is the Lease's namespace (the manager's) and name.
	Key types.NamespacedName
}

// admitted is what check sees: the pins admitted on any replica and not yet expired.
type admitted map[types.UID]time.Time

// admit runs check with the pins the ledger holds, and records uid when check finds no
// limit over and the request is not a dry run. It checks again when another replica wrote
// the ledger in between.
func (l *PinLedger) admit(ctx context.Context, uid types.UID, now time.Time, dryRun bool,
	check func(admitted) ([]string, error)) ([]string, error) {
	var over []string
	err := l.change(ctx, now, func(pins admitted) (bool, error) {
		var err error
		if over, err = check(pins); err != nil || len(over) > 0 || dryRun {
			return false, err
		}
		pins[uid] = now
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	return over, nil
}

// release forgets the pin of uid, when the ledger holds it: an unpinned archive no longer
// counts as pinned, even before the caches show the unpin.
func (l *PinLedger) release(ctx context.Context, uid types.UID, now time.Time) error {
	return l.change(ctx, now, func(pins admitted) (bool, error) {
		_, ok := pins[uid]
		delete(pins, uid)
		return ok, nil
	})
}

// change reads the ledger, lets edit change its pins (it says whether to write them), and
// writes them on the version read; when another replica wrote in between, it reads and
// edits again.
func (l *PinLedger) change(ctx context.Context, now time.Time, edit func(admitted) (bool, error)) error {
	for range ledgerAttempts {
		lease, pins, err := l.read(ctx, now)
		if err != nil {
			return err
		}
		if write, err := edit(pins); err != nil || !write {
			return err
		}
		switch err := l.write(ctx, lease, pins); {
		case err == nil:
			return nil
		case !apierrors.IsConflict(err) && !apierrors.IsAlreadyExists(err):
			return fmt.Errorf("recording the pins on Lease %s: %w", l.Key, err)
		}
	}
	return fmt.Errorf("other replicas kept recording pins on Lease %s", l.Key)
}

// read returns the Lease (nil when there is none yet) and the pins on it admitted less
// than pendingFor ago.
func (l *PinLedger) read(ctx context.Context, now time.Time) (*coordinationv1.Lease, admitted, error) {
	lease := &coordinationv1.Lease{}
	switch err := l.Client.Get(ctx, l.Key, lease); {
	case apierrors.IsNotFound(err):
		return nil, admitted{}, nil
	case err != nil:
		return nil, nil, fmt.Errorf("reading the pins admitted by every replica (Lease %s): %w", l.Key, err)
	}
	pins := admitted{}
	for k, v := range lease.Annotations {
		uid, ok := strings.CutPrefix(k, pinAnnotationPrefix)
		if !ok {
			continue
		}
		at, err := time.Parse(time.RFC3339Nano, v)
		if err != nil || now.Sub(at) > pendingFor {
			continue // expired, or not the ledger's: dropped at the next write
		}
		pins[types.UID(uid)] = at
	}
	return lease, pins, nil
}

// write stores pins as the ledger's annotations, on the version read, or creates the Lease.
func (l *PinLedger) write(ctx context.Context, lease *coordinationv1.Lease, pins admitted) error {
	annotations := make(map[string]string, len(pins))
	for uid, at := range pins {
		annotations[pinAnnotationPrefix+string(uid)] = at.UTC().Format(time.RFC3339Nano)
	}
	if lease == nil {
		return l.Client.Create(ctx, &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Namespace: l.Key.Namespace, Name: l.Key.Name, Annotations: annotations},
		})
	}
	lease.Annotations = annotations
	return l.Client.Update(ctx, lease)
}
