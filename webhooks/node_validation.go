package webhooks

import (
	"fmt"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation/field"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
	"github.com/checkpoint-quota/checkpoint-quota/internal/policy"
	"github.com/checkpoint-quota/checkpoint-quota/internal/quota"
)

// Messages of the node rules' field errors and warnings.
const (
	MsgMinFreeBare      = `has no unit: write a quantity such as "50Gi", or a share of the filesystem such as "15%"`
	MsgMinFreePercent   = `not a percentage: write a whole number from 0 to 100 and "%", such as "15%"`
	MsgMinFreeOver100   = `is more than the whole filesystem: write a percentage from 0% to 100%, such as "15%", or a quantity such as "50Gi"`
	WarnNodeAboveTotal  = "%s is above %s %s: lower it to at most the total"
	WarnNodeZeroCount   = "0 prunes every unpinned archive on every node"
	WarnMinFreeAll      = "100%% asks for an empty filesystem: every unpinned archive on every node is pruned"
	WarnMinFreeNone     = "%s keeps no free space, as if left out"
	WarnNodeStricter    = "%s sets %s, which wins: the smallest holds"
	WarnNodeFloorAlso   = "%s also sets %s: the larger floor holds"
	nodeFloorField      = "minFree"
	nodeFilesystemField = "nodeFilesystem"
)

// ValidateNodeRules checks limits.perNode and nodeFilesystem.minFree.
func ValidateNodeRules(q *cqv1.ClusterCheckpointQuota, spec *field.Path) field.ErrorList {
	errs := validateLevel(policy.NodeLevel(q))
	if fs := q.Spec.NodeFilesystem; fs != nil && fs.MinFree != nil {
		if err := validateMinFree(*fs.MinFree, spec.Child(nodeFilesystemField, nodeFloorField)); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// validateMinFree checks a floor: a quantity of bytes, or a whole percentage up to 100.
func validateMinFree(v intstr.IntOrString, path *field.Path) *field.Error {
	if v.Type == intstr.Int {
		return field.Invalid(path, v.IntValue(), MsgMinFreeBare)
	}
	s := v.StrVal
	if p, ok := strings.CutSuffix(strings.TrimSpace(s), "%"); ok {
		n, err := strconv.ParseInt(p, 10, 64)
		switch {
		case err != nil || n < 0:
			return field.Invalid(path, s, MsgMinFreePercent)
		case n > 100:
			return field.Invalid(path, s, MsgMinFreeOver100)
		}
		return nil
	}
	if bareNumber.MatchString(s) && s != "0" {
		return field.Invalid(path, s, MsgMinFreeBare)
	}
	_, err := ParseSize(cqv1.Size(s), path)
	if err != nil {
		return err
	}
	return nil
}

// NodeWarnings lists what is legal but suspicious in the node rules: a per-node limit above
// the quota's total, a limit of 0, a floor of 100% or of nothing, and the rules of other
// cluster quotas that win over this one's or hold beside it.
func NodeWarnings(q *cqv1.ClusterCheckpointQuota, others []cqv1.ClusterCheckpointQuota, spec *field.Path) []string {
	var out []string
	node := policy.NodeLevel(q)
	total := policy.ClusterQuotaLevels(q)[0] // the widest: limits.total
	if l := node.Limits; l != nil {
		count, storage := node.CountPath(), node.StoragePath()
		if l.Checkpoints != nil && *l.Checkpoints == 0 {
			out = append(out, warn(count.String(), WarnNodeZeroCount))
		}
		if t := total.Limits; t != nil {
			if l.Checkpoints != nil && t.Checkpoints != nil && *l.Checkpoints > *t.Checkpoints {
				out = append(out, warn(count.String(), WarnNodeAboveTotal, fmt.Sprint(*l.Checkpoints),
					total.CountPath().String(), fmt.Sprint(*t.Checkpoints)))
			}
			if n, w := bytes(l.Storage), bytes(t.Storage); n != nil && w != nil && n.Cmp(*w) > 0 {
				out = append(out, warn(storage.String(), WarnNodeAboveTotal, string(*l.Storage),
					total.StoragePath().String(), string(*t.Storage)))
			}
		}
		for _, o := range others {
			if o.Name == q.Name || o.Spec.Limits.PerNode == nil {
				continue
			}
			ol := o.Spec.Limits.PerNode
			if l.Checkpoints != nil && ol.Checkpoints != nil && *ol.Checkpoints < *l.Checkpoints {
				out = append(out, warn(count.String(), WarnNodeStricter, "ClusterCheckpointQuota "+o.Name, fmt.Sprint(*ol.Checkpoints)))
			}
			if n, w := bytes(l.Storage), bytes(ol.Storage); n != nil && w != nil && w.Cmp(*n) < 0 {
				out = append(out, warn(storage.String(), WarnNodeStricter, "ClusterCheckpointQuota "+o.Name, string(*ol.Storage)))
			}
		}
	}
	if fs := q.Spec.NodeFilesystem; fs != nil && fs.MinFree != nil {
		path := spec.Child(nodeFilesystemField, nodeFloorField).String()
		f, _ := quota.ParseMinFree(*fs.MinFree)
		switch {
		case f.IsPercent && f.Percent == 100:
			out = append(out, warn(path, WarnMinFreeAll))
		case f.IsPercent && f.Percent == 0, !f.IsPercent && f.Bytes == 0:
			out = append(out, warn(path, WarnMinFreeNone, fs.MinFree.String()))
		}
		for _, o := range others {
			if o.Name != q.Name && o.Spec.NodeFilesystem != nil && o.Spec.NodeFilesystem.MinFree != nil {
				out = append(out, warn(path, WarnNodeFloorAlso, "ClusterCheckpointQuota "+o.Name, o.Spec.NodeFilesystem.MinFree.String()))
			}
		}
	}
	return out
}
