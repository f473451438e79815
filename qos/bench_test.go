package qos

import (
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// benchPod is a pod of n containers with equal cpu and memory requests and
// limits; in a Burstable pod the last container's limits are twice its
// requests, so the class is only known after the last container. The
// conformance module runs the same shapes side by side with upstream.
func benchPod(n int, class corev1.PodQOSClass) *corev1.Pod {
	p := pod(nil)
	for i := range n {
		r := req(cm("250m", "256Mi"), cm("250m", "256Mi"))
		if class == corev1.PodQOSBurstable && i == n-1 {
			r.Limits = cm("500m", "512Mi")
		}
		p.Spec.Containers = append(p.Spec.Containers, ctr(fmt.Sprintf("c%d", i), r))
	}
	return p
}

var benchShapes = []struct {
	name  string
	n     int
	class corev1.PodQOSClass
}{
	{"burstable/containers=3", 3, corev1.PodQOSBurstable},
	{"burstable/containers=20", 20, corev1.PodQOSBurstable},
	{"guaranteed/containers=20", 20, corev1.PodQOSGuaranteed},
}

var (
	sinkClass corev1.PodQOSClass
	sinkInt   int
)

func BenchmarkClass(b *testing.B) {
	for _, s := range benchShapes {
		p := benchPod(s.n, s.class)
		if got := Class(p); got != s.class {
			b.Fatalf("%s: class %s", s.name, got)
		}
		b.Run(s.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				sinkClass = Class(p)
			}
		})
	}
}

func BenchmarkOOMScoreAdj(b *testing.B) {
	for _, s := range benchShapes {
		p := benchPod(s.n, s.class)
		c := &p.Spec.Containers[s.n-1]
		b.Run(s.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				sinkInt = OOMScoreAdj(p, c, 16<<30)
			}
		})
	}
}

func BenchmarkContainerResources(b *testing.B) {
	for _, s := range benchShapes {
		p := benchPod(s.n, s.class)
		c := &p.Spec.Containers[s.n-1]
		b.Run(s.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = ContainerResources(p, c)
			}
		})
	}
}

func BenchmarkPodResources(b *testing.B) {
	for _, s := range benchShapes {
		p := benchPod(s.n, s.class)
		b.Run(s.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = PodResources(p)
			}
		})
	}
}
