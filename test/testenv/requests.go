package testenv

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// AnyResource asks APIRequests for the requests on every resource of every group, keyed
// "resource VERB".
const AnyResource = "*"

var labelRE = regexp.MustCompile(`(\w+)="([^"]*)"`)

// APIRequests reads, from the kube-apiserver's own apiserver_request_total, how many
// requests of the given verbs (nil: every verb) it has served on resource of our group
// (checkpointquota.dev), keyed by verb and subresource ("POST", "PATCH/status"), or on every
// resource (AnyResource), keyed "resource VERB". It is the apiserver's count, not ours, so
// nothing a component sends escapes it.
func APIRequests(tb testing.TB, cfg *rest.Config, resource string, verbs map[string]bool) map[string]float64 {
	tb.Helper()
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	raw, err := cs.RESTClient().Get().AbsPath("/metrics").DoRaw(context.Background())
	if err != nil {
		tb.Fatalf("scraping the kube-apiserver's /metrics: %v", err)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "apiserver_request_total{") {
			continue
		}
		end := strings.LastIndexByte(line, '}')
		labels := map[string]string{}
		for _, m := range labelRE.FindAllStringSubmatch(line[:end], -1) {
			labels[m[1]] = m[2]
		}
		if (verbs != nil && !verbs[labels["verb"]]) || labels["resource"] == "" || (resource != AnyResource &&
			(labels["group"] != "checkpointquota.dev" || labels["resource"] != resource)) {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(line[end+1:]), 64)
		if err != nil {
			continue
		}
		key := labels["verb"]
		if labels["subresource"] != "" {
			key += "/" + labels["subresource"]
		}
		if resource == AnyResource {
			key = labels["resource"] + " " + key
		}
		out[key] += v
	}
	return out
}

// Between is the number of requests between two readings of APIRequests, in all and by key.
func Between(before, after map[string]float64) (float64, map[string]float64) {
	total, by := 0.0, map[string]float64{}
	for k, v := range after {
		if d := v - before[k]; d > 0 {
			by[k] = d
			total += d
		}
	}
	return total, by
}

// readVerbs are the verbs of apiserver_request_total that read.
var readVerbs = map[string]bool{"GET": true, "LIST": true, "WATCH": true}

// RequestsPer logs the requests between two readings of APIRequests on AnyResource, by
// resource and verb, most first, per archive, without the benchmark's own LISTs of
// Checkpoints (ownLists), and returns all of them and the reads among them, per archive.
func RequestsPer(tb testing.TB, phase string, before, after map[string]float64, ownLists int64, archives float64) (all, reads float64) {
	tb.Helper()
	_, by := Between(before, after)
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
	tb.Log(out.String())
	return all / archives, reads / archives
}
