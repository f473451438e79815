package cri

import (
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/kube-nodekit/nodekit/qos"
)

// ContainerResources returns the Linux resources the kubelet puts in a
// container's CRI config (generateLinuxContainerResources in
// pkg/kubelet/kuberuntime/kuberuntime_container_linux.go): cpu shares,
// quota and period, memory limit and hugepage limits as qos computes them,
// the OOM score adjustment, and on cgroup v2 memory.high=max and (unless
// SingleProcessOOMKill) memory.oom.group=1. With a swap controller present,
// swap is turned off (NoSwap, the kubelet's default behaviour).
func (c *Config) ContainerResources(pod *corev1.Pod, ctr *corev1.Container) *runtimeapi.LinuxContainerResources {
	r := c.QOS.ContainerResources(pod, ctr)
	lcr := &runtimeapi.LinuxContainerResources{}
	if r.CPU != nil {
		if r.CPU.Shares != nil {
			lcr.CpuShares = int64(*r.CPU.Shares)
		}
		if r.CPU.Quota != nil {
			lcr.CpuQuota = *r.CPU.Quota
		}
		if r.CPU.Period != nil {
			lcr.CpuPeriod = int64(*r.CPU.Period)
		}
	}
	if r.Memory != nil && r.Memory.Limit != nil {
		lcr.MemoryLimitInBytes = *r.Memory.Limit
	}
	for _, h := range r.HugepageLimits {
		lcr.HugepageLimits = append(lcr.HugepageLimits, &runtimeapi.HugepageLimit{PageSize: h.Pagesize, Limit: h.Limit})
	}
	lcr.OomScoreAdj = int64(c.QOS.OOMScoreAdj(pod, ctr, c.MemoryCapacity))
	c.addUnified(lcr)
	if c.SwapControllerAvailable {
		if c.CgroupV2 {
			setUnified(lcr, "memory.swap.max", "0")
		} else {
			lcr.MemorySwapLimitInBytes = lcr.MemoryLimitInBytes
		}
	}
	if c.CgroupV2 {
		setUnified(lcr, "memory.high", "max")
	}
	return lcr
}

// SandboxResources returns the resources of the sandbox and of the pod's
// overhead, which the kubelet puts in LinuxPodSandboxConfig for runtimes
// that size a VM or a pod cgroup up front (calculateSandboxResources and
// convertOverheadToLinuxResources in kuberuntime_sandbox_linux.go). The
// sandbox's are from the pod's total requests and limits, sidecar rules
// included, without overhead; the overhead's count its cpu as both request
// and limit. A pod without overhead gets empty overhead resources.
func (c *Config) SandboxResources(pod *corev1.Pod) (resources, overhead *runtimeapi.LinuxContainerResources) {
	podLevel := c.QOS.PodLevelResources
	cpuReq, hasCPUReq := podTotal(pod, corev1.ResourceCPU, false, podLevel)
	cpuLim, _ := podTotal(pod, corev1.ResourceCPU, true, podLevel)
	memLim, _ := podTotal(pod, corev1.ResourceMemory, true, podLevel)
	var req *resource.Quantity
	if hasCPUReq {
		req = &cpuReq
	}
	resources = c.linuxResources(req, cpuLim, memLim)
	overhead = &runtimeapi.LinuxContainerResources{}
	if pod.Spec.Overhead != nil {
		cpu, mem := pod.Spec.Overhead[corev1.ResourceCPU], pod.Spec.Overhead[corev1.ResourceMemory]
		overhead = c.linuxResources(&cpu, cpu, mem)
	}
	return resources, overhead
}

