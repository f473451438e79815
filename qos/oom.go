package qos

import (
	corev1 "k8s.io/api/core/v1"
)

// OOM score adjustments (/proc/<pid>/oom_score_adj, from -1000 "never kill"
// to 1000 "kill first") of the kubelet's policy.
//
// Upstream: pkg/kubelet/qos/policy.go.
const (
	// KubeletOOMScoreAdj is the kubelet's own score.
	KubeletOOMScoreAdj = -999
	// KubeProxyOOMScoreAdj is kube-proxy's own score.
	KubeProxyOOMScoreAdj = -999
	// GuaranteedOOMScoreAdj is the score of Guaranteed and node-critical
	// containers.
	GuaranteedOOMScoreAdj = -997
	// BestEffortOOMScoreAdj is the score of BestEffort containers.
	BestEffortOOMScoreAdj = 1000
	// MinBurstableOOMScoreAdj and MaxBurstableOOMScoreAdj bound Burstable
	// containers: above Guaranteed ones (a Guaranteed container using all of
	// the node's memory has an oom_score near 1000-997 = 3), below
	// BestEffort ones.
	MinBurstableOOMScoreAdj = 1000 + GuaranteedOOMScoreAdj
	MaxBurstableOOMScoreAdj = BestEffortOOMScoreAdj - 1
)

// OOMScoreAdj returns the oom_score_adj the kubelet gives every process of
// the container, on a node with memoryCapacity bytes of memory, with
// DefaultConfig's feature gates.
//
//   - Node-critical pods (see NodeCritical) and Guaranteed pods: -997.
//   - BestEffort pods: 1000.
//   - Burstable pods: 1000 - 1000*request/memoryCapacity, where request is
//     the container's memory request, so a container using more than it
//     asked for scores about 1000 and goes first. With PodLevelResources
//     and a pod-level memory request, the part of the pod's request that no
//     container claims (minus the sidecar-aware sum of container requests)
//     is split evenly over all containers, init containers included, and
//     added to each. A restartable init (sidecar) container scores no
//     higher than the regular container with the smallest request, so it
//     outlives the containers it serves. The result is clamped to 3..999.
//
// The class is Class(pod), so a preset status.qosClass decides. Deviations
// from upstream, which panics in these cases: a memoryCapacity of 0 gives
// Burstable containers 999, and a sidecar in a pod without regular
// containers is scored on its own request.
//
// Upstream: GetContainerOOMScoreAdjust in pkg/kubelet/qos/policy.go (the
// DRANodeAllocatableResources alpha gate, off by default, is not modelled).
func OOMScoreAdj(pod *corev1.Pod, container *corev1.Container, memoryCapacity int64) int {
	return oomScoreAdj(pod, container, memoryCapacity, true, true)
}

// OOMScoreAdj is the package-level OOMScoreAdj with this configuration's
// feature gates.
func (c Config) OOMScoreAdj(pod *corev1.Pod, container *corev1.Container, memoryCapacity int64) int {
	return oomScoreAdj(pod, container, memoryCapacity, c.PodLevelResources, c.PodLevelResourcesFixKubeletQOSClass)
}

func oomScoreAdj(pod *corev1.Pod, container *corev1.Container, memoryCapacity int64, podLevel, fix bool) int {
	if pod == nil {
		return BestEffortOOMScoreAdj
	}
	if NodeCritical(pod) {
		return GuaranteedOOMScoreAdj
	}
	switch podClass(pod, podLevel, fix) {
	case guaranteed:
		return GuaranteedOOMScoreAdj
	case bestEffort:
		return BestEffortOOMScoreAdj
	}
	if memoryCapacity == 0 {
		return MaxBurstableOOMScoreAdj
	}

	var request int64
	if container != nil {
		request = memoryRequest(container)
	}
	var adj, extra int64
	if podLevel && podLevelRequestsSet(pod.Spec.Resources) {
		extra = unclaimedMemoryPerContainer(pod)
	}
	adj = 1000 - (1000*(request+extra))/memoryCapacity

	if container != nil && isSidecar(pod, container) {
		if least, ok := leastRegularMemoryRequest(pod); ok {
			if floor := 1000 - (1000*(least+extra))/memoryCapacity; adj > floor {
				adj = floor
			}
		}
	}

	if adj < MinBurstableOOMScoreAdj {
		return MinBurstableOOMScoreAdj
	}
	if adj == BestEffortOOMScoreAdj {
		return MaxBurstableOOMScoreAdj
	}
	return int(adj)
}

// memoryRequest is the container's memory request in bytes, rounded up.
func memoryRequest(c *corev1.Container) int64 {
	q := c.Resources.Requests[corev1.ResourceMemory]
	return q.Value()
}

// isSidecar reports whether the container is a restartable init container:
// restartPolicy Always and named among the pod's init containers.
//
// Upstream: isSidecarContainer in pkg/kubelet/qos/policy.go.
func isSidecar(pod *corev1.Pod, c *corev1.Container) bool {
	if c.RestartPolicy == nil || *c.RestartPolicy != corev1.ContainerRestartPolicyAlways {
		return false
	}
	for i := range pod.Spec.InitContainers {
		if pod.Spec.InitContainers[i].Name == c.Name {
			return true
		}
	}
	return false
}

// leastRegularMemoryRequest is the smallest memory request among the
// regular containers; ok is false when there are none.
//
// Upstream: minRegularContainerMemory in pkg/kubelet/qos/helpers.go.
func leastRegularMemoryRequest(pod *corev1.Pod) (least int64, ok bool) {
	for i := range pod.Spec.Containers {
		r := memoryRequest(&pod.Spec.Containers[i])
		if !ok || r < least {
			least, ok = r, true
		}
	}
	return least, ok
}

// unclaimedMemoryPerContainer is the pod-level memory request not covered
// by the containers' aggregate request, split evenly over all containers.
//
// Upstream: remainingPodMemReqPerContainer in pkg/kubelet/qos/helpers.go.
func unclaimedMemoryPerContainer(pod *corev1.Pod) int64 {
	podRequest := pod.Spec.Resources.Requests[corev1.ResourceMemory]
	if podRequest.IsZero() {
		return 0
	}
	n := int64(len(pod.Spec.Containers) + len(pod.Spec.InitContainers))
	if n == 0 {
		return 0
	}
	claimed, _ := aggregate(pod, corev1.ResourceMemory, requests)
	unclaimed := max(podRequest.Value()-claimed.Value(), 0)
	return unclaimed / n
}
