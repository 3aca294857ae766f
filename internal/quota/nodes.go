package quota

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/checkpoint-quota/checkpoint-quota/internal/policy"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Keys of the node rules, as quotas write them and as pruning reasons name them.
const (
	KeyNodeCheckpoints = "perNode.checkpoints"
	KeyNodeStorage     = "perNode.storage"
	KeyNodeMinFree     = "nodeFilesystem.minFree"
)

// NodeLimit is a per-node limit that one cluster quota sets.
type NodeLimit struct {
	Quota int
	Value int64
}

// Floor is a free-space floor that one cluster quota sets: Bytes, or Percent of each filesystem.
type Floor struct {
	Quota   int
	Bytes   int64
	Percent int64
	// IsPercent says which of the two the quota set.
	IsPercent bool
}

// required is the free bytes the floor asks of a filesystem of capacity bytes.
func (f Floor) required(capacity int64) int64 {
	if f.IsPercent {
		return (capacity*f.Percent + 99) / 100
	}
	return f.Bytes
}

// Filesystem is one checkpoint filesystem of a node, as its agent last measured it.
type Filesystem struct {
	Dirs []string
	// Capacity and Free are statfs's; ArchiveBytes the archives in Dirs at that moment, of
	// which UnattributedBytes have no Checkpoint.
	Capacity, Free, ArchiveBytes, UnattributedBytes int64
}

// NodeReport is what a node's agent last published.
type NodeReport struct {
	// Unattributed counts the archives without a Checkpoint: they count, nothing prunes them.
	UnattributedArchives, UnattributedBytes int64
	Filesystems                             []Filesystem
}

// NodeInput is the world of the node rules.
type NodeInput struct {
	// Archives are every archive, as Merge gives them: read only. Dirs gives the directory of each.
	Archives []*Archive
	Dirs     []string
	// Nodes holds the reports by node name; a node without one has no floor enforced.
	Nodes map[string]NodeReport
	// Quotas names the quotas, to break ties between equal limits.
	Quotas               []Meta
	Checkpoints, Storage []NodeLimit
	Floors               []Floor
}

// NodeBlock is a node rule that pruning cannot bring back, and why.
type NodeBlock struct {
	Quota int
	Rule  string
	Node  string
	// Missing is how far the node stays over: archives for perNode.checkpoints, bytes otherwise.
	Missing int64
	// Pinned, Unreadable and Unattributed count what is left that pruning may not touch,
	// with their bytes; OtherBytes is the space used by files that are not archives.
	Pinned, Unreadable, Unattributed                int64
	PinnedBytes, UnreadableBytes, UnattributedBytes int64
	OtherBytes                                      int64
}

// NodeUsage is one node against the rules in force.
type NodeUsage struct {
	Node               string
	Checkpoints, Bytes int64
	// Free is the estimated free space of the node's fullest filesystem, MinFree the floor
	// there; HasFree says whether the node reported its filesystems.
	Free, MinFree int64
	HasFree       bool
	// Fill is the largest of used/hard and, for the floor, minFree/free.
	Fill float64
}

// NodeOutcome is what the node rules prune and report.
type NodeOutcome struct {
	// Prune lists what the active quotas' node rules delete, on top of what was marked already.
	Prune   []Prune
	Blocked []NodeBlock
	// Nodes are the nodes nearest their rules, at most MaxScopes.
	Nodes []NodeUsage
	// Checkpoints, Storage and Floors index the rules in force (-1: none).
	Checkpoints, Storage int
	// FloorWins counts, by rule index, the filesystems where each floor is the strictest.
	FloorWins map[int]int
}

// StrictestLimit is the index of the smallest limit among the active quotas' (ties: the
// quota whose name sorts first), -1 when none is active.
func StrictestLimit(limits []NodeLimit, quotas []Meta, active []bool) int {
	best := -1
	for i, l := range limits {
		if !active[l.Quota] {
			continue
		}
		if best < 0 || l.Value < limits[best].Value ||
			(l.Value == limits[best].Value && quotas[l.Quota].Name < quotas[limits[best].Quota].Name) {
			best = i
		}
	}
	return best
}

