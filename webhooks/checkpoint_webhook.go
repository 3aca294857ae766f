package webhooks

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	"github.com/checkpoint-quota/checkpoint-quota/internal/policy"
	"github.com/checkpoint-quota/checkpoint-quota/internal/quota"
)

// +kubebuilder:webhook:path=/validate-checkpointquota-dev-v1alpha1-checkpoint,mutating=false,failurePolicy=fail,sideEffects=NoneOnDryRun,groups=checkpointquota.dev,resources=checkpoints,verbs=update,versions=v1alpha1,name=vcheckpoint.checkpointquota.dev,admissionReviewVersions=v1,timeoutSeconds=10

// CheckpointWebhook refuses a pin (spec.pinned set on a Checkpoint that nothing pinned) that
// would put the pinned archives of a group over a limit in force for that group, as
// ResourceQuota refuses a pod over its quota. Who may pin at all is the admission policy
// checkpointquota-pin's to decide (the verb pin); how many, this webhook's. A .keep marker on
// the node is beyond limits: it is the node's admin's.
type CheckpointWebhook struct {
	// Quotas reads the quotas and namespaces; its Cache the Checkpoints and pods.
	Quotas *QuotaReader
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Ledger records the pins admitted by every replica, when several serve admission
	// (leader election on); nil: this process's alone, in pending.
	Ledger *PinLedger

	// mu makes pins one at a time, so that two pins admitted together cannot both take
	// the last place; pending holds the pins admitted that the reader may not show yet,
	// when there is no Ledger.
	mu      sync.Mutex
	pending admitted
}

// pendingFor is how long an admitted pin counts before the reader must show it.
const pendingFor = time.Minute

var _ admission.Validator[*cqv1.Checkpoint] = &CheckpointWebhook{}

// ValidateCreate allows every create: only the node agent creates Checkpoints, pinned
// when a pin outlived an earlier object of the same archive.
func (w *CheckpointWebhook) ValidateCreate(context.Context, *cqv1.Checkpoint) (admission.Warnings, error) {
	return nil, nil
}

// ValidateDelete allows every delete (the pinned-checkpoint policy refuses pinned ones).
func (w *CheckpointWebhook) ValidateDelete(context.Context, *cqv1.Checkpoint) (admission.Warnings, error) {
	return nil, nil
}

// ValidateUpdate refuses a new pin that would put a group's pinned archives over a limit.
func (w *CheckpointWebhook) ValidateUpdate(ctx context.Context, old, c *cqv1.Checkpoint) (admission.Warnings, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	now := time.Now()
	if w.Now != nil {
		now = w.Now()
	}
	dryRun := isDryRun(ctx)
	if !c.Spec.Pinned {
		// Unpinned: an admitted pin no longer counts. An unpin is never refused: should
		// the ledger not take it, the pin counts until it expires, which refuses more.
		delete(w.pending, c.UID)
		if old.Spec.Pinned && w.Ledger != nil && !dryRun {
			if err := w.Ledger.release(ctx, c.UID, now); err != nil {
				logf.FromContext(ctx).Error(err, "Could not forget an admitted pin; it counts until it expires", "checkpoint", client.ObjectKeyFromObject(c))
			}
		}
		return nil, nil
	}
	if old.IsPinned() || c.Spec.Archive == nil || !c.DeletionTimestamp.IsZero() {
		return nil, nil
	}
	over, err := w.admit(ctx, c, now, dryRun)
	if err != nil {
		return nil, apierrors.NewServiceUnavailable(fmt.Sprintf("cannot check the pin against the limits in force: %v; try again", err))
	}
	if len(over) > 0 {
		return nil, apierrors.NewForbidden(cqv1.GroupVersion.WithResource("checkpoints").GroupResource(), c.Name,
			fmt.Errorf("pinning %s would make %s; a pinned archive still counts, so pins stay within the limits: "+
				"unpin another archive first (kubectl patch checkpoint NAME -n %s --type merge -p '{\"spec\":{\"pinned\":false}}') "+
				"or ask for a larger limit", c.Name, strings.Join(over, ", "), c.Namespace))
	}
	return nil, nil
}

