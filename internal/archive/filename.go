package archive

import (
	"regexp"
	"strings"
	"time"
)

// KeepSuffix is appended to an archive's file name to form its .keep marker, which pins it.
const KeepSuffix = ".keep"

// kubeletName matches the kubelet's archive names,
// checkpoint-<pod>_<namespace>-<container>-<RFC3339 time>.tar. The pod, namespace and
// container parts are ambiguous (each may contain '-'), so only the time is taken from it.
var kubeletName = regexp.MustCompile(`^checkpoint-.+_.+-.+-(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2}))\.tar$`)

// IsArchiveName reports whether name (a base name, not a path) is a kubelet checkpoint archive's name.
func IsArchiveName(name string) bool {
	return !strings.ContainsRune(name, '/') && kubeletName.MatchString(name)
}

// IsKeepMarkerName reports whether name is the .keep marker of an archive, and returns the archive's name.
func IsKeepMarkerName(name string) (string, bool) {
	archive, ok := strings.CutSuffix(name, KeepSuffix)
	return archive, ok && IsArchiveName(archive)
}

// TimeFromName returns the checkpoint time written in a kubelet archive's name; false for
// any name that IsArchiveName rejects.
func TimeFromName(name string) (time.Time, bool) {
	if strings.ContainsRune(name, '/') {
		return time.Time{}, false
	}
	m := kubeletName.FindStringSubmatch(name)
	if m == nil {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, m[1])
	if err != nil {
		return time.Time{}, false
	}
	return t, true
}
