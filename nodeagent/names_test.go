package nodeagent

import (
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/checkpoint-quota/checkpoint-quota/internal/archive"
)

func TestObjectName(t *testing.T) {
	long := strings.Repeat("a-very-long-pod-name", 12)
	tests := map[string]struct {
		node, dir, file string
		wantPrefix      string
	}{
		"kubelet name": {
			node: "worker-1", dir: "/var/lib/kubelet/checkpoints", file: "checkpoint-cache-0_shop-redis-2026-11-24T10:30:00Z.tar",
			wantPrefix: "cache-0-shop-redis-2026-11-24t10-30-00z-worker-1-",
		},
		"offset time": {
			node: "Worker.EXAMPLE.com", dir: "/ckpt", file: "checkpoint-p_ns-c-2026-11-24T11:30:00+01:00.tar",
			wantPrefix: "p-ns-c-2026-11-24t11-30-00-01-00-worker-example-com-",
		},
		"pod name of 240 characters": {
			node: "worker-1", dir: "/ckpt", file: "checkpoint-" + long + "_shop-redis-2026-11-24T10:30:00Z.tar",
			wantPrefix: "a-very-long-pod-name",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := ObjectName(tc.node, tc.dir, tc.file)
			if errs := validation.IsDNS1123Subdomain(got); len(errs) > 0 {
				t.Errorf("ObjectName = %q, not a valid object name: %v", got, errs)
			}
			if !strings.HasPrefix(got, tc.wantPrefix) {
				t.Errorf("ObjectName = %q, want the prefix %q", got, tc.wantPrefix)
			}
			if again := ObjectName(tc.node, tc.dir, tc.file); again != got {
				t.Errorf("ObjectName is not deterministic: %q then %q", got, again)
			}
			if other := ObjectName(tc.node+"x", tc.dir, tc.file); other == got {
				t.Errorf("two nodes share the name %q", got)
			}
			if other := ObjectName(tc.node, tc.dir+"2", tc.file); other == got {
				t.Errorf("two directories share the name %q", got)
			}
		})
	}
}

func TestLabelValue(t *testing.T) {
	tests := map[string]struct {
		in        string
		wantSame  bool
		wantValid bool
	}{
		"short":            {in: "cache-0", wantSame: true, wantValid: true},
		"253 characters":   {in: strings.Repeat("p", 253), wantValid: true},
		"ends with a dot":  {in: "node.", wantValid: true},
		"dotted node name": {in: "ip-10-0-0-1.ec2.internal", wantSame: true, wantValid: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := labelValue(tc.in)
			if valid := len(validation.IsValidLabelValue(got)) == 0; valid != tc.wantValid {
				t.Errorf("labelValue(%q) = %q, valid %v, want %v", tc.in, got, valid, tc.wantValid)
			}
			if (got == tc.in) != tc.wantSame {
				t.Errorf("labelValue(%q) = %q, want unchanged: %v", tc.in, got, tc.wantSame)
			}
		})
	}
}

func TestSettle(t *testing.T) {
	start := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	const settle = 2 * time.Second
	v := func(size int64, mtime time.Time) archive.Version {
		return archive.Version{Size: size, ModTime: mtime.UnixNano()}
	}
	type step struct {
		at   time.Duration
		v    archive.Version
		want time.Duration
	}
	tests := map[string][]step{
		"old archive found at start": {
			{at: 0, v: v(100, start.Add(-time.Hour)), want: 0},
		},
		"growing archive waits until it stops": {
			{at: 0, v: v(100, start), want: settle},
			{at: time.Second, v: v(200, start.Add(time.Second)), want: settle},
			{at: 2 * time.Second, v: v(300, start.Add(2*time.Second)), want: settle},
			{at: 3 * time.Second, v: v(300, start.Add(2*time.Second)), want: time.Second},
			{at: 4 * time.Second, v: v(300, start.Add(2*time.Second)), want: 0},
		},
		"modification time in the future settles by observation": {
			{at: 0, v: v(100, start.Add(time.Hour)), want: settle},
			{at: time.Second, v: v(100, start.Add(time.Hour)), want: time.Second},
			{at: 2 * time.Second, v: v(100, start.Add(time.Hour)), want: 0},
		},
	}
	for name, steps := range tests {
		t.Run(name, func(t *testing.T) {
			s := newNodeState()
			k := fileKey{Dir: "/ckpt", Name: "a.tar"}
			for i, st := range steps {
				if got := s.settle(k, st.v, start.Add(st.at), settle); got != st.want {
					t.Errorf("step %d at +%v: wait %v, want %v", i, st.at, got, st.want)
				}
			}
		})
	}
}
