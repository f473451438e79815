package qos

import (
	"slices"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// ContainerResources returns the cgroup resources the kubelet asks the
// runtime to give the container, with DefaultConfig. See
// Config.ContainerResources.
func ContainerResources(pod *corev1.Pod, container *corev1.Container) *specs.LinuxResources {
	return DefaultConfig().ContainerResources(pod, container)
}

// ContainerResources returns the cgroup resources the kubelet sends for the
// container in its CRI ContainerConfig, as the runtime-spec resources a CRI
// runtime makes of them (the CRI's zero means "unset" and becomes nil, as
// containerd translates it):
//
//   - CPU.Shares: MilliCPUToShares of the cpu request; a container without
//     a cpu request uses its cpu limit (and, with PodLevelResources, a
//     container without a cpu limit uses the pod-level one), so a container
//     with neither gets the minimum, 2.
//   - CPU.Quota and CPU.Period: with CPUCFSQuota, the period, and
//     MilliCPUToQuota of the cpu limit when there is one. With
//     PodLevelResources, a container without a cpu limit takes the pod's.
//   - Memory.Limit: the memory limit in bytes, or the pod-level one for a
//     container without a limit; nil when neither is set.
//   - HugepageLimits: one entry per Config.HugePageSizes, 0 unless the
//     container (or, failing that, the pod level) limits that size.
//
// Not computed, because they depend on node state beyond the pod: CPU
// manager exclusive CPUs (quota -1), swap, and the cgroup v2 unified keys of
// MemoryQoS (memory.min, memory.low, memory.high) and memory.oom.group. The
// OOM score, which the CRI carries beside these, is OOMScoreAdj.
//
// Upstream: generateLinuxContainerResources, calculateLinuxResources,
// getCPULimit, getMemoryLimit and GetHugepageLimitsFromResources in
// pkg/kubelet/kuberuntime/kuberuntime_container_linux.go.
func (c Config) ContainerResources(pod *corev1.Pod, container *corev1.Container) *specs.LinuxResources {
	if container == nil {
		return nil
	}
	if pod == nil {
		pod = &corev1.Pod{}
	}
	podLevel := c.PodLevelResources && podLevelResourcesSet(pod.Spec.Resources)
	cpuLimit := containerLimit(pod, container, corev1.ResourceCPU, podLevel)
	memLimit := containerLimit(pod, container, corev1.ResourceMemory, podLevel)
	cpuRequest, ok := container.Resources.Requests[corev1.ResourceCPU]
	if !ok {
		cpuRequest = cpuLimit
	}

	shares := MilliCPUToShares(cpuRequest.MilliValue())
	res := &specs.LinuxResources{CPU: &specs.LinuxCPU{Shares: &shares}}
	if c.CPUCFSQuota {
		period := c.periodMicros()
		if period != 0 {
			p := uint64(period)
			res.CPU.Period = &p
		}
		if quota := MilliCPUToQuota(cpuLimit.MilliValue(), period); quota != 0 {
			res.CPU.Quota = &quota
		}
	}
	if mem := memLimit.Value(); mem != 0 {
		res.Memory = &specs.LinuxMemory{Limit: &mem}
	}
	res.HugepageLimits = c.containerHugePages(pod, container, podLevel)
	return res
}

// containerLimit is the container's limit of a resource, or with pod-level
// resources in force and no container limit, the pod's.
func containerLimit(pod *corev1.Pod, container *corev1.Container, name corev1.ResourceName, podLevel bool) resource.Quantity {
	q := container.Resources.Limits[name]
	if podLevel && q.IsZero() {
		return pod.Spec.Resources.Limits[name]
	}
	return q
}

// containerHugePages sets each of the machine's page sizes to the
// container's limit, the pod-level limit, or 0. Where two resource names
// spell one size ("hugepages-2Mi", "hugepages-2048Ki"), upstream keeps
// whichever its map iteration visits last; nodekit keeps the largest.
func (c Config) containerHugePages(pod *corev1.Pod, container *corev1.Container, podLevel bool) []specs.LinuxHugepageLimit {
	if len(c.HugePageSizes) == 0 {
		return nil
	}
	out := make([]specs.LinuxHugepageLimit, len(c.HugePageSizes))
	for i, size := range c.HugePageSizes {
		out[i].Pagesize = size
	}
	set := make([]bool, len(out))
	apply := func(list corev1.ResourceList) {
		clear(set)
		for name, q := range list {
			_, unit, ok := hugePageSize(name)
			if !ok {
				continue
			}
			v := uint64(q.Value())
			for i := range out {
				if out[i].Pagesize == unit && (!set[i] || v > out[i].Limit) {
					out[i].Limit, set[i] = v, true
				}
			}
		}
	}
	if podLevel {
		apply(pod.Spec.Resources.Limits)
	}
	apply(container.Resources.Limits)
	return out
}

// PodResources returns the cgroup resources the kubelet writes on the pod's
// own cgroup (kubepods/<class>/pod<uid>), with DefaultConfig. See
// Config.PodResources.
func PodResources(pod *corev1.Pod) *specs.LinuxResources {
	return DefaultConfig().PodResources(pod)
}

// PodResources returns the cgroup resources the kubelet writes on the pod's
// own cgroup when it creates it. The pod's totals count sidecars the way
// the scheduler does (see the package documentation), are replaced by
// pod-level spec.resources under PodLevelResources, and include the pod
// overhead.
//
//   - Guaranteed: CPU.Shares from the total cpu request, CPU.Quota from the
//     total cpu limit over CPU.Period, Memory.Limit the total memory limit.
//   - Burstable: CPU.Shares; the quota and period only if every container
//     (or the pod level) limits cpu; the memory limit only if every
//     container (or the pod level) limits memory. A Burstable pod with one
//     unlimited container is unlimited.
//   - BestEffort: CPU.Shares 2 only.
//
// With CPUCFSQuota off, the quota is -1 (unlimited) where it would be set.
// HugepageLimits carries the total hugepage requests per size and 0 for each
// other size in Config.HugePageSizes (none when that is empty). Pids.Limit
// is Config.PodPidsLimit when positive.
//
// Pointers are set exactly where the kubelet sets its ResourceConfig
// fields. On cgroup v2 the kubelet writes the shares as cpu.weight =
// SharesToWeightLinear(shares).
//
// Deviation: upstream counts a hugepages resource whose size does not parse
// as page size 0 and writes it as "0PB"; nodekit drops it (the API server
// rejects such names).
//
// Upstream: ResourceConfigForPod and HugePageLimits in
// pkg/kubelet/cm/helpers_linux.go, EnsureExists in
// pkg/kubelet/cm/pod_container_manager_linux.go and maybeSetHugetlb in
// pkg/kubelet/cm/cgroup_manager_linux.go. MemoryQoS (memory.min/low/high on
// cgroup v2), CPU-manager exclusive CPUs and the DRANodeAllocatableResources
// alpha gate are not modelled.
func (c Config) PodResources(pod *corev1.Pod) *specs.LinuxResources {
	if pod == nil {
		pod = &corev1.Pod{}
	}
	plr := c.PodLevelResources
	cpuRequest := podTotal(pod, corev1.ResourceCPU, requests, plr)
	cpuLimit := podTotal(pod, corev1.ResourceCPU, limits, plr)
	memLimit := podTotal(pod, corev1.ResourceMemory, limits, plr)

	cpuLimited, memLimited := allLimit(pod)
	if plr && podLevelResourcesSet(pod.Spec.Resources) {
		if q := pod.Spec.Resources.Limits[corev1.ResourceCPU]; !q.IsZero() {
			cpuLimited = true
		}
		if q := pod.Spec.Resources.Limits[corev1.ResourceMemory]; !q.IsZero() {
			memLimited = true
		}
	}

	var milliRequest, milliLimit, memory int64
	if cpuRequest.ok {
		milliRequest = cpuRequest.q.MilliValue()
	}
	if cpuLimit.ok {
		milliLimit = cpuLimit.q.MilliValue()
	}
	if memLimit.ok {
		memory = memLimit.q.Value()
	}
	period := uint64(c.periodMicros())
	quota := MilliCPUToQuota(milliLimit, int64(period))
	if !c.CPUCFSQuota {
		quota = -1
	}

	res := &specs.LinuxResources{CPU: &specs.LinuxCPU{}}
	switch podClass(pod, plr, c.PodLevelResourcesFixKubeletQOSClass) {
	case guaranteed:
		shares := MilliCPUToShares(milliRequest)
		res.CPU.Shares, res.CPU.Quota, res.CPU.Period = &shares, &quota, &period
		res.Memory = &specs.LinuxMemory{Limit: &memory}
	case burstable:
		shares := MilliCPUToShares(milliRequest)
		res.CPU.Shares = &shares
		if cpuLimited {
			res.CPU.Quota, res.CPU.Period = &quota, &period
		}
		if memLimited {
			res.Memory = &specs.LinuxMemory{Limit: &memory}
		}
	default:
		// BestEffort, and a preset status.qosClass that is none of the
		// three, which falls into the kubelet's last branch.
		shares := uint64(MinShares)
		res.CPU.Shares = &shares
	}
	if c.PodPidsLimit > 0 {
		pids := c.PodPidsLimit
		res.Pids = &specs.LinuxPids{Limit: &pids}
	}
	res.HugepageLimits = c.podHugePages(pod)
	return res
}

// allLimit reports whether every container, init containers included, has
// a non-zero cpu limit and a non-zero memory limit.
func allLimit(pod *corev1.Pod) (cpu, memory bool) {
	cpu, memory = true, true
	check := func(c *corev1.Container) {
		if q := c.Resources.Limits[corev1.ResourceCPU]; q.IsZero() {
			cpu = false
		}
		if q := c.Resources.Limits[corev1.ResourceMemory]; q.IsZero() {
			memory = false
		}
	}
	for i := range pod.Spec.InitContainers {
		check(&pod.Spec.InitContainers[i])
	}
	for i := range pod.Spec.Containers {
		check(&pod.Spec.Containers[i])
	}
	return cpu, memory
}

// podHugePages is the pod's total hugepage request per page size, then a
// zero limit for every other size of the machine.
func (c Config) podHugePages(pod *corev1.Pod) []specs.LinuxHugepageLimit {
	if len(c.HugePageSizes) == 0 {
		return nil
	}
	// Every resource name the pod's total requests can hold.
	var names []corev1.ResourceName
	collect := func(list corev1.ResourceList) {
		for name := range list {
			if _, _, ok := hugePageSize(name); ok && !slices.Contains(names, name) {
				names = append(names, name)
			}
		}
	}
	for i := range pod.Spec.InitContainers {
		collect(pod.Spec.InitContainers[i].Resources.Requests)
	}
	for i := range pod.Spec.Containers {
		collect(pod.Spec.Containers[i].Resources.Requests)
	}
	if r := pod.Spec.Resources; c.PodLevelResources && podLevelRequestsSet(r) {
		collect(r.Requests)
	}
	collect(pod.Spec.Overhead)

	type total struct {
		unit  string
		bytes int64
		sum   int64
	}
	var totals []total
	for _, name := range names {
		a := podTotal(pod, name, requests, c.PodLevelResources)
		if !a.ok {
			continue
		}
		bytes, unit, _ := hugePageSize(name)
		i := slices.IndexFunc(totals, func(t total) bool { return t.unit == unit })
		if i < 0 {
			totals = append(totals, total{unit: unit, bytes: bytes})
			i = len(totals) - 1
		}
		totals[i].sum += a.q.Value()
	}

	out := make([]specs.LinuxHugepageLimit, 0, len(c.HugePageSizes)+len(totals))
	for _, size := range c.HugePageSizes {
		l := specs.LinuxHugepageLimit{Pagesize: size}
		if i := slices.IndexFunc(totals, func(t total) bool { return t.unit == size }); i >= 0 {
			l.Limit = uint64(totals[i].sum)
			totals = slices.Delete(totals, i, i+1)
		}
		out = append(out, l)
	}
	// Sizes the machine does not have are still written, as upstream does
	// (the write then fails in the runtime); in page-size order.
	slices.SortFunc(totals, func(a, b total) int {
		switch {
		case a.bytes < b.bytes:
			return -1
		case a.bytes > b.bytes:
			return 1
		}
		return 0
	})
	for _, t := range totals {
		out = append(out, specs.LinuxHugepageLimit{Pagesize: t.unit, Limit: uint64(t.sum)})
	}
	return out
}
