package controllers

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	"github.com/checkpoint-quota/checkpoint-quota/internal/policy"
	"github.com/checkpoint-quota/checkpoint-quota/internal/quota"
)

// setStatus recomputes the status from the view: every field but pruned (which the pruning
// controller keeps in the API, prune_count.go, and which stays as read) and every
// condition, on every pass and whatever the spec.
func setStatus(st *cqv1.QuotaStatus, v *QuotaView) {
	setUsage(st, v)
	setReady(st, v)
	setOverQuota(st, v)
	setConflict(st, v)
}

// setUsage sets every field that comes from the spec and the archives: hard, used, the
// summary, the scopes nearest their limits, the effective policy, the usage table and the
// pending prune. It starts from an empty status, so that a field the view does not set
// shows nothing of the last pass: a spec that does not parse clears them all.
func setUsage(st *cqv1.QuotaStatus, v *QuotaView) {
	*st = cqv1.QuotaStatus{ObservedGeneration: v.Generation, Pruned: st.Pruned, Conditions: st.Conditions}
	if v.Err != nil {
		return
	}
	r := &v.Result
	used := map[string]int64{}
	scopes := map[string]string{}
	for _, o := range []*quota.Outcome{r, v.Remote} {
		if o == nil {
			continue
		}
		for _, l := range o.Limits {
			used[l.Name], scopes[l.Name] = l.Used, l.Scope
		}
	}
	if r.MaxSize != nil {
		used[r.MaxSize.Name], scopes[r.MaxSize.Name] = r.MaxSize.Used, r.MaxSize.Scope
	}
	effective := slices.Concat(v.Effective, v.RemoteEffective)
	st.Hard, st.Used = map[string]resource.Quantity{}, map[string]resource.Quantity{}
	for _, e := range effective {
		// maxAge and orphans have no amount; they show in effectivePolicy only.
		if l := e.Limit; e.State() != cqv1.LimitOverridden && l.Resource != "" {
			// hard is the limit that binds: a cluster quota's ceiling where it caps this one.
			hard := l.Value
			if c := e.Cap(); c != nil {
				hard = min(hard, c.Limit.Value)
			}
			st.Hard[l.Name], st.Used[l.Name] = l.Quantity(hard), l.Quantity(used[l.Name])
		}
	}
	st.Summary = summary(st, r, v.Remote)
	if v.Cluster {
		for _, s := range r.Namespaces {
			st.Namespaces = append(st.Namespaces, cqv1.NamespaceUsage{Namespace: s.Namespace, Usage: usage(s)})
		}
	}
	for _, s := range r.Pods {
		st.Pods = append(st.Pods, cqv1.PodUsage{Namespace: s.Namespace, Pod: s.Pod, Usage: usage(s)})
	}
	for _, s := range r.Containers {
		st.Containers = append(st.Containers, cqv1.ContainerUsage{Namespace: s.Namespace, Pod: s.Pod, Container: s.Container, Usage: usage(s)})
	}
	st.EffectivePolicy = policy.APILimits(effective)
	st.UsageTable = usageTable(st, scopes)
	if len(v.Pending) > 0 {
		pp := &cqv1.PendingPrune{Checkpoints: int64(len(v.Pending))}
		var bytes int64
		for i, p := range v.Pending {
			bytes += p.Size
			if i < quota.MaxNames {
				pp.Names = append(pp.Names, p.Name)
			}
		}
		pp.Storage = *bytesQuantity(bytes)
		st.PendingPrune = pp
	}
	setNodeStatus(st, v)
}