// admit checks the pin of c with the pins admitted before it, on every replica when there
// is a ledger, and records it unless the request is a dry run or a limit would be over.
func (w *CheckpointWebhook) admit(ctx context.Context, c *cqv1.Checkpoint, now time.Time, dryRun bool) ([]string, error) {
	check := func(pins admitted) ([]string, error) { return w.overLimits(ctx, c, now, pins) }
	if w.Ledger != nil {
		return w.Ledger.admit(ctx, c.UID, now, dryRun, check)
	}
	for uid, at := range w.pending {
		if now.Sub(at) > pendingFor {
			delete(w.pending, uid)
		}
	}
	over, err := check(w.pending)
	if err != nil || len(over) > 0 || dryRun {
		return over, err
	}
	if w.pending == nil {
		w.pending = admitted{}
	}
	w.pending[c.UID] = now
	return nil, nil
}

// isDryRun says whether the admission request is a dry run, which must leave no trace.
func isDryRun(ctx context.Context) bool {
	req, err := admission.RequestFromContext(ctx)
	return err == nil && req.DryRun != nil && *req.DryRun
}

// overLimits resolves the candidate's archive among the others of its namespace (and, for a
// cluster quota's limits.total, the pinned archives of every namespace), as the manager
// does, and names each limit whose group's pinned archives the pin would put over it.
func (w *CheckpointWebhook) overLimits(ctx context.Context, c *cqv1.Checkpoint, now time.Time, pins admitted) ([]string, error) {
	quotas, err := w.quotas(ctx, c.PodNamespace())
	if err != nil {
		return nil, err
	}
	// A stored archive counts against remoteLimits, among the stored archives; one on its
	// node against the limits, among those on nodes (docs/offload.md, "Pins").
	stored := c.IsOffloaded()
	if stored {
		twins, _ := quota.Remote(quotas)
		quotas = twins
	}
	var local cqv1.CheckpointList
	if err := w.Quotas.Cache.List(ctx, &local, client.InNamespace(c.Namespace)); err != nil {
		return nil, fmt.Errorf("listing the Checkpoints of namespace %s: %w", c.Namespace, err)
	}
	w2 := pinWorld{pinned: pins, nsLabels: map[string]map[string]string{}, pods: map[types.NamespacedName]*metav1.PartialObjectMetadata{}}
	w2.add(c, true)
	for i := range local.Items {
		if o := &local.Items[i]; o.UID != c.UID && o.PodNamespace() == c.PodNamespace() && o.IsOffloaded() == stored {
			w2.add(o, false)
		}
	}
	in, err := w2.input(ctx, w.Quotas, quotas, now)
	if err != nil {
		return nil, err
	}
	if spansNamespaces(in, 0) {
		// A cluster quota's limits.total counts every namespace it selects: add the pinned
		// archives of the others, which are the only ones that matter to a pin.
		var all cqv1.CheckpointList
		if err := w.Quotas.Cache.List(ctx, &all); err != nil {
			return nil, fmt.Errorf("listing Checkpoints: %w", err)
		}
		for i := range all.Items {
			if o := &all.Items[i]; o.PodNamespace() != c.PodNamespace() && o.IsOffloaded() == stored && (o.IsPinned() || !pins[o.UID].IsZero()) {
				w2.add(o, false)
			}
		}
		if in, err = w2.input(ctx, w.Quotas, quotas, now); err != nil {
			return nil, err
		}
	}
	return pinnedOver(in, 0), nil
}

// quotas reads the cluster quotas and the quotas of the namespace, skipping any that does
// not parse: the manager holds what such a quota might target, so pins there change nothing.
func (w *CheckpointWebhook) quotas(ctx context.Context, ns string) ([]*policy.Quota, error) {
	cqs, err := w.Quotas.NamespaceQuotas(ctx, ns)
	if err != nil {
		return nil, fmt.Errorf("listing the CheckpointQuotas of namespace %s: %w", ns, err)
	}
	ccqs, err := w.Quotas.ClusterQuotas(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing ClusterCheckpointQuotas: %w", err)
	}
	return append(normalise(w.Quotas.Policies, cqs, policy.FromCheckpointQuota), normalise(w.Quotas.Policies, ccqs, policy.FromClusterQuota)...), nil
}

// pinWorld is what a pin is checked against: archives, the first the candidate.
type pinWorld struct {
	archives []quota.Archive
	pinned   admitted
	nsLabels map[string]map[string]string
	pods     map[types.NamespacedName]*metav1.PartialObjectMetadata
}

