package v1alpha1

// Reasons of the quota conditions (ConditionReady, ConditionOverQuota, ConditionConflict),
// which clients may compare against: the manager sets every condition on every pass, each
// with one of these.
const (
	// ReasonUsageComputed (Ready=True): usage is computed from every Checkpoint the quota governs.
	ReasonUsageComputed = "UsageComputed"
	// ReasonInvalidSpec (Ready=False, OverQuota and Conflict Unknown): a value of the spec
	// does not parse; the message names the field. Nothing of the previous spec is reported.
	ReasonInvalidSpec = "InvalidSpec"

	// ReasonWithinLimits (OverQuota=False): every limit holds.
	ReasonWithinLimits = "WithinLimits"
	// ReasonPruning (OverQuota=False): archives over a limit are being pruned.
	ReasonPruning = "Pruning"
	// ReasonDryRun (OverQuota=True): under DryRun, Enforce would prune the archives of
	// status.pendingPrune.
	ReasonDryRun = "DryRun"
	// ReasonPinnedCheckpoints (OverQuota=True): pinned or unreadable archives keep a limit
	// from holding.
	ReasonPinnedCheckpoints = "PinnedCheckpoints"
	// ReasonHeldCheckpoints (OverQuota=True): archives that a quota not known well enough
	// might govern are held, and keep a limit from holding.
	ReasonHeldCheckpoints = "HeldCheckpoints"
	// ReasonNodePruningBlocked (OverQuota=True): a node stays over a node rule: what is
	// left on it may not be pruned (pins, unreadable archives) or is not an archive at all.
	ReasonNodePruningBlocked = "NodePruningBlocked"

	// ReasonNoConflict (Conflict=False): no other quota of the same specificity sets the
	// same limits for the same archives.
	ReasonNoConflict = "NoConflict"
	// ReasonConflictingQuota (Conflict=True, and the event): another quota of the same
	// specificity sets the same limit for some of the same archives.
	ReasonConflictingQuota = "ConflictingQuota"
)

// Reasons of the events on quotas and pods, besides those of the conditions, which are
// also emitted as events when a condition turns to them.
const (
	// ReasonPruned: the quota pruned archives.
	ReasonPruned = "Pruned"
	// ReasonPruningBlocked: pinned or held archives keep a limit from holding.
	ReasonPruningBlocked = "PruningBlocked"
	// ReasonWouldPrune: under DryRun, Enforce would prune archives.
	ReasonWouldPrune = "WouldPrune"
)