// linuxResources is calculateLinuxResources of kuberuntime_container_linux.go:
// shares from the request (from the limit when there is no request), the
// memory limit, and the CFS quota and period.
func (c *Config) linuxResources(cpuReq *resource.Quantity, cpuLim, memLim resource.Quantity) *runtimeapi.LinuxContainerResources {
	lcr := &runtimeapi.LinuxContainerResources{}
	if cpuReq == nil {
		lcr.CpuShares = int64(qos.MilliCPUToShares(cpuLim.MilliValue()))
	} else {
		lcr.CpuShares = int64(qos.MilliCPUToShares(cpuReq.MilliValue()))
	}
	lcr.MemoryLimitInBytes = memLim.Value()
	if c.QOS.CPUCFSQuota {
		period := int64(qos.QuotaPeriod)
		if c.QOS.CPUCFSQuotaPeriod > 0 {
			period = c.QOS.CPUCFSQuotaPeriod.Microseconds()
		}
		lcr.CpuQuota = qos.MilliCPUToQuota(cpuLim.MilliValue(), period)
		lcr.CpuPeriod = period
	}
	c.addUnified(lcr)
	return lcr
}

// addUnified adds memory.oom.group=1 on cgroup v2 unless single-process OOM
// kills are asked for.
func (c *Config) addUnified(lcr *runtimeapi.LinuxContainerResources) {
	if c.CgroupV2 && !c.SingleProcessOOMKill {
		setUnified(lcr, "memory.oom.group", "1")
	}
}

func setUnified(lcr *runtimeapi.LinuxContainerResources, k, v string) {
	if lcr.Unified == nil {
		lcr.Unified = map[string]string{}
	}
	lcr.Unified[k] = v
}

// podTotal sums a resource over the pod as the scheduler does
// (PodRequests/PodLimits in k8s.io/component-helpers/resource with
// ExcludeOverhead): regular and sidecar containers add up, each plain init
// container counts beside the sidecars declared before it, the larger of
// the two phases wins; pod-level resources replace the result when set.
// present reports whether any container (or the pod level) names the
// resource at all, which is what upstream's map keys record.
func podTotal(pod *corev1.Pod, name corev1.ResourceName, limits bool, podLevel bool) (total resource.Quantity, present bool) {
	of := func(r *corev1.ResourceRequirements) (resource.Quantity, bool) {
		l := r.Requests
		if limits {
			l = r.Limits
		}
		q, ok := l[name]
		return q, ok
	}
	for i := range pod.Spec.Containers {
		if q, ok := of(&pod.Spec.Containers[i].Resources); ok {
			total.Add(q)
			present = true
		}
	}
	var sidecars, peak resource.Quantity
	sidecarNamed, peakSeen := false, false
	for i := range pod.Spec.InitContainers {
		ic := &pod.Spec.InitContainers[i]
		q, named := of(&ic.Resources)
		var phase resource.Quantity
		hasKey := false
		if ic.RestartPolicy != nil && *ic.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			if named {
				total.Add(q)
				present = true
				sidecars.Add(q)
				sidecarNamed = true
			}
			phase, hasKey = sidecars.DeepCopy(), sidecarNamed
		} else {
			phase = q.DeepCopy()
			phase.Add(sidecars)
			hasKey = named || sidecarNamed
		}
		if hasKey && (!peakSeen || phase.Cmp(peak) > 0) {
			peak, peakSeen = phase, true
		}
	}
	if peakSeen && (!present || peak.Cmp(total) > 0) {
		total, present = peak, true
	}
	if podLevel && pod.Spec.Resources != nil {
		set := podLevelRequestsSet(pod.Spec.Resources)
		if limits {
			set = podLevelResourcesSet(pod.Spec.Resources)
		}
		if set {
			if q, ok := of(pod.Spec.Resources); ok && supportedPodLevel(name) {
				return q.DeepCopy(), true
			}
		}
	}
	return total, present
}

func supportedPodLevel(name corev1.ResourceName) bool {
	return name == corev1.ResourceCPU || name == corev1.ResourceMemory || strings.HasPrefix(string(name), corev1.ResourceHugePagesPrefix)
}

func podLevelRequestsSet(r *corev1.ResourceRequirements) bool {
	for name := range r.Requests {
		if supportedPodLevel(name) {
			return true
		}
	}
	return false
}

func podLevelResourcesSet(r *corev1.ResourceRequirements) bool {
	if podLevelRequestsSet(r) {
		return true
	}
	for name := range r.Limits {
		if supportedPodLevel(name) {
			return true
		}
	}
	return false
}
