package quota

import (
	"cmp"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/checkpoint-quota/checkpoint-quota/internal/policy"
)

// Older orders archives oldest first: copies of stored archives first (removing one loses
// nothing), then by checkpoint time, then namespace and name so that the order is stable.
func Older(a, b *Archive) bool { return Compare(a, b) < 0 }

// Compare is Older as a three-way comparison for slices.SortFunc: negative when a is
// older than b, positive when newer, 0 only for the same namespace and name.
func Compare(a, b *Archive) int {
	if a.Copy != b.Copy {
		return compareCopies(a)
	}
	if c := compareTimes(a.CheckpointTime, b.CheckpointTime); c != 0 {
		return c
	}
	if c := strings.Compare(a.Namespace, b.Namespace); c != 0 {
		return c
	}
	return strings.Compare(a.Name, b.Name)
}

// timeKey is an archive's checkpoint time as Compare orders it, in a form cheap to compare
// when sorting many archives: an unknown time after every known one.
type timeKey struct {
	sec  int64
	nsec int32
}

func timeKeyOf(t time.Time) timeKey {
	if t.IsZero() {
		return timeKey{sec: math.MaxInt64}
	}
	return timeKey{sec: t.Unix(), nsec: int32(t.Nanosecond())}
}

// compareKeyed is Compare on archives whose time keys are given.
func compareKeyed(a, b *Archive, ka, kb timeKey) int {
	if a.Copy != b.Copy {
		return compareCopies(a)
	}
	if c := cmp.Compare(ka.sec, kb.sec); c != 0 {
		return c
	}
	if c := cmp.Compare(ka.nsec, kb.nsec); c != 0 {
		return c
	}
	if c := strings.Compare(a.Namespace, b.Namespace); c != 0 {
		return c
	}
	return strings.Compare(a.Name, b.Name)
}

// compareCopies orders a copy before an archive that is not one, for a and b of which one
// only is a copy.
func compareCopies(a *Archive) int {
	if a.Copy {
		return -1
	}
	return 1
}

// compareTimes orders two times; an unknown (zero) time sorts after a known one, so that
// an archive of unknown age is not taken for the oldest.
func compareTimes(a, b time.Time) int {
	switch az, bz := a.IsZero(), b.IsZero(); {
	case az && bz:
		return 0
	case az:
		return 1
	case bz:
		return -1
	}
	return a.Compare(b)
}

// Bytes writes a size for people, in binary units with at most one decimal: "1.4Gi", "10Gi", "512".
func Bytes(n int64) string {
	units := []string{"Ki", "Mi", "Gi", "Ti", "Pi", "Ei"}
	if n < 1024 && n > -1024 {
		return strconv.FormatInt(n, 10)
	}
	v, u := float64(n), ""
	for _, unit := range units {
		if v < 1024 && v > -1024 {
			break
		}
		v, u = v/1024, unit
	}
	s := strconv.FormatFloat(v, 'f', 1, 64)
	return strings.TrimSuffix(s, ".0") + u
}

func format(n int64, r policy.Resource) string {
	if r == policy.ResourceStorage {
		return Bytes(n)
	}
	return fmt.Sprint(n)
}