// setReady: true once usage is computed; false, with the parse error, for a spec that
// does not parse.
func setReady(st *cqv1.QuotaStatus, v *QuotaView) {
	ready := metav1.Condition{Type: cqv1.ConditionReady, Status: metav1.ConditionTrue, Reason: cqv1.ReasonUsageComputed,
		Message: "Usage is computed from every Checkpoint the quota governs", ObservedGeneration: v.Generation}
	if v.Err != nil {
		ready.Status, ready.Reason = metav1.ConditionFalse, cqv1.ReasonInvalidSpec
		ready.Message = v.Err.Error() + "; fix the field so that the quota can be enforced"
	}
	meta.SetStatusCondition(&st.Conditions, ready)
}

// unknownWhileInvalid is the condition of a type that a spec which does not parse leaves
// unknown.
func unknownWhileInvalid(typ string, v *QuotaView) metav1.Condition {
	return metav1.Condition{Type: typ, Status: metav1.ConditionUnknown, Reason: cqv1.ReasonInvalidSpec,
		Message: "Not computed while the spec does not parse (see Ready)", ObservedGeneration: v.Generation}
}

// setOverQuota: true when a limit stays over (pins, held archives, a node, DryRun), false
// when every limit holds or pruning brings it back, unknown while the spec does not parse.
func setOverQuota(st *cqv1.QuotaStatus, v *QuotaView) {
	if v.Err != nil {
		meta.SetStatusCondition(&st.Conditions, unknownWhileInvalid(cqv1.ConditionOverQuota, v))
		return
	}
	over := metav1.Condition{Type: cqv1.ConditionOverQuota, Status: metav1.ConditionFalse, Reason: cqv1.ReasonWithinLimits,
		Message: "Every limit holds", ObservedGeneration: v.Generation}
	switch {
	case len(v.Result.Blocked) > 0:
		over.Status, over.Reason, over.Message = metav1.ConditionTrue, cqv1.ReasonPinnedCheckpoints, blockedMessage(v.Result.Blocked)
		if !slices.ContainsFunc(v.Result.Blocked, pinsBlock) {
			over.Reason = cqv1.ReasonHeldCheckpoints
		}
	case nodeBlockedMessage(v) != "":
		over.Status, over.Reason, over.Message = metav1.ConditionTrue, cqv1.ReasonNodePruningBlocked, nodeBlockedMessage(v)
	case v.DryRun && len(v.Pending) > 0:
		over.Status, over.Reason = metav1.ConditionTrue, cqv1.ReasonDryRun
		over.Message = fmt.Sprintf("DryRun: Enforce would prune %s; see status.pendingPrune", pendingSummary(v.Pending))
	case len(v.Pending) > 0:
		over.Reason, over.Message = cqv1.ReasonPruning, fmt.Sprintf("Pruning %s", pendingSummary(v.Pending))
	}
	meta.SetStatusCondition(&st.Conditions, over)
}

// setConflict: true when another quota of the same specificity sets the same limit for
// some of the same archives, unknown while the spec does not parse.
func setConflict(st *cqv1.QuotaStatus, v *QuotaView) {
	if v.Err != nil {
		meta.SetStatusCondition(&st.Conditions, unknownWhileInvalid(cqv1.ConditionConflict, v))
		return
	}
	conflict := metav1.Condition{Type: cqv1.ConditionConflict, Status: metav1.ConditionFalse, Reason: cqv1.ReasonNoConflict,
		Message: "No other quota of the same specificity sets the same limits for the same archives", ObservedGeneration: v.Generation}
	if len(v.Conflicts) > 0 {
		var parts []string
		for _, c := range v.Conflicts {
			who := "the other quota's smaller limit is in force"
			if c.Won {
				who = "this quota's smaller limit is in force"
			}
			parts = append(parts, fmt.Sprintf("%s is also set by %s for pod %s (%s)", c.Key, c.Other, c.Pod, who))
		}
		conflict.Status, conflict.Reason = metav1.ConditionTrue, cqv1.ReasonConflictingQuota
		conflict.Message = strings.Join(parts, "; ") + "; narrow the targets so that one quota governs each pod"
	}
	meta.SetStatusCondition(&st.Conditions, conflict)
}

