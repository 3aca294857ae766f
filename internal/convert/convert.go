// Package convert turns a policy of CRIU's checkpoint-restore-operator (criu.org/v1
// CheckpointRestoreOperator) into equivalent quotas, naming every change of meaning.
package convert

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"

	cqv1 "github.com/checkpoint-quota/checkpoint-quota/api/v1alpha1"
)

// The kind converted, and the default checkpoint directory of the kubelet and of the agent.
const (
	APIVersion        = "criu.org/v1"
	Kind              = "CheckpointRestoreOperator"
	defaultCheckpoint = "/var/lib/kubelet/checkpoints"
)

// SizeUnit says how a bare size of CRIU's operator is read. Its docs say megabytes; its
// code compares the number with the archive's size in bytes.
type SizeUnit string

const (
	// Mebibytes converts 10 to 10Mi: what the docs promise (the default).
	Mebibytes SizeUnit = "Mi"
	// Megabytes converts 10 to 10M.
	Megabytes SizeUnit = "M"
	// Bytes keeps what the old operator did: 10 is 10 bytes. A quota's size needs a unit
	// (validation rejects a bare number as ambiguous), so it is written in the largest
	// binary unit that holds it exactly, or in kibibytes rounded up ("1Ki").
	Bytes SizeUnit = "bytes"
)

// Options choose what the conversion cannot know.
type Options struct {
	// SizeUnit reads bare sizes; empty is Mebibytes.
	SizeUnit SizeUnit
	// Enforcement of every quota written; empty is Enforce.
	Enforcement cqv1.EnforcementMode
}

// Warning is a change of meaning, at the field of the input that causes it.
type Warning struct {
	Path, Message string
}

func (w Warning) String() string { return w.Path + ": " + w.Message }

// Result is the quotas equivalent to one CheckpointRestoreOperator.
type Result struct {
	Cluster    *cqv1.ClusterCheckpointQuota
	Namespaced []*cqv1.CheckpointQuota
	Warnings   []Warning
}

// operator is the part of CRIU's CRD that means something for retention.
type operator struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Metadata   metav1.ObjectMeta `json:"metadata"`
	Spec       struct {
		CheckpointDirectory      string            `json:"checkpointDirectory"`
		ApplyPoliciesImmediately *bool             `json:"applyPoliciesImmediately"`
		GlobalPolicy             *globalPolicy     `json:"globalPolicy"`
		ContainerPolicies        []containerPolicy `json:"containerPolicies"`
		PodPolicies              []podPolicy       `json:"podPolicies"`
		NamespacePolicies        []namespacePolicy `json:"namespacePolicies"`
	} `json:"spec"`
}

// number is a count or a size as CRIU's YAML has it: usually an integer, sometimes quoted.
type number = *yamlNumber

type yamlNumber struct{ raw string }

func (n *yamlNumber) UnmarshalJSON(b []byte) error {
	n.raw = strings.Trim(string(b), `"`)
	return nil
}

type globalPolicy struct {
	RetainOrphan               *bool  `json:"retainOrphan"`
	MaxCheckpointsPerNamespace number `json:"maxCheckpointsPerNamespace"`
	MaxCheckpointsPerPod       number `json:"maxCheckpointsPerPod"`
	MaxCheckpointsPerContainer number `json:"maxCheckpointsPerContainer"`
	MaxCheckpointSize          number `json:"maxCheckpointSize"`
	MaxTotalSizePerNamespace   number `json:"maxTotalSizePerNamespace"`
	MaxTotalSizePerPod         number `json:"maxTotalSizePerPod"`
	MaxTotalSizePerContainer   number `json:"maxTotalSizePerContainer"`
}

// policy is what the container, pod and namespace policies share.
type policy struct {
	Namespace         string `json:"namespace"`
	RetainOrphan      *bool  `json:"retainOrphan"`
	MaxCheckpoints    number `json:"maxCheckpoints"`
	MaxCheckpointSize number `json:"maxCheckpointSize"`
	MaxTotalSize      number `json:"maxTotalSize"`
}

type namespacePolicy struct {
	policy `json:",inline"`
}

type podPolicy struct {
	policy `json:",inline"`
	Pod    string `json:"pod"`
}

type containerPolicy struct {
	policy    `json:",inline"`
	Pod       string `json:"pod"`
	Container string `json:"container"`
}

