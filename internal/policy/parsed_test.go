package policy

import (
	"testing"

	"k8s.io/apimachinery/pkg/types"

	"github.com/checkpoint-quota/checkpoint-quota/test/builder"
)

// TestParsedParsesOncePerGeneration checks that readers of a quota share the policy parsed
// for its UID and generation, that a new generation is parsed again, and that a deleted
// quota's policy goes.
func TestParsedParsesOncePerGeneration(t *testing.T) {
	cq := builder.Quota("q", "shop").PerPod(3, "").Obj()
	cq.UID, cq.Generation = "uid-q", 1
	p := NewParsed()
	parses := 0
	parse := func() (*Quota, error) { parses++; return FromCheckpointQuota(cq) }
	first, _ := p.Quota(cq, parse)
	second, _ := p.Quota(cq.DeepCopy(), parse)
	if first != second || parses != 1 {
		t.Fatalf("two reads of one generation: %d parses, the same policy %v; want 1 and true", parses, first == second)
	}
	cq.Generation = 2
	if third, _ := p.Quota(cq, parse); third == first || parses != 2 {
		t.Errorf("a new generation was not parsed again (%d parses)", parses)
	}
	p.Forget(cq.UID)
	if p.Len() != 0 {
		t.Errorf("%d policies kept after Forget, want 0", p.Len())
	}
	_, _ = p.Quota(cq, parse)
	p.Keep(func(types.UID) bool { return false })
	if p.Len() != 0 {
		t.Errorf("%d policies kept after Keep of none, want 0", p.Len())
	}
	var none *Parsed
	if _, err := none.Quota(cq, parse); err != nil || parses != 4 {
		t.Errorf("a nil Parsed: %v, %d parses; want it to parse", err, parses)
	}
}
