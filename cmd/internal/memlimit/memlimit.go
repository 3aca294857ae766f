// Package memlimit sets the Go heap's soft limit from a binary's --memory-limit flag.
package memlimit

import (
	"fmt"
	"math"
	"os"
	"runtime/debug"

	automemlimit "github.com/KimMachineGun/automemlimit/memlimit"
	"k8s.io/apimachinery/pkg/api/resource"
)

// Auto is the --memory-limit that follows the container: 90% of its memory limit.
const Auto = "auto"

// autoRatio is the share of the container's memory limit that Auto gives the heap: the
// rest is for what the Go runtime does not count (stacks, the binary, the kernel's pages).
const autoRatio = 0.9

// Set makes limit the soft limit of the Go heap: a quantity such as 200Mi, 0 for none, or
// Auto for 90% of the memory limit of the process's cgroup (none outside a limited
// cgroup). The GOMEMLIMIT environment variable, when set, wins. Under the limit the
// garbage collector works harder instead of letting the heap grow to twice what is live,
// so a container is not killed for its garbage. It returns the limit in force, 0 for none.
func Set(limit string) (int64, error) {
	if _, set := os.LookupEnv("GOMEMLIMIT"); set {
		return debug.SetMemoryLimit(-1), nil
	}
	if limit == Auto {
		n, err := automemlimit.Set(automemlimit.WithRatio(autoRatio), automemlimit.WithProvider(automemlimit.FromCgroup))
		if err != nil || n == math.MaxInt64 {
			// No limited cgroup (or none to read: not Linux): nothing to follow.
			return 0, nil //nolint:nilerr // auto means a limit where the container has one
		}
		return n, nil
	}
	q, err := resource.ParseQuantity(limit)
	if err != nil || q.Sign() < 0 {
		return 0, fmt.Errorf("%q is not a size such as 80Mi or 1Gi, nor 0, nor %q", limit, Auto)
	}
	if q.Value() > 0 {
		debug.SetMemoryLimit(q.Value())
		return q.Value(), nil
	}
	return 0, nil
}