// pinsBlock says whether pinned (or unreadable) archives keep the limit from holding.
func pinsBlock(b quota.Block) bool { return len(b.Pinned) > 0 }

// blockedMessage names the limits that pinned or held archives keep from holding, and
// those archives.
func blockedMessage(blocks []quota.Block) string {
	listed := func(all []string) string {
		if len(all) > 10 {
			return strings.Join(all[:10], ", ") + fmt.Sprintf(" and %d more", len(all)-10)
		}
		return strings.Join(all, ", ")
	}
	var parts []string
	for i, b := range blocks {
		if i == 5 {
			parts = append(parts, fmt.Sprintf("and %d more", len(blocks)-i))
			break
		}
		res := policy.ResourceCheckpoints
		if strings.HasSuffix(b.Rule, ".storage") {
			res = policy.ResourceStorage
		}
		scope := b.Scope
		if scope == "" {
			scope = "the quota's targets"
		}
		var why []string
		if len(b.Pinned) > 0 {
			why = append(why, "pinned checkpoints "+listed(b.Pinned)+" cannot be pruned")
		}
		if len(b.Held) > 0 {
			why = append(why, "checkpoints "+listed(b.Held)+" cannot be pruned: "+b.HeldBecause)
		}
		parts = append(parts, fmt.Sprintf("%s of %s stays at %s/%s: %s",
			b.Rule, scope, amount(b.Used, res), amount(b.Hard, res), strings.Join(why, ", and ")))
	}
	msg := strings.Join(parts, "; ")
	if slices.ContainsFunc(blocks, pinsBlock) {
		msg += "; unpin them (spec.pinned, .keep marker) or raise the limit"
	}
	return msg
}

func pendingSummary(p []PendingArchive) string {
	var bytes int64
	var names []string
	for i, a := range p {
		bytes += a.Size
		if i < 10 {
			names = append(names, a.Name)
		}
	}
	s := fmt.Sprintf("%d checkpoints (%s): %s", len(p), quota.Bytes(bytes), strings.Join(names, ", "))
	if len(p) > 10 {
		s += ", ..."
	}
	return s
}

func amount(n int64, r policy.Resource) string {
	if r == policy.ResourceStorage {
		return quota.Bytes(n)
	}
	return fmt.Sprint(n)
}

// summary is the used/hard of the tightest count limit and of the tightest storage limit;
// without such a limit, the usage alone. The remote limits have a summary of their own,
// of both together ("3/20, 1.2Gi/10Gi"), for a quota that sets them (remote not nil).
func summary(st *cqv1.QuotaStatus, r, remote *quota.Outcome) cqv1.UsageSummary {
	tightest := func(suffix string, format func(int64) string, total int64, stored bool) string {
		best, bestFill := "", -1.0
		for k, hard := range st.Hard {
			if !strings.HasSuffix(k, suffix) || policy.IsRemote(k) != stored {
				continue
			}
			u := st.Used[k]
			fill := math.Inf(1)
			if hard.Value() > 0 {
				fill = float64(u.Value()) / float64(hard.Value())
			}
			if s := format(u.Value()) + "/" + format(hard.Value()); fill > bestFill || (fill == bestFill && s < best) {
				best, bestFill = s, fill
			}
		}
		if best == "" {
			return format(total)
		}
		return best
	}
	count := func(n int64) string { return fmt.Sprint(n) }
	sum := cqv1.UsageSummary{
		Checkpoints: tightest(".checkpoints", count, r.Checkpoints, false),
		Storage:     tightest("storage", quota.Bytes, r.Bytes, false),
	}
	if remote != nil {
		sum.Remote = tightest(".checkpoints", count, remote.Checkpoints, true) + ", " + tightest("storage", quota.Bytes, remote.Bytes, true)
	}
	return sum
}

