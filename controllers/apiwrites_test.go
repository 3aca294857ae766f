package controllers_test

import (
	"fmt"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/client-go/rest"

	"github.com/checkpoint-quota/checkpoint-quota/test/testenv"
)

// writeVerbs are the verbs of apiserver_request_total that write.
var writeVerbs = map[string]bool{"POST": true, "CREATE": true, "PUT": true, "UPDATE": true, "PATCH": true, "APPLY": true, "DELETE": true, "DELETECOLLECTION": true}

// checkpointWrites reads, from the kube-apiserver's own apiserver_request_total, how many
// write requests on Checkpoints it has served, by verb and subresource ("POST", "PATCH/status").
// It is the apiserver's count, not ours, so nothing we send escapes it.
func checkpointWrites(b testing.TB, cfg *rest.Config) map[string]float64 {
	return apiWrites(b, cfg, "checkpoints")
}

// anyResource asks apiWrites for the writes of every resource, keyed "resource VERB".
const anyResource = testenv.AnyResource

// apiWrites is checkpointWrites for any resource of our group ("checkpointnodes"), or for
// every resource of every group (anyResource).
func apiWrites(b testing.TB, cfg *rest.Config, resource string) map[string]float64 {
	return apiRequests(b, cfg, resource, writeVerbs)
}

// checkpointGets is the number of GET requests on single Checkpoints the apiserver served.
func checkpointGets(b testing.TB, cfg *rest.Config) float64 {
	return apiRequests(b, cfg, "checkpoints", map[string]bool{"GET": true})["GET"]
}

// allRequests counts every request on a resource the apiserver served, reads included,
// keyed "resource VERB" ("namespaces GET", "checkpoints DELETE").
func allRequests(b testing.TB, cfg *rest.Config) map[string]float64 {
	return apiRequests(b, cfg, anyResource, nil)
}

// apiRequests counts the requests of the given verbs (nil: every verb), as apiWrites does.
func apiRequests(b testing.TB, cfg *rest.Config, resource string, verbs map[string]bool) map[string]float64 {
	return testenv.APIRequests(b, cfg, resource, verbs)
}

// writesBetween is the number of Checkpoint writes between two readings, in all and by kind.
func writesBetween(before, after map[string]float64) (float64, map[string]float64) {
	total, by := 0.0, map[string]float64{}
	for k, v := range after {
		if d := v - before[k]; d > 0 {
			by[k] = d
			total += d
		}
	}
	return total, by
}

// quietWrites waits until no Checkpoint write has arrived for a second (the last status
// writes of a phase trail its visible end) and returns the counts then.
func quietWrites(b testing.TB, cfg *rest.Config) map[string]float64 {
	last := checkpointWrites(b, cfg)
	for range 60 {
		time.Sleep(time.Second)
		now := checkpointWrites(b, cfg)
		if total, _ := writesBetween(last, now); total == 0 {
			return now
		}
		last = now
	}
	return last
}

// benchLists counts the LISTs of Checkpoints the benchmarks send themselves while they wait,
// which requestsPer takes out of the apiserver's count.
var benchLists atomic.Int64

// readVerbs are the verbs of apiserver_request_total that read.
var readVerbs = map[string]bool{"GET": true, "LIST": true, "WATCH": true}

// requestsPer logs the requests between two readings of allRequests, by resource and verb,
// most first, per archive, without the bench's own LISTs of Checkpoints (ownLists), and
// returns all of them and the reads among them, per archive.
func requestsPer(b testing.TB, phase string, before, after map[string]float64, ownLists int64, archives float64) (all, reads float64) {
	_, by := writesBetween(before, after)
	by["checkpoints LIST"] -= float64(ownLists)
	keys := make([]string, 0, len(by))
	for k, v := range by {
		if v <= 0 {
			continue
		}
		keys = append(keys, k)
		all += v
		if readVerbs[k[strings.LastIndexByte(k, ' ')+1:]] {
			reads += v
		}
	}
	sort.Slice(keys, func(i, j int) bool {
		return by[keys[i]] > by[keys[j]] || by[keys[i]] == by[keys[j]] && keys[i] < keys[j]
	})
	// Without go test -v, a benchmark's output stops after ten lines: run it with -v to read the table.
	var out strings.Builder
	fmt.Fprintf(&out, "apiserver requests %s (%.0f archives): %.0f, %.3f per archive, of which reads %.3f", phase, archives, all, all/archives, reads/archives)
	for _, k := range keys {
		fmt.Fprintf(&out, "\n  %-48s %8.0f  %.3f per archive", k, by[k], by[k]/archives)
	}
	b.Log(out.String())
	return all / archives, reads / archives
}
