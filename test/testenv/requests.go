package testenv

import (
	"bufio"
	"bytes"
	"context"
	"regexp"
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
