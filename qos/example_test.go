package qos_test

import (
	"fmt"
	"path"

	"github.com/kube-nodekit/nodekit/qos"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// resources builds requirements from cpu and memory quantities; "" leaves
// one out.
func resources(reqCPU, reqMem, limCPU, limMem string) corev1.ResourceRequirements {
	list := func(cpu, mem string) corev1.ResourceList {
		l := corev1.ResourceList{}
		if cpu != "" {
			l[corev1.ResourceCPU] = resource.MustParse(cpu)
		}
		if mem != "" {
			l[corev1.ResourceMemory] = resource.MustParse(mem)
		}
		return l
	}
	return corev1.ResourceRequirements{Requests: list(reqCPU, reqMem), Limits: list(limCPU, limMem)}
}

func webPod() *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default", UID: "6f1c2a9e-3b8d-4e1f-9a0b-1c2d3e4f5a6b"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{
			{Name: "app", Resources: resources("500m", "256Mi", "1", "512Mi")},
			{Name: "proxy", Resources: resources("100m", "64Mi", "100m", "64Mi")},
		}},
	}
}

func ExampleClass() {
	pod := webPod()
	fmt.Println(qos.Class(pod))

	// Requests equal to limits everywhere make it Guaranteed.
	pod.Spec.Containers[0].Resources = resources("1", "512Mi", "1", "512Mi")
	fmt.Println(qos.Class(pod))

	// A sidecar without resources spoils that.
	always := corev1.ContainerRestartPolicyAlways
	pod.Spec.InitContainers = []corev1.Container{{Name: "log-shipper", RestartPolicy: &always}}
	fmt.Println(qos.Class(pod))
	// Output:
	// Burstable
	// Guaranteed
	// Burstable
}

func ExampleComputeClass() {
	pod := webPod()
	// The class recorded at creation wins in Class, not in ComputeClass.
	pod.Status.QOSClass = corev1.PodQOSGuaranteed
	fmt.Println(qos.Class(pod), qos.ComputeClass(pod))
	// Output: Guaranteed Burstable
}

func ExampleConfig_Class() {
	pod := webPod()
	pod.Spec.Resources = &corev1.ResourceRequirements{} // resources: {}

	fmt.Println(qos.DefaultConfig().Class(pod))

	// Before v1.37's fix, an empty spec.resources decided the class.
	cfg := qos.DefaultConfig()
	cfg.PodLevelResourcesFixKubeletQOSClass = false
	fmt.Println(cfg.Class(pod))
	// Output:
	// Burstable
	// BestEffort
}

func ExampleOOMScoreAdj() {
	pod := webPod()
	const capacity = 4 << 30 // a 4Gi node
	for i := range pod.Spec.Containers {
		c := &pod.Spec.Containers[i]
		fmt.Println(c.Name, qos.OOMScoreAdj(pod, c, capacity))
	}
	// Output:
	// app 938
	// proxy 985
}

func ExampleConfig_OOMScoreAdj() {
	pod := webPod()
	// A pod-level request of 1Gi leaves 704Mi that neither container
	// requests; each is scored as if it had asked for half of it too.
	pod.Spec.Resources = &corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("1Gi")}}
	c := &pod.Spec.Containers[1]

	fmt.Println(qos.DefaultConfig().OOMScoreAdj(pod, c, 4<<30))
	cfg := qos.DefaultConfig()
	cfg.PodLevelResources = false
	fmt.Println(cfg.OOMScoreAdj(pod, c, 4<<30))
	// Output:
	// 899
	// 985
}

func ExampleCritical() {
	pod := webPod()
	pod.Annotations = map[string]string{qos.ConfigSourceAnnotation: "file"} // a static pod
	fmt.Println(qos.Critical(pod), qos.NodeCritical(pod))
	// Output: true false
}

func ExampleNodeCritical() {
	pod := webPod()
	prio := qos.SystemCriticalPriority + 1000
	pod.Spec.PriorityClassName, pod.Spec.Priority = qos.SystemNodeCritical, &prio
	fmt.Println(qos.NodeCritical(pod), qos.OOMScoreAdj(pod, &pod.Spec.Containers[0], 4<<30))
	// Output: true -997
}

func ExampleCgroupParent() {
	parent, err := qos.CgroupParent(webPod())
	fmt.Println(parent, err)
	// Output: /kubepods/burstable/pod6f1c2a9e-3b8d-4e1f-9a0b-1c2d3e4f5a6b <nil>
}

