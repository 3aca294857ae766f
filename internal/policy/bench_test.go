package policy

import (
	"fmt"
	"testing"

	"github.com/checkpoint-quota/checkpoint-quota/test/builder"
)

// BenchmarkResolve measures one Resolve per archive against 200 quotas: a cluster default,
// and in each of 50 namespaces an untargeted quota and three quotas naming pods or containers.
func BenchmarkResolve(b *testing.B) {
	quotas := []*Quota{}
	add := func(q *Quota, err error) {
		if err != nil {
			b.Fatal(err)
		}
		quotas = append(quotas, q)
	}
	add(FromClusterQuota(builder.ClusterQuota("default").PerNamespace(100, "50Gi").PerPod(20, "").Obj()))
	for i := range 50 {
		ns := fmt.Sprintf("ns-%d", i)
		add(FromCheckpointQuota(builder.Quota("ns", ns).Total(50, "10Gi").Obj()))
		add(FromCheckpointQuota(builder.Quota("cache", ns).PodNames("cache-0", "cache-1").PerPod(5, "").Obj()))
		add(FromCheckpointQuota(builder.Quota("redis", ns).PodSelector(map[string]string{"app": "redis"}).PerPod(8, "").Obj()))
		add(FromCheckpointQuota(builder.Quota("sidecar", ns).ContainerNames("sidecar").PerContainer(1, "").Obj()))
	}
	s := Subject{Namespace: "ns-7", Pod: "cache-0", PodLabels: map[string]string{"app": "redis"}, Container: "redis"}
	b.ReportAllocs()
	for b.Loop() {
		if res := Resolve(quotas, s); len(res.Governing) == 0 {
			b.Fatal("nothing governs the archive")
		}
	}
}
