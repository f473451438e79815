package conformance

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	upstreamqos "k8s.io/kubernetes/pkg/apis/core/v1/helper/qos"
)

// TestUpstreamIsWired proves the module builds against k8s.io/kubernetes
// and calls real upstream code: a pod whose only container has equal cpu and
// memory requests and limits is Guaranteed (pkg/apis/core/v1/helper/qos).
func TestUpstreamIsWired(t *testing.T) {
	rl := corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse("100m"),
		corev1.ResourceMemory: resource.MustParse("64Mi"),
	}
	pod := &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{{
		Name:      "c",
		Resources: corev1.ResourceRequirements{Requests: rl, Limits: rl},
	}}}}
	if got := upstreamqos.ComputePodQOS(pod); got != corev1.PodQOSGuaranteed {
		t.Fatalf("upstream ComputePodQOS = %q, want Guaranteed", got)
	}
}
