package archive_test

import (
	"bytes"
	"errors"
	"regexp"
	"testing"
	"time"

	"github.com/checkpoint-quota/checkpoint-quota/internal/archive"
)

// fuzzLimits are small, so that small inputs reach the caps.
var fuzzLimits = archive.Limits{MaxMetadataSize: 16 << 10, MaxEntries: 1000}

var knownReasons = map[archive.Reason]bool{
	archive.ReasonNotRegular: true, archive.ReasonNotTar: true, archive.ReasonTruncated: true,
	archive.ReasonNoIdentity: true, archive.ReasonMetadataTooLarge: true, archive.ReasonBadMetadata: true,
	archive.ReasonIO: true, archive.ReasonUnexpectedEntry: true, archive.ReasonIdentityMismatch: true,
}

// FuzzReadFrom reads any bytes as an archive under any name. The seeds in
// testdata/fuzz/FuzzReadFrom are the runtimes' layouts and the broken and hostile
// variants (go run ./hack/fuzzseeds writes them).
func FuzzReadFrom(f *testing.F) {
	f.Add([]byte{}, "checkpoint-p_ns-c-2026-11-24T10:30:00Z.tar")
	f.Add([]byte("not a tar"), "checkpoint-p_ns-c-2026-11-24T10:30:00Z.tar")
	modTime := time.Date(2026, 11, 24, 10, 30, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, data []byte, name string) {
		res, err := archive.ReadFrom(bytes.NewReader(data), int64(len(data)), name, modTime, fuzzLimits)
		id := res.Identity
		if err == nil && !id.Complete() {
			t.Fatalf("no error, but the identity is incomplete: %+v", id)
		}
		if id.Namespace != "" && (!id.Complete() || !archive.NameMatches(id, name)) {
			t.Fatalf("namespace %q returned for an identity the file name %q does not witness: %+v (error %v)", id.Namespace, name, id, err)
		}
		if id.Namespace == "" && (id.Pod != "" || id.Container != "" || id.PodUID != "") {
			t.Fatalf("a pod or container without a namespace: %+v", id)
		}
		if err != nil {
			var ae *archive.Error
			if !errors.As(err, &ae) || !knownReasons[ae.Reason] {
				t.Fatalf("error %v is not an *archive.Error with a known reason", err)
			}
		}
		if id.TimeSource == "" || id.CheckpointTime.IsZero() && id.TimeSource != archive.TimeFromArchive {
			t.Fatalf("no checkpoint time: %+v", id)
		}
	})
}

// dnsLabel is the alphabet the kubelet's names come from (a pod name may also hold dots).
var dnsLabel = regexp.MustCompile(`^[a-z0-9]([-a-z0-9.]{0,61}[a-z0-9])?$`)

// FuzzFileName parses any name, and builds the kubelet's name from any identity and time
// and parses it back.
func FuzzFileName(f *testing.F) {
	f.Add("checkpoint-cache-0_shop-redis-2026-11-24T10:30:00Z.tar", "cache-0", "shop", "redis", int64(1795516200))
	f.Add("checkpoint-web-7d9f_team-prod-nginx-2026-01-02T03:04:05+01:00.tar.keep", "web-7d9f", "team-prod", "nginx", int64(0))
	f.Add("checkpoint-p_ns-c-2026-11-24T10:30:00.5Z.tar", "a.b", "x-y", "z-1", int64(-1))
	f.Fuzz(func(t *testing.T, name, pod, namespace, container string, unix int64) {
		archiveName := archive.IsArchiveName(name)
		when, ok := archive.TimeFromName(name)
		if ok && !archiveName {
			t.Fatalf("TimeFromName(%q) = %v, but IsArchiveName says no", name, when)
		}
		if base, ok := archive.IsKeepMarkerName(name); ok && (!archive.IsArchiveName(base) || base+archive.KeepSuffix != name) {
			t.Fatalf("IsKeepMarkerName(%q) = %q", name, base)
		}
		if archiveName {
			if base, ok := archive.IsKeepMarkerName(name + archive.KeepSuffix); !ok || base != name {
				t.Fatalf("the marker of %q is not recognised", name)
			}
		}

		if !dnsLabel.MatchString(pod) || !dnsLabel.MatchString(namespace) || !dnsLabel.MatchString(container) {
			return
		}
		// Any second from year 1 to 9999, in a zone with a whole-minute offset.
		const span = 253402300799 + 62135596800
		sec := (unix%span+span)%span - 62135596800
		zone := time.FixedZone("", int((unix/span)%(14*60))*60)
		at := time.Unix(sec, 0).In(zone)
		built := archive.KubeletFileName(pod, namespace, container, at)
		id := archive.Identity{Namespace: namespace, Pod: pod, Container: container}
		if !archive.NameMatches(id, built) {
			t.Fatalf("NameMatches(%+v, %q) = false", id, built)
		}
		got, ok := archive.TimeFromName(built)
		if !ok || !got.Equal(at) || !archive.IsArchiveName(built) {
			t.Fatalf("TimeFromName(%q) = %v, %v; want %v (IsArchiveName %v)", built, got, ok, at, archive.IsArchiveName(built))
		}
	})
}
