// Package quota is the quota arithmetic: effective limits per archive, usage per scope, and which archives to prune; pure, no client.
package quota

import (
	"time"

	"github.com/checkpoint-quota/checkpoint-quota/internal/policy"
)

// Per is the scope a limit counts over.
type Per int

const (
	// PerContainer counts the archives of one container of one pod.
	PerContainer Per = iota
	// PerPod counts the archives of one pod.
	PerPod
	// PerNamespace counts the archives of one namespace.
	PerNamespace
	// PerGroup counts every archive that the quota governs with this limit, together
	// (limits.total of a targeted quota, or of a cluster quota).
	PerGroup
)

// Archive is one Checkpoint object as the arithmetic sees it.
type Archive struct {
	// Name is the Checkpoint object's name; Namespace its namespace (the pod's).
	Name, Namespace string
	Pod, PodUID     string
	Container       string
	Node            string
	Size            int64
	// CheckpointTime orders archives oldest first (Name breaks ties, so that the order is
	// stable). The agent takes it from inside the archive, else the file name, else the
	// file's modification time; zero when not known.
	CheckpointTime time.Time
	// Pinned archives count but are never pruned.
	Pinned bool
	// Unreadable archives count but are never pruned: they are reported instead.
	Unreadable bool
	// Deleting archives are those of Checkpoints being deleted that a finalizer holds: the
	// file is on the node until the agent removes it, so they count, and are not pruned again.
	Deleting bool
	// Copy is a copy of a stored archive on a node, fetched back to its own node or to
	// another (spec.archive.copyOf): it counts, and every rule frees it before any other
	// archive, since removing it loses nothing.
	Copy bool
	// OrphanSince is when the controller first found the archive's pod gone; zero while
	// the pod exists or while that is not known for sure.
	OrphanSince time.Time
}

// Scope names the namespace, pod or container an archive belongs to at a level, as
// "shop", "shop/cache-0" or "shop/cache-0/redis"; a group limit's scope is "".
func (a *Archive) Scope(l Per) string {
	switch l {
	case PerNamespace:
		return a.Namespace
	case PerPod:
		return a.Namespace + "/" + a.Pod
	case PerContainer:
		return a.Namespace + "/" + a.Pod + "/" + a.Container
	}
	return ""
}

// Bound is a count or storage limit of a quota (policy.Limit: its Name, such as
// "perPod.storage", its Resource, and its Value, the most archives or bytes a scope may
// hold) in force for an archive, with the quota it comes from and the scope it counts over.
type Bound struct {
	// Quota indexes Input.Quotas.
	Quota int
	Per   Per
	policy.Limit
}

// Retention is a per-archive rule in force for an archive, and the quota it comes from.
type Retention struct {
	Quota int
	// Rule names the rule in prunes, such as "remoteLimits.maxAge"; empty reads as the
	// rule's own name ("maxAge").
	Rule string
	// Value is bytes for maxCheckpointSize; Duration is maxAge or the orphan grace period.
	Value    int64
	Duration time.Duration
}

// Rules is what governs the archives of one container: the limits in force and the
// retention rules, each from the quota that wins it.
type Rules struct {
	Bounds  []Bound
	MaxSize *Retention
	MaxAge  *Retention
	// Orphans is set only when the winning orphan policy is Delete.
	Orphans *Retention
	// Held, when set, says why the archives count under these rules but are never pruned:
	// a quota that might govern them is not known enough to tell which limits and retention
	// rules are theirs (HeldByLabels, HeldByUnparsed).
	Held string
}

// Meta is what the arithmetic needs to know of a quota besides its limits.
type Meta struct {
	// Name identifies the quota in reasons, such as "CheckpointQuota shop/default".
	Name string
	// DryRun quotas report what they would prune and delete nothing.
	DryRun bool
	// Cluster is true for a ClusterCheckpointQuota: its limits are ceilings, and its
	// limits.total may count archives of many namespaces.
	Cluster bool
}

// Input is the world the arithmetic works on.
type Input struct {
	Archives []Archive
	Quotas   []Meta
	// Rules are the rules that govern each archive, indexed like Archives: Governance.Rules.
	// Archives of one container share one value.
	Rules []*Rules
	// Now is the time against which maxAge and orphan grace periods are measured.
	Now time.Time
}

// Prune is one archive that a quota prunes, and why.
type Prune struct {
	// Archive indexes Input.Archives.
	Archive int
	// Quota indexes Input.Quotas: the quota whose rule prunes the archive.
	Quota int
	// Rule names the rule: a limit such as "perContainer.checkpoints", or
	// "maxCheckpointSize", "maxAge", "orphans".
	Rule string
	// Scope is the namespace, pod or container over its limit ("shop/cache-0/redis"),
	// or the archive's container for a retention rule.
	Scope string
	// Reason is the key with the usage and the limit, such as "perContainer.checkpoints 13/10".
	Reason string
}

// Block is a limit that pruning cannot bring back because the archives left are pinned
// (or unreadable).
type Block struct {
	// Rule names the limit, such as "perPod.checkpoints".
	Rule string
	// Per is the scope the limit counts over, which orders blocks narrowest first.
	Per   Per
	Scope string
	// Used and Hard are the scope's usage and limit, in archives or bytes.
	Used, Hard int64
	// Pinned names the pinned or unreadable archives that kept the limit from holding,
	// oldest first (at most MaxNames).
	Pinned []string
	// Held names the held archives (Rules.Held) that kept the limit from holding, oldest
	// first (at most MaxNames), and HeldBecause is why the first of them is held.
	Held        []string
	HeldBecause string
}

// LimitUsage is one limit of a quota that is in force for some archives.
type LimitUsage struct {
	// Name is the limit's name in status, such as "perPod.storage".
	Name     string
	Per      Per
	Resource policy.Resource
	Hard     int64
	// Used is the usage of the scope nearest the limit; Scope names it.
	Used  int64
	Scope string
}

// ScopeUsage is the usage of one namespace, pod or container under a quota.
type ScopeUsage struct {
	Namespace, Pod, Container string
	Checkpoints, Bytes        int64
	// Fill is the largest used/hard ratio among the quota's limits at this level.
	Fill float64
}

// Outcome is what one quota governs and does.
type Outcome struct {
	// Checkpoints and Bytes count every archive that the quota governs with some rule.
	Checkpoints, Bytes int64
	// Limits are the quota's limits in force for some archive, by key.
	Limits []LimitUsage
	// MaxSize is the largest archive under the quota's maxCheckpointSize, when in force.
	MaxSize *LimitUsage
	// Pending is what the quota prunes now (Enforce) or would prune (DryRun), oldest first.
	Pending []Prune
	// Blocked lists the limits that pinned, unreadable or held archives keep from holding.
	Blocked []Block
	// Namespaces, Pods and Containers are the scopes nearest their limits, at most MaxScopes each.
	Namespaces, Pods, Containers []ScopeUsage
}

// Result is the outcome of one computation.
type Result struct {
	// Prune lists what Enforce quotas delete now, oldest first.
	Prune []Prune
	// Quotas is indexed like Input.Quotas.
	Quotas []Outcome
	// NextExpiry is the earliest time after Now when an archive reaches its maxAge or the
	// end of its orphan grace period; zero when none will.
	NextExpiry time.Time
}

// Bounds of the lists in a result, as the API bounds them.
const (
	MaxScopes = 20
	MaxNames  = 50
)