// ComputeNodes applies the node rules of the active quotas: on each node, oldest first
// whatever the namespace, it marks unpinned readable archives that marked does not already
// prune, until the node's count and bytes are within the strictest per-node limits and
// each filesystem has the largest floor free.
//
// Free space is estimated, not taken as reported: the agent's report lags, so the space
// that other files use (capacity - free - archives, at the report) is taken as it was, and
// the archives as the Checkpoints show them now. An archive pruned since the report then
// counts as freed, and one still being written as free space, never the other way round:
// an error leaves an archive rather than pruning one too many.
func ComputeNodes(in NodeInput, marked []bool, active []bool) NodeOutcome {
	out := NodeOutcome{FloorWins: map[int]int{}}
	out.Checkpoints = StrictestLimit(in.Checkpoints, in.Quotas, active)
	out.Storage = StrictestLimit(in.Storage, in.Quotas, active)
	marks := slices.Clone(marked)
	// An archive being deleted is on its way out, as one pruned now: freeing it again
	// would prune another archive in its place.
	for i := range in.Archives {
		marks[i] = marks[i] || in.Archives[i].Deleting
	}
	byNode := map[string][]int{}
	for i := range in.Archives {
		byNode[in.Archives[i].Node] = append(byNode[in.Archives[i].Node], i)
	}
	for name := range in.Nodes {
		if _, ok := byNode[name]; !ok {
			byNode[name] = nil
		}
	}
	names := make([]string, 0, len(byNode))
	for n := range byNode {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, node := range names {
		members := byNode[node]
		n := nodeRun{in: &in, node: node, members: members, marks: marks, report: in.Nodes[node], out: &out}
		n.usage()
		if out.Checkpoints >= 0 {
			n.limit(KeyNodeCheckpoints, in.Checkpoints[out.Checkpoints], policy.ResourceCheckpoints)
		}
		if out.Storage >= 0 {
			n.limit(KeyNodeStorage, in.Storage[out.Storage], policy.ResourceStorage)
		}
		if _, reported := in.Nodes[node]; reported {
			n.floors(active)
		}
	}
	slices.SortStableFunc(out.Nodes, func(a, b NodeUsage) int {
		switch {
		case a.Fill > b.Fill:
			return -1
		case a.Fill < b.Fill:
			return 1
		}
		return 0
	})
	if len(out.Nodes) > MaxScopes {
		out.Nodes = out.Nodes[:MaxScopes]
	}
	return out
}

// nodeRun applies the rules to one node.
type nodeRun struct {
	in   *NodeInput
	node string
	// members are the node's archives, sorted oldest first (by ordered) only when a rule
	// prunes: most nodes are within their rules, and sorting every node's archives on every
	// pass would cost more than the rest.
	members []int
	sorted  bool
	marks   []bool
	report  NodeReport
	out     *NodeOutcome
	use     *NodeUsage
}

func (n *nodeRun) scope() string { return "node " + n.node }

// ordered returns the node's archives oldest first.
func (n *nodeRun) ordered() []int {
	if !n.sorted {
		slices.SortFunc(n.members, func(x, y int) int { return Compare(n.in.Archives[x], n.in.Archives[y]) })
		n.sorted = true
	}
	return n.members
}

// left is the count and bytes of the node's archives that are not marked, the unattributed included.
func (n *nodeRun) left(dirs []string) (count, bytes int64) {
	for _, i := range n.members {
		if !n.marks[i] && (dirs == nil || slices.Contains(dirs, n.in.Dirs[i])) {
			count++
			bytes += n.in.Archives[i].Size
		}
	}
	return count, bytes
}

func (n *nodeRun) usage() {
	count, bytes := n.left(nil)
	u := NodeUsage{Node: n.node, Checkpoints: count + n.report.UnattributedArchives, Bytes: bytes + n.report.UnattributedBytes}
	fill := func(used, hard int64) {
		f := float64(used) / float64(max(hard, 1))
		if hard == 0 && used == 0 {
			f = 0
		}
		u.Fill = max(u.Fill, f)
	}
	if c := n.out.Checkpoints; c >= 0 {
		fill(u.Checkpoints, n.in.Checkpoints[c].Value)
	}
	if s := n.out.Storage; s >= 0 {
		fill(u.Bytes, n.in.Storage[s].Value)
	}
	n.out.Nodes = append(n.out.Nodes, u)
	n.use = &n.out.Nodes[len(n.out.Nodes)-1]
}

// limit prunes the node's oldest archives until the per-node limit holds.
func (n *nodeRun) limit(key string, l NodeLimit, r policy.Resource) {
	count, bytes := n.left(nil)
	used := count + n.report.UnattributedArchives
	if r == policy.ResourceStorage {
		used = bytes + n.report.UnattributedBytes
	}
	if used <= l.Value {
		return
	}
	reason := fmt.Sprintf("%s %s/%s", key, format(used, r), format(l.Value, r))
	for _, i := range n.ordered() {
		if used <= l.Value {
			return
		}
		if a := n.in.Archives[i]; !n.marks[i] && prunable(a) {
			n.mark(i, l.Quota, key, reason)
			used -= amount(a, r)
		}
	}
	if used > l.Value {
		n.block(l.Quota, key, used-l.Value, nil, 0)
	}
}

// floors prunes, on each filesystem, the oldest archives until the bytes freed cover the
// deficit under the strictest floor.
func (n *nodeRun) floors(active []bool) {
	first := true
	for _, fs := range n.report.Filesystems {
		_, bytes := n.left(fs.Dirs)
		now := bytes + fs.UnattributedBytes
		free := min(max(fs.Free+fs.ArchiveBytes-now, 0), fs.Capacity)
		best, need := -1, int64(0)
		for i, f := range n.in.Floors {
			if active[f.Quota] {
				if r := f.required(fs.Capacity); best < 0 || r > need {
					best, need = i, r
				}
			}
		}
		if first || free*max(n.use.MinFree, 1) < n.use.Free*max(need, 1) {
			n.use.Free, n.use.MinFree, n.use.HasFree = free, max(need, 0), true
			first = false
		}
		if best < 0 {
			continue
		}
		n.out.FloorWins[best]++
		if need > 0 {
			n.use.Fill = max(n.use.Fill, float64(need)/float64(max(free, 1)))
		}
		deficit := need - free
		if deficit <= 0 {
			continue
		}
		f := n.in.Floors[best]
		reason := fmt.Sprintf("%s %s free, %s wanted", KeyNodeMinFree, Bytes(free), Bytes(need))
		for _, i := range n.ordered() {
			if deficit <= 0 {
				break
			}
			if a := n.in.Archives[i]; !n.marks[i] && prunable(a) && slices.Contains(fs.Dirs, n.in.Dirs[i]) {
				n.mark(i, f.Quota, KeyNodeMinFree, reason)
				deficit -= a.Size
			}
		}
		if deficit > 0 {
			n.block(f.Quota, KeyNodeMinFree, deficit, fs.Dirs, max(fs.Capacity-fs.Free-fs.ArchiveBytes, 0))
			n.out.Blocked[len(n.out.Blocked)-1].UnattributedBytes = fs.UnattributedBytes
		}
	}
}

func (n *nodeRun) mark(i, quota int, key, reason string) {
	n.marks[i] = true
	n.out.Prune = append(n.out.Prune, Prune{Archive: i, Quota: quota, Rule: key, Scope: n.scope(), Reason: reason})
}

// block records a rule that the archives left cannot satisfy, and what they are.
func (n *nodeRun) block(quota int, key string, missing int64, dirs []string, other int64) {
	b := NodeBlock{Quota: quota, Rule: key, Node: n.node, Missing: missing, OtherBytes: other,
		Unattributed: n.report.UnattributedArchives, UnattributedBytes: n.report.UnattributedBytes}
	for _, i := range n.members {
		a := n.in.Archives[i]
		if n.marks[i] || (dirs != nil && !slices.Contains(dirs, n.in.Dirs[i])) {
			continue
		}
		switch {
		case a.Unreadable:
			b.Unreadable++
			b.UnreadableBytes += a.Size
		case a.Pinned:
			b.Pinned++
			b.PinnedBytes += a.Size
		}
	}
	n.out.Blocked = append(n.out.Blocked, b)
}

// ParseMinFree reads a floor: a percentage from 0% to 100%, or a quantity of bytes. A bare
// number is neither and does not parse.
func ParseMinFree(v intstr.IntOrString) (Floor, bool) {
	if v.Type != intstr.String {
		return Floor{}, false
	}
	if p, ok := strings.CutSuffix(v.StrVal, "%"); ok {
		n, err := strconv.ParseInt(p, 10, 64)
		if err != nil || n < 0 || n > 100 {
			return Floor{}, false
		}
		return Floor{Percent: n, IsPercent: true}, true
	}
	q, err := resource.ParseQuantity(v.StrVal)
	if err != nil || q.Sign() < 0 {
		return Floor{}, false
	}
	return Floor{Bytes: q.Value()}, true
}