func ExampleConfig_CgroupParent() {
	cfg := qos.DefaultConfig()
	cfg.CgroupDriver = qos.Systemd
	parent, _ := cfg.CgroupParent(webPod())
	fmt.Println(parent)
	fmt.Println(path.Base(parent)) // the slice unit
	// Output:
	// /kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod6f1c2a9e_3b8d_4e1f_9a0b_1c2d3e4f5a6b.slice
	// kubepods-burstable-pod6f1c2a9e_3b8d_4e1f_9a0b_1c2d3e4f5a6b.slice
}

func ExampleContainerResources() {
	pod := webPod()
	r := qos.ContainerResources(pod, &pod.Spec.Containers[0])
	fmt.Println("cpu.shares", *r.CPU.Shares)
	fmt.Println("cpu.cfs_quota_us", *r.CPU.Quota, "cpu.cfs_period_us", *r.CPU.Period)
	fmt.Println("memory.limit_in_bytes", *r.Memory.Limit)
	// Output:
	// cpu.shares 512
	// cpu.cfs_quota_us 100000 cpu.cfs_period_us 100000
	// memory.limit_in_bytes 536870912
}

func ExampleConfig_ContainerResources() {
	cfg := qos.DefaultConfig()
	cfg.HugePageSizes = []string{"2MB", "1GB"} // from /sys/kernel/mm/hugepages
	pod := webPod()
	pod.Spec.Containers[0].Resources.Limits["hugepages-2Mi"] = resource.MustParse("64Mi")
	for _, l := range cfg.ContainerResources(pod, &pod.Spec.Containers[0]).HugepageLimits {
		fmt.Println(l.Pagesize, l.Limit)
	}
	// Output:
	// 2MB 67108864
	// 1GB 0
}

func ExamplePodResources() {
	r := qos.PodResources(webPod())
	// Both containers limit cpu and memory, so the Burstable pod is bounded
	// by the sums.
	fmt.Println(*r.CPU.Shares, *r.CPU.Quota, *r.Memory.Limit)
	// Output: 614 110000 603979776
}

func ExampleConfig_PodResources() {
	cfg := qos.DefaultConfig()
	cfg.CPUCFSQuota = false // --cpu-cfs-quota=false
	cfg.PodPidsLimit = 4096 // --pod-max-pids
	r := cfg.PodResources(webPod())
	fmt.Println(*r.CPU.Quota, *r.Pids.Limit)
	// Output: -1 4096
}

func ExampleDefaultConfig() {
	cfg := qos.DefaultConfig()
	fmt.Println(cfg.PodLevelResources, cfg.CPUCFSQuota, cfg.CPUCFSQuotaPeriod, cfg.CgroupDriver, cfg.CgroupRoot)
	// Output: true true 100ms cgroupfs /
}

func ExampleMilliCPUToShares() {
	fmt.Println(qos.MilliCPUToShares(0), qos.MilliCPUToShares(250), qos.MilliCPUToShares(1000))
	// Output: 2 256 1024
}

func ExampleMilliCPUToQuota() {
	fmt.Println(qos.MilliCPUToQuota(250, qos.QuotaPeriod), qos.MilliCPUToQuota(5, qos.QuotaPeriod))
	// Output: 25000 1000
}

func ExampleSharesToMilliCPU() {
	fmt.Println(qos.SharesToMilliCPU(256), qos.SharesToMilliCPU(1024))
	// Output: 250 1000
}

func ExampleQuotaToMilliCPU() {
	fmt.Println(qos.QuotaToMilliCPU(25000, qos.QuotaPeriod), qos.QuotaToMilliCPU(-1, qos.QuotaPeriod))
	// Output: 250 0
}

func ExampleSharesToWeightLinear() {
	// What the kubelet writes as cpu.weight for a pod requesting one CPU.
	fmt.Println(qos.SharesToWeightLinear(qos.MilliCPUToShares(1000)))
	// Output: 39
}

func ExampleWeightToSharesLinear() {
	fmt.Println(qos.WeightToSharesLinear(39))
	// Output: 998
}

func ExampleSharesToWeightQuadratic() {
	// What runc >= 1.3.2 writes as cpu.weight for a container requesting
	// one CPU: the cgroup v2 default.
	fmt.Println(qos.SharesToWeightQuadratic(qos.MilliCPUToShares(1000)))
	// Output: 100
}