// Convert reads one CheckpointRestoreOperator in YAML or JSON.
func Convert(data []byte, opts Options) (*Result, error) {
	var op operator
	res := &Result{}
	if err := yaml.UnmarshalStrict(data, &op); err != nil {
		if err := yaml.Unmarshal(data, &op); err != nil {
			return nil, fmt.Errorf("reading the CheckpointRestoreOperator: %w", err)
		}
		res.warn("spec", fmt.Sprintf("fields this conversion does not know are ignored (%v)", err))
	}
	if op.Kind != Kind || op.APIVersion != APIVersion {
		return nil, fmt.Errorf("want a %s %s, got kind %q of %q", APIVersion, Kind, op.Kind, op.APIVersion)
	}
	c := converter{opts: opts, res: res, name: op.Metadata.Name}
	if c.name == "" {
		c.name = "criu"
	}
	if c.opts.SizeUnit == "" {
		c.opts.SizeUnit = Mebibytes
	}
	if c.opts.Enforcement == "" {
		c.opts.Enforcement = cqv1.EnforcementEnforce
	}
	c.run(&op)
	return res, nil
}

type converter struct {
	opts Options
	res  *Result
	name string
	// warnedSizes is set once a size warning named --size-unit.
	warnedSizes bool
}

func (r *Result) warn(path, msg string) { r.Warnings = append(r.Warnings, Warning{path, msg}) }

func (c *converter) run(op *operator) {
	s := &op.Spec
	if d := s.CheckpointDirectory; d != "" && d != defaultCheckpoint {
		c.res.warn("spec.checkpointDirectory", fmt.Sprintf("not a quota field: set the agent's --checkpoint-dir (Helm value agent.checkpointDirs) to %s", d))
	}
	if s.ApplyPoliciesImmediately == nil || !*s.ApplyPoliciesImmediately {
		c.res.warn("spec.applyPoliciesImmediately", "quotas always apply at once, to existing archives too (the old operator waited for the next checkpoint); "+
			"convert with --enforcement=DryRun to preview what they would prune")
	}
	if g := s.GlobalPolicy; g != nil {
		c.global(g)
	}
	for i, p := range s.NamespacePolicies {
		c.namespaced(fmt.Sprintf("spec.namespacePolicies[%d]", i), p.policy, c.name, nil, func(q *cqv1.CheckpointQuota, l *cqv1.ResourceLimits) {
			q.Spec.Limits.Total = l
		})
		if s.GlobalPolicy != nil {
			c.res.warn(fmt.Sprintf("spec.namespacePolicies[%d]", i), fmt.Sprintf(
				"in namespace %s the cluster quota's perPod and perContainer limits still hold beside this total (the old operator replaced the global policy there)", p.Namespace))
		}
	}
	for i, p := range s.PodPolicies {
		target := &cqv1.QuotaTarget{PodNames: []string{p.Pod}}
		c.namespaced(fmt.Sprintf("spec.podPolicies[%d]", i), p.policy, c.name+"-pod-"+p.Pod, target, func(q *cqv1.CheckpointQuota, l *cqv1.ResourceLimits) {
			q.Spec.Limits.PerPod = l
		})
	}
	for i, p := range s.ContainerPolicies {
		target := &cqv1.QuotaTarget{PodNames: []string{p.Pod}, ContainerNames: []string{p.Container}}
		c.namespaced(fmt.Sprintf("spec.containerPolicies[%d]", i), p.policy, c.name+"-container-"+p.Pod+"-"+p.Container, target, func(q *cqv1.CheckpointQuota, l *cqv1.ResourceLimits) {
			q.Spec.Limits.PerContainer = l
		})
	}
	sort.SliceStable(c.res.Namespaced, func(i, j int) bool {
		a, b := c.res.Namespaced[i], c.res.Namespaced[j]
		return a.Namespace < b.Namespace || a.Namespace == b.Namespace && a.Name < b.Name
	})
}

func (c *converter) global(g *globalPolicy) {
	const path = "spec.globalPolicy"
	q := &cqv1.ClusterCheckpointQuota{TypeMeta: metav1.TypeMeta{APIVersion: cqv1.GroupVersion.String(), Kind: "ClusterCheckpointQuota"},
		ObjectMeta: metav1.ObjectMeta{Name: c.name}}
	l := &q.Spec.Limits
	l.PerNamespace = c.limits(path, g.MaxCheckpointsPerNamespace, "maxCheckpointsPerNamespace", g.MaxTotalSizePerNamespace, "maxTotalSizePerNamespace")
	l.PerPod = c.limits(path, g.MaxCheckpointsPerPod, "maxCheckpointsPerPod", g.MaxTotalSizePerPod, "maxTotalSizePerPod")
	l.PerContainer = c.limits(path, g.MaxCheckpointsPerContainer, "maxCheckpointsPerContainer", g.MaxTotalSizePerContainer, "maxTotalSizePerContainer")
	q.Spec.MaxCheckpointSize = c.size(path+".maxCheckpointSize", g.MaxCheckpointSize)
	c.retention(path, &q.Spec.RetentionSpec, g.RetainOrphan)
	c.res.Cluster = q
}

