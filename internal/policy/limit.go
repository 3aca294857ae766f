package policy

import (
	"fmt"
	"sync"

	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation/field"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
)

// Levels, as spec.limits names them.
const (
	LevelTotal        = "total"
	LevelPerNamespace = "perNamespace"
	LevelPerPod       = "perPod"
	LevelPerContainer = "perContainer"
	LevelPerNode      = "perNode"
)

// Names of the retention rules, as the spec and status name them. The limits of a level
// are named "<level>.<resource>", such as "perPod.storage".
const (
	NameMaxCheckpointSize = "maxCheckpointSize"
	NameMaxAge            = "maxAge"
	NameOrphans           = "orphans"
)

// Resource is what a limit counts, named as the field of a level that sets it.
type Resource string

// Resources of limits.
const (
	ResourceCheckpoints Resource = "checkpoints"
	ResourceStorage     Resource = "storage"
)

var (
	specPath   = field.NewPath("spec")
	limitsPath = specPath.Child("limits")
)

// Level is one block of limits of a quota, such as spec.limits.perPod, with the keys its
// count and its storage set.
type Level struct {
	Name   string
	Path   *field.Path
	Limits *cqv1.ResourceLimits
	// Checkpoints and Storage are the keys of the level's limits; empty for limits.perNode,
	// whose rules hold per node outside precedence.
	Checkpoints, Storage Key
}

// CountPath is the path of the level's checkpoints field.
func (lv Level) CountPath() *field.Path { return lv.pathOf(ResourceCheckpoints) }

// StoragePath is the path of the level's storage field.
func (lv Level) StoragePath() *field.Path { return lv.pathOf(ResourceStorage) }

func level(name string, l *cqv1.ResourceLimits, count, storage Key) Level {
	return Level{Name: name, Path: levelPaths[name], Limits: l, Checkpoints: count, Storage: storage}
}

// levelPaths, limitPaths and limitNames are made once: every quota's limits share them.
var (
	levelPaths = map[string]*field.Path{}
	limitPaths = map[string]*field.Path{}
	limitNames = map[string]string{}
)

func init() {
	for _, lv := range []string{LevelTotal, LevelPerNamespace, LevelPerPod, LevelPerContainer, LevelPerNode} {
		levelPaths[lv] = limitsPath.Child(lv)
		for _, r := range []Resource{ResourceCheckpoints, ResourceStorage} {
			name := lv + "." + string(r)
			limitPaths[name], limitNames[name] = levelPaths[lv].Child(string(r)), name
		}
	}
	for _, name := range []string{NameMaxCheckpointSize, NameMaxAge, NameOrphans} {
		limitPaths[name] = specPath.Child(name)
	}
}

// pathOf is the path of a level's field, made once where it can be.
func (lv Level) pathOf(r Resource) *field.Path {
	if p, ok := limitPaths[lv.Name+"."+string(r)]; ok && lv.Path == levelPaths[lv.Name] {
		return p
	}
	return lv.Path.Child(string(r))
}

// CheckpointQuotaLevels lists a CheckpointQuota's levels, the widest first. Without a
// target, limits.total is the namespace level and competes with a cluster quota's
// perNamespace; with one, it caps the targeted group alongside.
func CheckpointQuotaLevels(cq *cqv1.CheckpointQuota) []Level {
	l := cq.Spec.Limits
	total := level(LevelTotal, l.Total, GroupCheckpoints, GroupStorage)
	if quotaSpecificity(cq.Spec.Target) == NamespaceUntargeted {
		total.Checkpoints, total.Storage = NamespaceCheckpoints, NamespaceStorage
	}
	return []Level{
		total,
		level(LevelPerPod, l.PerPod, PodCheckpoints, PodStorage),
		level(LevelPerContainer, l.PerContainer, ContainerCheckpoints, ContainerStorage),
	}
}

// ClusterQuotaLevels lists a ClusterCheckpointQuota's levels, the widest first; its
// limits.total is always a group limit. limits.perNode is NodeLevel.
func ClusterQuotaLevels(cq *cqv1.ClusterCheckpointQuota) []Level {
	l := cq.Spec.Limits
	return []Level{
		level(LevelTotal, l.Total, GroupCheckpoints, GroupStorage),
		level(LevelPerNamespace, l.PerNamespace, NamespaceCheckpoints, NamespaceStorage),
		level(LevelPerPod, l.PerPod, PodCheckpoints, PodStorage),
		level(LevelPerContainer, l.PerContainer, ContainerCheckpoints, ContainerStorage),
	}
}

// NodeLevel is a cluster quota's limits.perNode. Its limits have no Key: node rules hold
// per node, outside precedence.
func NodeLevel(cq *cqv1.ClusterCheckpointQuota) Level {
	return level(LevelPerNode, cq.Spec.Limits.PerNode, "", "")
}

