package memlimit

import (
	"math"
	"runtime/debug"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestSet(t *testing.T) {
	cases := map[string]struct {
		limit, env string
		want       int64
		wantErr    bool
	}{
		"a size":                   {limit: "600Mi", want: 600 << 20},
		"0 sets none":              {limit: "0", want: 0},
		"GOMEMLIMIT wins":          {limit: "600Mi", env: "300MiB", want: 300 << 20},
		"a size in the wrong unit": {limit: "2GB", wantErr: true},
		"a negative size":          {limit: "-1Mi", wantErr: true},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))
			debug.SetMemoryLimit(math.MaxInt64)
			if tc.env != "" {
				t.Setenv("GOMEMLIMIT", tc.env)
				debug.SetMemoryLimit(300 << 20) // what the runtime read from it at start
			}
			got, err := Set(tc.limit)
			if (err != nil) != tc.wantErr {
				t.Fatalf("Set(%q) error = %v, want error %v", tc.limit, err, tc.wantErr)
			}
			if tc.wantErr {
				return
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("limit in force (-want +got):\n%s", diff)
			}
			if inForce := debug.SetMemoryLimit(-1); tc.want > 0 && inForce != tc.want {
				t.Errorf("the runtime's limit is %d, want %d", inForce, tc.want)
			}
		})
	}
}