func (c *converter) namespaced(path string, p policy, name string, target *cqv1.QuotaTarget, set func(*cqv1.CheckpointQuota, *cqv1.ResourceLimits)) {
	if p.Namespace == "" {
		c.res.warn(path+".namespace", "empty: the policy is skipped (a quota lives in one namespace)")
		return
	}
	q := &cqv1.CheckpointQuota{TypeMeta: metav1.TypeMeta{APIVersion: cqv1.GroupVersion.String(), Kind: "CheckpointQuota"},
		ObjectMeta: metav1.ObjectMeta{Name: objectName(name), Namespace: p.Namespace}}
	q.Spec.Target = target
	if l := c.limits(path, p.MaxCheckpoints, "maxCheckpoints", p.MaxTotalSize, "maxTotalSize"); l != nil {
		set(q, l)
	}
	q.Spec.MaxCheckpointSize = c.size(path+".maxCheckpointSize", p.MaxCheckpointSize)
	c.retention(path, &q.Spec.RetentionSpec, p.RetainOrphan)
	c.res.Namespaced = append(c.res.Namespaced, q)
}

func (c *converter) retention(path string, r *cqv1.RetentionSpec, retainOrphan *bool) {
	r.Enforcement = c.opts.Enforcement
	if retainOrphan != nil && !*retainOrphan {
		r.Orphans = &cqv1.OrphanPolicy{Policy: cqv1.OrphanDelete}
		c.res.warn(path+".retainOrphan", "false became orphans.policy: Delete, which prunes an orphan once its pod UID is gone "+
			"for orphans.gracePeriod (default 10m; the old operator deleted at once, and also when a pod lookup failed)")
	}
}

func (c *converter) limits(path string, count number, countField string, size number, sizeField string) *cqv1.ResourceLimits {
	l := &cqv1.ResourceLimits{}
	if count != nil {
		n, err := strconv.ParseInt(count.raw, 10, 64)
		if err != nil || n < 0 {
			c.res.warn(path+"."+countField, fmt.Sprintf("%q is not a count: left out (unlimited)", count.raw))
		} else {
			l.Checkpoints = &n
			if n == 0 {
				c.res.warn(path+"."+countField, "0 prunes every unpinned archive here, as it did before; leave the limit out for no limit")
			}
		}
	}
	l.Storage = c.size(path+"."+sizeField, size)
	if l.Checkpoints == nil && l.Storage == nil {
		return nil
	}
	return l
}

// size converts a bare size, warning once that its meaning was ambiguous.
func (c *converter) size(path string, n number) *cqv1.Size {
	if n == nil {
		return nil
	}
	v, err := strconv.ParseInt(n.raw, 10, 64)
	if err != nil || v < 0 {
		c.res.warn(path, fmt.Sprintf("%q is not a size: left out (unlimited)", n.raw))
		return nil
	}
	var s cqv1.Size
	switch c.opts.SizeUnit {
	case Bytes:
		s = cqv1.Size(bytesQuantity(v))
	case Megabytes:
		s = cqv1.Size(fmt.Sprintf("%dM", v))
	default:
		s = cqv1.Size(fmt.Sprintf("%dMi", v))
	}
	msg := fmt.Sprintf("%d became %s (the old operator's docs said MB, its code compared bytes)", v, s)
	if !c.warnedSizes {
		c.warnedSizes = true
		msg += "; --size-unit=Mi|M|bytes chooses how bare sizes are read"
	}
	c.res.warn(path, msg)
	return &s
}

// bytesQuantity writes n bytes in the largest binary unit that holds it exactly, else in
// kibibytes rounded up (validation rejects bare numbers).
func bytesQuantity(n int64) string {
	units := []string{"Ei", "Pi", "Ti", "Gi", "Mi", "Ki"}
	for i, u := range units {
		shift := uint(10 * (len(units) - i))
		if n != 0 && n%(1<<shift) == 0 {
			return fmt.Sprintf("%d%s", n>>shift, u)
		}
	}
	if n == 0 {
		return "0"
	}
	return fmt.Sprintf("%dKi", (n+1023)/1024)
}

// objectName makes a policy's name a valid object name.
func objectName(s string) string {
	s = strings.ToLower(s)
	var b strings.Builder
	for _, r := range s {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '.' {
			b.WriteRune(r)
		} else {
			b.WriteRune('-')
		}
	}
	out := strings.Trim(b.String(), "-.")
	if len(out) > validation.DNS1123SubdomainMaxLength {
		out = strings.Trim(out[:validation.DNS1123SubdomainMaxLength], "-.")
	}
	return out
}