// Limit is one limit a quota sets, read once from the spec: reports, status and messages
// take its name, path and value from here instead of parsing the spec again.
type Limit struct {
	// Field is what the limit limits, shared by every quota's limit of that field: a
	// limit held its own copy, 64 of its 112 bytes, nine in every quota (issue 29).
	*Field
	// Value is the most archives or bytes; for maxCheckpointSize the bytes of one archive;
	// for maxAge the nanoseconds, so that ceilings compare alike.
	Value int64
	// Written is the value as the user wrote it, such as "10Gi", "5" or "168h"; for
	// orphans "Retain" or "Delete after 10m".
	Written string
}

// Field is what a limit limits: the same for the limits of one field of every quota of a
// kind, and made once for all of them (fieldOf).
type Field struct {
	Key Key
	// Level is the level of a count or storage limit, such as "perPod"; empty for a
	// retention rule.
	Level string
	// Resource is what the limit counts (maxCheckpointSize: storage); empty for maxAge and
	// orphans, which status shows only in effectivePolicy.
	Resource Resource
	Path     *field.Path
	// Name is the limit's name in status, such as "perPod.storage", "total.checkpoints" or "maxAge".
	Name string
}

// noField is the Field of the zero Limit, which a quota that does not set a key gives.
var noField = &Field{}

// fields holds each Field made, by what it is.
var fields sync.Map // fieldKey -> *Field

type fieldKey struct {
	key         Key
	level, name string
	resource    Resource
	path        string
}

// fieldOf is the Field with these values, made once.
func fieldOf(k Key, level string, r Resource, path *field.Path, name string) *Field {
	fk := fieldKey{key: k, level: level, name: name, resource: r, path: path.String()}
	if f, ok := fields.Load(fk); ok {
		return f.(*Field)
	}
	f, _ := fields.LoadOrStore(fk, &Field{Key: k, Level: level, Resource: r, Path: path, Name: name})
	return f.(*Field)
}

// Quantity is n archives or bytes of the limit's resource, as status.hard and status.used
// show them: counts in decimal, bytes in the unit family of the limit (Format).
func (l Limit) Quantity(n int64) resource.Quantity {
	if l.Resource == ResourceStorage {
		return *resource.NewQuantity(n, l.Format())
	}
	return *resource.NewQuantity(n, resource.DecimalSI)
}

// Format is the unit family a size limit was written in, BinarySI or DecimalSI, so that
// status shows bytes as the user counts them: 1000M as 1G, 1024Mi as 1Gi. It is read
// again from Written, which parsed when the limit was set, rather than kept: a field of
// 16 bytes in each of the nine limits of a maximal quota took its limits from 448 bytes
// to 288 (issue 29). A status write reads it twice a limit.
func (l Limit) Format() resource.Format {
	if q, err := cqv1.Size(l.Written).Quantity(); err == nil && q.Format == resource.BinarySI {
		return resource.BinarySI
	}
	return resource.DecimalSI
}

// LimitName is the status name of a level's limit of a resource, such as "perPod.storage".
func LimitName(level string, r Resource) string {
	if name, ok := limitNames[level+"."+string(r)]; ok {
		return name
	}
	return level + "." + string(r)
}

// countLimit is the checkpoints limit of a level.
func (lv Level) countLimit(n int64) Limit {
	return Limit{Field: fieldOf(lv.Checkpoints, lv.Name, ResourceCheckpoints, lv.CountPath(), LimitName(lv.Name, ResourceCheckpoints)),
		Value: n, Written: fmt.Sprint(n)}
}

// storageLimit is the storage limit of a level.
func (lv Level) storageLimit(s cqv1.Size) (Limit, error) {
	return sizeLimit(fieldOf(lv.Storage, lv.Name, ResourceStorage, lv.StoragePath(), LimitName(lv.Name, ResourceStorage)), s)
}

// sizeLimit is the storage limit of f at s: its value, as written and in bytes, and its
// unit family. It fails on a size that does not parse.
func sizeLimit(f *Field, s cqv1.Size) (Limit, error) {
	q, err := s.Quantity()
	if err != nil {
		return Limit{}, fmt.Errorf("%s: %q is not a quantity", f.Path, s)
	}
	return Limit{Field: f, Value: q.Value(), Written: string(s)}, nil
}

// retentionField is the Field of a retention rule, named as its field under spec; r is
// what it counts (maxCheckpointSize: storage), empty for the others.
func retentionField(k Key, name string, r Resource) *Field {
	return fieldOf(k, "", r, limitPaths[name], name)
}
