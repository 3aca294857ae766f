package quota

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

func TestPodLabelsFrom(t *testing.T) {
	pod := func(uid string, labels map[string]string) *metav1.PartialObjectMetadata {
		return &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{UID: types.UID(uid), Labels: labels}}
	}
	pods := map[types.NamespacedName]*metav1.PartialObjectMetadata{
		{Namespace: "shop", Name: "cache-0"}:   pod("uid-1", map[string]string{"tier": "cache"}),
		{Namespace: "shop", Name: "bare"}:      pod("uid-2", nil),
		{Namespace: "shop", Name: "looked-up"}: nil, // a lookup that found no pod
	}
	labels := PodLabelsFrom(pods)
	tests := map[string]struct {
		archive Archive
		want    map[string]string
	}{
		"the pod, same UID":             {Archive{Namespace: "shop", Pod: "cache-0", PodUID: "uid-1"}, map[string]string{"tier": "cache"}},
		"no UID in the archive":         {Archive{Namespace: "shop", Pod: "cache-0"}, map[string]string{"tier": "cache"}},
		"a pod re-created, another UID": {Archive{Namespace: "shop", Pod: "cache-0", PodUID: "uid-0"}, nil},
		"a pod without labels":          {Archive{Namespace: "shop", Pod: "bare", PodUID: "uid-2"}, map[string]string{}},
		"the pod is gone":               {Archive{Namespace: "shop", Pod: "web-0", PodUID: "uid-3"}, nil},
		"a lookup found no pod":         {Archive{Namespace: "shop", Pod: "looked-up", PodUID: "uid-4"}, nil},
		"same name, other namespace":    {Archive{Namespace: "prod", Pod: "cache-0", PodUID: "uid-1"}, nil},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := labels(&tc.archive)
			if diff := cmp.Diff(tc.want, got); diff != "" || (got == nil) != (tc.want == nil) {
				t.Errorf("labels (-want +got):\n%s (nil: got %v, want %v)", diff, got == nil, tc.want == nil)
			}
		})
	}
}