// add counts a Checkpoint's archive, pinned as the candidate will be, or as it is (or as
// an admitted pin the reader does not show yet makes it).
func (wd *pinWorld) add(c *cqv1.Checkpoint, candidate bool) {
	a, ok := quota.ArchiveOf(c)
	if !ok || c.IsArchiveRemoved() {
		return
	}
	_, pending := wd.pinned[c.UID]
	a.Pinned = a.Pinned || candidate || pending
	wd.archives = append(wd.archives, a)
}

// input reads the labels of the archives' namespaces and pods and resolves the quotas.
func (wd *pinWorld) input(ctx context.Context, r *QuotaReader, quotas []*policy.Quota, now time.Time) (quota.Input, error) {
	for _, a := range wd.archives {
		if _, ok := wd.nsLabels[a.Namespace]; ok || strings.HasSuffix(a.Namespace, ")") {
			continue // known, or an orphan's deleted namespace, which has no labels
		}
		labels, _, err := r.NamespaceLabels(ctx, a.Namespace)
		if err != nil {
			return quota.Input{}, fmt.Errorf("reading namespace %s: %w", a.Namespace, err)
		}
		wd.nsLabels[a.Namespace] = labels
		pods := &metav1.PartialObjectMetadataList{}
		pods.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("PodList"))
		if err := r.Cache.List(ctx, pods, client.InNamespace(a.Namespace)); err != nil {
			return quota.Input{}, fmt.Errorf("listing the pods of namespace %s: %w", a.Namespace, err)
		}
		for i := range pods.Items {
			p := &pods.Items[i]
			wd.pods[types.NamespacedName{Namespace: p.Namespace, Name: p.Name}] = p
		}
	}
	in, _ := quota.InputOf(quotas, wd.archives, quota.Labels{Namespaces: wd.nsLabels, Pod: quota.PodLabelsFrom(wd.pods)}, now)
	return in, nil
}

// spansNamespaces says whether a group limit in force for archive i may count archives of
// other namespaces: a cluster quota's limits.total.
func spansNamespaces(in quota.Input, i int) bool {
	for _, l := range in.Rules[i].Bounds {
		if l.Per == quota.PerGroup && in.Quotas[l.Quota].Cluster {
			return true
		}
	}
	return false
}

// pinnedOver names each limit in force for archive i whose pinned archives, i's pin
// included, exceed it: "perNamespace.checkpoints 6/5 pinned in shop (ClusterCheckpointQuota default)".
func pinnedOver(in quota.Input, i int) []string {
	self := &in.Archives[i]
	var over []string
	for _, l := range in.Rules[i].Bounds {
		scope := self.Scope(l.Per)
		var pinned int64
		for j := range in.Archives {
			a := &in.Archives[j]
			if !a.Pinned || a.Scope(l.Per) != scope || !governedBy(in.Rules[j], l) {
				continue
			}
			if l.Resource == policy.ResourceStorage {
				pinned += a.Size
			} else {
				pinned++
			}
		}
		if pinned <= l.Value {
			continue
		}
		where := scope
		if where == "" {
			where = "the quota's archives together"
		}
		used, hard := fmt.Sprint(pinned), fmt.Sprint(l.Value)
		if l.Resource == policy.ResourceStorage {
			used, hard = quota.Bytes(pinned), quota.Bytes(l.Value)
		}
		over = append(over, fmt.Sprintf("%s %s/%s pinned in %s (%s)", l.Name, used, hard, where, in.Quotas[l.Quota].Name))
	}
	if r := in.Rules[i].MaxSize; r != nil && self.Size > r.Value {
		over = append(over, fmt.Sprintf("%s: the archive is %s, over %s (%s)", policy.NameMaxCheckpointSize,
			quota.Bytes(self.Size), quota.Bytes(r.Value), in.Quotas[r.Quota].Name))
	}
	return over
}

// governedBy says whether rules hold the limit l (same quota, same key).
func governedBy(rules *quota.Rules, l quota.Bound) bool {
	for _, m := range rules.Bounds {
		if m.Quota == l.Quota && m.Name == l.Name {
			return true
		}
	}
	return false
}
