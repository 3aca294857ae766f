package nodeagent

import (
	"crypto/sha256"
	"encoding/hex"
	"path/filepath"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// fileKey names one archive: a checkpoint directory and a file name in it.
type fileKey struct {
	Dir, Name string
}

func (k fileKey) Path() string { return filepath.Join(k.Dir, k.Name) }

func (k fileKey) String() string { return k.Path() }

// keyFromPath splits an absolute path into its directory and file name.
func keyFromPath(path string) fileKey {
	return fileKey{Dir: filepath.Dir(path), Name: filepath.Base(path)}
}

const hashLen = 10

// ObjectName is the name of the Checkpoint of the archive dir/file on node: readable
// (the file name without its prefix and suffix, then the node), a valid DNS subdomain,
// and unique thanks to a hash of all three, since lower-casing and shortening lose detail.
func ObjectName(node, dir, file string) string {
	sum := sha256.Sum256([]byte(node + "\x00" + dir + "\x00" + file))
	suffix := "-" + hex.EncodeToString(sum[:])[:hashLen]
	stem := strings.TrimSuffix(strings.TrimPrefix(file, "checkpoint-"), ".tar")
	readable := sanitize(stem + "-" + node)
	if limit := validation.DNS1123SubdomainMaxLength - len(suffix); len(readable) > limit {
		readable = strings.TrimRight(readable[:limit], "-")
	}
	if readable == "" {
		readable = "checkpoint"
	}
	return readable + suffix
}

// sanitize lower-cases s and turns every run of characters other than [a-z0-9] into one '-'.
func sanitize(s string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(s) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
			dash = false
		} else if !dash && b.Len() > 0 {
			b.WriteByte('-')
			dash = true
		}
	}
	return strings.TrimRight(b.String(), "-")
}

// labelValue returns s when it is a valid label value, else a shortened form with a hash,
// so that a long pod or node name still gets a label (status holds the full name).
func labelValue(s string) string {
	if len(validation.IsValidLabelValue(s)) == 0 {
		return s
	}
	sum := sha256.Sum256([]byte(s))
	suffix := "-" + hex.EncodeToString(sum[:])[:hashLen]
	v := sanitize(s)
	if limit := validation.LabelValueMaxLength - len(suffix); len(v) > limit {
		v = strings.TrimRight(v[:limit], "-")
	}
	return v + suffix
}
