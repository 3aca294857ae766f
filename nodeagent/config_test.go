package nodeagent

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestConfigDefaults(t *testing.T) {
	tests := map[string]struct {
		in        Config
		wantDirs  []string
		wantError string
	}{
		"defaults": {
			in:       Config{NodeName: "n"},
			wantDirs: []string{DefaultCheckpointDir},
		},
		"cleaned and deduplicated": {
			in:       Config{NodeName: "n", Dirs: []string{"/a/", "/a", "/b/../c"}},
			wantDirs: []string{"/a", "/c"},
		},
		"no node name": {
			in:        Config{},
			wantDirs:  []string{DefaultCheckpointDir},
			wantError: "node name is empty: set --node-name or the NODE_NAME environment variable (the downward API's spec.nodeName)",
		},
		"relative directory": {
			in:        Config{NodeName: "n", Dirs: []string{"checkpoints"}},
			wantDirs:  []string{},
			wantError: `checkpoint directory "checkpoints" is not an absolute path: give it as /var/lib/kubelet/checkpoints`,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := tc.in.withDefaults()
			gotError := ""
			if err != nil {
				gotError = err.Error()
			}
			if gotError != tc.wantError {
				t.Errorf("error = %q, want %q", gotError, tc.wantError)
			}
			if diff := cmp.Diff(tc.wantDirs, got.Dirs, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("Dirs (-want +got):\n%s", diff)
			}
			if got.SettleTime != 500*time.Millisecond || got.UnfinishedWait != time.Minute || got.RescanInterval != 5*time.Minute || got.Workers != DefaultWorkers || got.Clock == nil {
				t.Errorf("defaults not filled: %+v", got)
			}
		})
	}
}
