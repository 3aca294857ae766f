package controllers_test

import (
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

// quietWrites waits until no Checkpoint write has arrived for a second (the last status
// writes of a phase trail its visible end) and returns the counts then.
func quietWrites(b testing.TB, cfg *rest.Config) map[string]float64 {
	last := checkpointWrites(b, cfg)
	for range 60 {
		time.Sleep(time.Second)
		now := checkpointWrites(b, cfg)
		if total, _ := testenv.Between(last, now); total == 0 {
			return now
		}
		last = now
	}
	return last
}

// benchLists counts the LISTs of Checkpoints the benchmarks send themselves while they wait,
// which testenv.RequestsPer takes out of the apiserver's count.
var benchLists atomic.Int64
