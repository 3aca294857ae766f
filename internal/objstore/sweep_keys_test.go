package objstore_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/types"

	"github.com/checkpoint-quota/checkpoint-quota/internal/objstore"
)

// ArchiveOfKey reads back what Key wrote, and nothing else: the bucket sweep deletes only
// what it reads.
func TestArchiveOfKeyReadsOnlyWhatKeyWrites(t *testing.T) {
	type got struct {
		NS  string
		UID types.UID
		OK  bool
	}
	cases := map[string]struct {
		prefix, key string
		want        got
	}{
		"a key Key made":                {"clusters/prod", objstore.Key("clusters/prod", "shop", "web-0", "app", "0d5c"), got{"shop", "0d5c", true}},
		"without a prefix":              {"", objstore.Key("", "shop", "web-0", "app", "0d5c"), got{"shop", "0d5c", true}},
		"a prefix written with a slash": {"rl/", objstore.Key("rl/", "shop", "web-0", "app", "0d5c"), got{"shop", "0d5c", true}},
		"under another prefix":          {"rl", objstore.Key("other", "shop", "web-0", "app", "0d5c"), got{}},
		"a store check's object":        {"rl", objstore.Key("rl", ".checks", "node-a", "", "1733590000"), got{}},
		"one level too deep":            {"rl", "rl/shop/web-0/app/extra/0d5c.tar", got{}},
		"one level short":               {"rl", "rl/shop/web-0/0d5c.tar", got{}},
		"not a .tar":                    {"rl", "rl/shop/web-0/app/0d5c.json", got{}},
		"no UID":                        {"rl", "rl/shop/web-0/app/.tar", got{}},
		"a dot-dot segment":             {"rl", "rl/../web-0/app/0d5c.tar", got{}},
		"the prefix as a name's start":  {"rl", "rlx/shop/web-0/app/0d5c.tar", got{}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			ns, uid, ok := objstore.ArchiveOfKey(tc.prefix, tc.key)
			if diff := cmp.Diff(tc.want, got{ns, uid, ok}); diff != "" {
				t.Errorf("ArchiveOfKey(%q, %q) (-want +got):\n%s", tc.prefix, tc.key, diff)
			}
		})
	}
}
