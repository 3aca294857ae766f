package policy

import (
	"slices"

	"fmt"

	"k8s.io/apimachinery/pkg/util/validation/field"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
)

// The remote tier: a quota's spec.remoteLimits bound the archives that offload moved to
// CheckpointStores, as its limits bound those on nodes. They are read into a twin of the
// quota (Quota.Remote): the same reference, target, specificity and enforcement, with
// remoteLimits as its limits and remoteLimits.maxAge as its maxAge. Resolving the twins
// over the stored archives is then the same arithmetic as on nodes (precedence, conflicts,
// and cluster quotas as ceilings for namespaced ones), kept apart by the limits' names:
// "remoteLimits.perPod.storage", "remoteLimits.maxAge".

// RemotePrefix starts the name of every remote limit, as spec.remoteLimits is named.
const RemotePrefix = "remoteLimits"

// NameRemoteMaxAge is the name of the remote tier's age limit.
const NameRemoteMaxAge = RemotePrefix + "." + NameMaxAge

var remotePath = specPath.Child(RemotePrefix)

func init() {
	for _, lv := range []string{LevelTotal, LevelPerNamespace, LevelPerPod, LevelPerContainer} {
		name := RemotePrefix + "." + lv
		levelPaths[name] = remotePath.Child(lv)
		for _, r := range []Resource{ResourceCheckpoints, ResourceStorage} {
			full := name + "." + string(r)
			limitPaths[full], limitNames[full] = levelPaths[name].Child(string(r)), full
		}
	}
	limitPaths[NameRemoteMaxAge] = remotePath.Child(NameMaxAge)
}

// RemoteLevel is the name of a level of spec.remoteLimits, such as "remoteLimits.perPod".
func RemoteLevel(level string) string { return RemotePrefix + "." + level }

// CheckpointQuotaRemoteLevels lists the levels of a CheckpointQuota's remoteLimits, the
// widest first, with the keys of the same levels of spec.limits: without a target, total is
// the namespace level, as in CheckpointQuotaLevels. Nil when the quota has no remoteLimits.
func CheckpointQuotaRemoteLevels(cq *cqv1.CheckpointQuota) []Level {
	rl := cq.Spec.RemoteLimits
	if rl == nil {
		return nil
	}
	total := level(RemoteLevel(LevelTotal), rl.Total, GroupCheckpoints, GroupStorage)
	if quotaSpecificity(cq.Spec.Target) == NamespaceUntargeted {
		total.Checkpoints, total.Storage = NamespaceCheckpoints, NamespaceStorage
	}
	return []Level{
		total,
		level(RemoteLevel(LevelPerPod), rl.PerPod, PodCheckpoints, PodStorage),
		level(RemoteLevel(LevelPerContainer), rl.PerContainer, ContainerCheckpoints, ContainerStorage),
	}
}

// ClusterQuotaRemoteLevels lists the levels of a ClusterCheckpointQuota's remoteLimits,
// the widest first, as ClusterQuotaLevels. Nil when the quota has no remoteLimits.
func ClusterQuotaRemoteLevels(cq *cqv1.ClusterCheckpointQuota) []Level {
	rl := cq.Spec.RemoteLimits
	if rl == nil {
		return nil
	}
	return []Level{
		level(RemoteLevel(LevelTotal), rl.Total, GroupCheckpoints, GroupStorage),
		level(RemoteLevel(LevelPerNamespace), rl.PerNamespace, NamespaceCheckpoints, NamespaceStorage),
		level(RemoteLevel(LevelPerPod), rl.PerPod, PodCheckpoints, PodStorage),
		level(RemoteLevel(LevelPerContainer), rl.PerContainer, ContainerCheckpoints, ContainerStorage),
	}
}

// RemoteMaxAgePath is the path of remoteLimits.maxAge.
func RemoteMaxAgePath() *field.Path { return limitPaths[NameRemoteMaxAge] }

// remoteTwin is the twin of q whose limits are levels and maxAge, with the quota's orphan
// rule (spec.orphans governs a stored archive whose pod is gone as it does one on a node):
// nil when the quota sets neither remoteLimits nor orphans.
func remoteTwin(q *Quota, levels []Level, maxAge *cqv1.Duration) (*Quota, error) {
	if levels == nil && q.Orphans == nil {
		return nil, nil
	}
	t := &Quota{Ref: q.Ref, Specificity: q.Specificity, NamespaceSelector: q.NamespaceSelector,
		PodSelector: q.PodSelector, PodNames: q.PodNames, ContainerNames: q.ContainerNames,
		Enforcement: q.Enforcement, Orphans: q.Orphans}
	for _, lv := range levels {
		if err := t.setLevel(lv); err != nil {
			return nil, err
		}
	}
	if maxAge != nil {
		d, err := maxAge.Duration()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", RemoteMaxAgePath(), err)
		}
		t.MaxAge = &d
		t.set(Limit{Field: retentionField(MaxAge, NameRemoteMaxAge, ""), Written: string(*maxAge), Value: int64(d)})
	}
	if i := q.limitIndex(Orphans); i >= 0 {
		t.set(q.limits[i]) // the same rule, under the same name: "orphans", spec.orphans
	}
	t.limits = slices.Clone(t.limits) // at their number, as setAll leaves a quota's
	return t, nil
}

// setTwins sets the quota's twins for the stored archives from what remoteTwin built:
// Remote only when the quota sets remoteLimits, stored whenever it sets either.
func (q *Quota) setTwins(t *Quota, levels []Level) {
	q.stored = t
	if levels != nil {
		q.Remote = t
	}
}

// Stored is the quota's twin for the archives in CheckpointStores: its remoteLimits and its
// orphan rule. Nil when the quota sets neither; Remote when it sets remoteLimits.
func (q *Quota) Stored() *Quota { return q.stored }

// IsRemote says whether a limit's name is one of spec.remoteLimits.
func IsRemote(name string) bool {
	return len(name) > len(RemotePrefix) && name[:len(RemotePrefix)+1] == RemotePrefix+"."
}