func usage(s quota.ScopeUsage) cqv1.Usage {
	return cqv1.Usage{Checkpoints: s.Checkpoints, Storage: *bytesQuantity(s.Bytes)}
}

func bytesQuantity(n int64) *resource.Quantity { return resource.NewQuantity(n, resource.BinarySI) }

func timePtr(t time.Time) *metav1.Time {
	mt := metav1.NewTime(t)
	return &mt
}

// transitionEvents reports the conditions that just became true, once per transition: it
// runs after the write that recorded the transition.
func (s *StatusWriter) transitionEvents(ctx context.Context, obj client.Object, old, st *cqv1.QuotaStatus, v *QuotaView) {
	became := func(t, reason string) *metav1.Condition {
		c := meta.FindStatusCondition(st.Conditions, t)
		if c == nil || c.Reason != reason {
			return nil
		}
		if o := meta.FindStatusCondition(old.Conditions, t); o != nil && o.Status == c.Status && o.Reason == c.Reason {
			return nil
		}
		return c
	}
	if c := became(cqv1.ConditionOverQuota, cqv1.ReasonPinnedCheckpoints); c != nil {
		s.Recorder.Event(obj, corev1.EventTypeWarning, cqv1.ReasonPruningBlocked, c.Message)
		for _, b := range v.Result.Blocked {
			s.podEvent(ctx, obj, b.Scope, corev1.EventTypeWarning, cqv1.ReasonPruningBlocked, fmt.Sprintf("Pinned checkpoints keep %s over %s/%s", b.Rule, fmt.Sprint(b.Used), fmt.Sprint(b.Hard)))
		}
	}
	if c := became(cqv1.ConditionOverQuota, cqv1.ReasonHeldCheckpoints); c != nil {
		s.Recorder.Event(obj, corev1.EventTypeWarning, cqv1.ReasonPruningBlocked, c.Message)
	}
	if c := became(cqv1.ConditionOverQuota, cqv1.ReasonNodePruningBlocked); c != nil {
		s.Recorder.Event(obj, corev1.EventTypeWarning, cqv1.ReasonNodePruningBlocked, c.Message)
	}
	if c := became(cqv1.ConditionOverQuota, cqv1.ReasonDryRun); c != nil {
		s.Recorder.Event(obj, corev1.EventTypeNormal, cqv1.ReasonWouldPrune, c.Message)
	}
	if c := became(cqv1.ConditionConflict, cqv1.ReasonConflictingQuota); c != nil {
		s.Recorder.Event(obj, corev1.EventTypeWarning, cqv1.ReasonConflictingQuota, c.Message)
		for _, cf := range v.Conflicts {
			s.podEvent(ctx, obj, cf.Pod, corev1.EventTypeWarning, cqv1.ReasonConflictingQuota,
				fmt.Sprintf("%s is set by both %s and %s", cf.Key, v.Ref, cf.Other))
		}
	}
	if c := became(cqv1.ConditionReady, cqv1.ReasonInvalidSpec); c != nil {
		s.Recorder.Event(obj, corev1.EventTypeWarning, cqv1.ReasonInvalidSpec, c.Message)
	}
}

// podEvent reports on the pod of a scope when it exists.
func (s *StatusWriter) podEvent(ctx context.Context, related client.Object, scope, typ, reason, note string) {
	ns, name, ok := splitPodScope(scope)
	if !ok {
		return
	}
	p := &metav1.PartialObjectMetadata{}
	p.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Pod"))
	if err := s.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, p); err != nil {
		return
	}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: p.Namespace, Name: p.Name, UID: p.UID}}
	s.Recorder.Event(pod, typ, reason, note+" ("+refString(related)+")")
}

// refString names a quota object for a message on a pod.
func refString(obj client.Object) string {
	if obj.GetNamespace() == "" {
		return "ClusterCheckpointQuota " + obj.GetName()
	}
	return "CheckpointQuota " + obj.GetNamespace() + "/" + obj.GetName()
}
