package conformance

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/kube-nodekit/nodekit/qos"
	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	upstreamqos "k8s.io/kubernetes/pkg/apis/core/v1/helper/qos"
	kubeletqos "k8s.io/kubernetes/pkg/kubelet/qos"
)

// benchPod is a pod of n containers. Each has equal cpu and memory requests
// and limits; in a Burstable pod the last container's limits are twice its
// requests, so classifying it has to look at every container (the worst
// case for both implementations).
func benchPod(n int, class corev1.PodQOSClass) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "bench", Namespace: "default", UID: "0b5f6bb4-2f0c-4b4f-a2f4-8d8bd2c1fb8a"}}
	for i := range n {
		req := corev1.ResourceList{
			corev1.ResourceCPU:    resource.MustParse("250m"),
			corev1.ResourceMemory: resource.MustParse("256Mi"),
		}
		lim := req.DeepCopy()
		if class == corev1.PodQOSBurstable && i == n-1 {
			lim[corev1.ResourceCPU] = resource.MustParse("500m")
			lim[corev1.ResourceMemory] = resource.MustParse("512Mi")
		}
		p.Spec.Containers = append(p.Spec.Containers, corev1.Container{
			Name:      fmt.Sprintf("c%d", i),
			Resources: corev1.ResourceRequirements{Requests: req, Limits: lim},
		})
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

// cpuClock measures the CPU time of the benchmark's own thread, reported
// as cpu-ns/op beside ns/op. On a machine shared with other work, wall time
// also counts the time the benchmark waited for a CPU; thread CPU time
// does not, so the ratio of two cpu-ns/op is the steadier comparison.
// (Garbage collection runs on other threads: upstream's allocations cost
// it more than cpu-ns/op shows.)
type cpuClock struct {
	start time.Duration
	n     int
}

func startCPUClock(b *testing.B) *cpuClock {
	b.ReportAllocs()
	runtime.LockOSThread()
	return &cpuClock{start: threadCPU()}
}

func (c *cpuClock) stop(b *testing.B) {
	elapsed := threadCPU() - c.start
	runtime.UnlockOSThread()
	if c.n > 0 {
		b.ReportMetric(float64(elapsed.Nanoseconds())/float64(c.n), "cpu-ns/op")
	}
}

func threadCPU() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}

// BenchmarkQOSClass compares qos.Class with upstream GetPodQOS
// (pkg/apis/core/v1/helper/qos/qos.go) on pods without a preset class.
func BenchmarkQOSClass(b *testing.B) {
	for _, s := range benchShapes {
		pod := benchPod(s.n, s.class)
		if got, want := qos.Class(pod), upstreamqos.GetPodQOS(pod); got != want || got != s.class {
			b.Fatalf("%s: nodekit %s, upstream %s", s.name, got, want)
		}
		b.Run(s.name+"/impl=nodekit", func(b *testing.B) {
			clock := startCPUClock(b)
			for b.Loop() {
				sinkClass = qos.Class(pod)
				clock.n++
			}
			clock.stop(b)
		})
		b.Run(s.name+"/impl=upstream", func(b *testing.B) {
			clock := startCPUClock(b)
			for b.Loop() {
				sinkClass = upstreamqos.GetPodQOS(pod)
				clock.n++
			}
			clock.stop(b)
		})
	}
}

// BenchmarkQOSOOMScoreAdj compares qos.OOMScoreAdj with upstream
// GetContainerOOMScoreAdjust (pkg/kubelet/qos/policy.go) for the last
// container of each pod.
func BenchmarkQOSOOMScoreAdj(b *testing.B) {
	const capacity = 16 << 30
	for _, s := range benchShapes {
		pod := benchPod(s.n, s.class)
		c := &pod.Spec.Containers[s.n-1]
		if got, want := qos.OOMScoreAdj(pod, c, capacity), kubeletqos.GetContainerOOMScoreAdjust(pod, c, capacity); got != want {
			b.Fatalf("%s: nodekit %d, upstream %d", s.name, got, want)
		}
		b.Run(s.name+"/impl=nodekit", func(b *testing.B) {
			clock := startCPUClock(b)
			for b.Loop() {
				sinkInt = qos.OOMScoreAdj(pod, c, capacity)
				clock.n++
			}
			clock.stop(b)
		})
		b.Run(s.name+"/impl=upstream", func(b *testing.B) {
			clock := startCPUClock(b)
			for b.Loop() {
				sinkInt = kubeletqos.GetContainerOOMScoreAdjust(pod, c, capacity)
				clock.n++
			}
			clock.stop(b)
		})
	}
}
