package qos

import (
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// class is a QoS class as a small ordered value, so that classifying a pod
// compares integers rather than strings.
type class uint8

const (
	unknown class = iota
	bestEffort
	guaranteed
	burstable
)

func (c class) api() corev1.PodQOSClass {
	switch c {
	case guaranteed:
		return corev1.PodQOSGuaranteed
	case burstable:
		return corev1.PodQOSBurstable
	default:
		return corev1.PodQOSBestEffort
	}
}

// Class returns the pod's QoS class as the kubelet uses it: status.qosClass
// when it is set (the class is fixed when the pod is created and a resize
// does not change it), otherwise ComputeClass. A preset status.qosClass is
// returned as is, even when it is not one of the three classes. It uses
// DefaultConfig's feature gates. A nil pod is BestEffort.
//
// Upstream: GetPodQOS in pkg/apis/core/v1/helper/qos/qos.go.
func Class(pod *corev1.Pod) corev1.PodQOSClass {
	if pod != nil && pod.Status.QOSClass != "" {
		return pod.Status.QOSClass
	}
	return computeClass(pod, true, true).api()
}

// ComputeClass computes the pod's QoS class from its spec, ignoring
// status.qosClass, with DefaultConfig's feature gates.
//
// Only cpu and memory count; ephemeral-storage, extended resources and
// hugepages never change a container's class. A container is
//
//   - BestEffort when it requests and limits neither cpu nor memory (a
//     request or limit of 0 is the same as none);
//   - Guaranteed when cpu and memory each have a non-zero request equal to
//     its limit (by value: 1 equals 1000m);
//   - Burstable otherwise.
//
// Requests are compared as written. The API server copies a missing request
// from the limit, so a stored pod whose containers set only cpu and memory
// limits is Guaranteed; the same pod before defaulting, as a client builds
// it, is Burstable.
//
// The pod is Guaranteed when every container, init and sidecar containers
// included, is Guaranteed; BestEffort when every one is BestEffort (or there
// are none); Burstable otherwise.
//
// With the PodLevelResources gate, a pod-level spec.resources replaces the
// containers: the class is that of spec.resources alone. With
// PodLevelResourcesFixKubeletQOSClass (on in v1.37) this happens only when
// spec.resources sets cpu, memory or a hugepages-* resource; an empty
// `resources: {}` falls back to the containers. One consequence: a
// spec.resources that sets only hugepages decides the class and, having no
// cpu or memory, makes the pod BestEffort whatever its containers say.
//
// Upstream: ComputePodQOS in pkg/apis/core/v1/helper/qos/qos.go.
func ComputeClass(pod *corev1.Pod) corev1.PodQOSClass {
	return computeClass(pod, true, true).api()
}

// Class is the package-level Class with this configuration's feature gates.
func (c Config) Class(pod *corev1.Pod) corev1.PodQOSClass {
	if pod != nil && pod.Status.QOSClass != "" {
		return pod.Status.QOSClass
	}
	return computeClass(pod, c.PodLevelResources, c.PodLevelResourcesFixKubeletQOSClass).api()
}

// ComputeClass is the package-level ComputeClass with this configuration's
// feature gates.
func (c Config) ComputeClass(pod *corev1.Pod) corev1.PodQOSClass {
	return computeClass(pod, c.PodLevelResources, c.PodLevelResourcesFixKubeletQOSClass).api()
}

func podClass(pod *corev1.Pod, podLevel, fix bool) class {
	if pod == nil {
		return bestEffort
	}
	switch pod.Status.QOSClass {
	case "":
		return computeClass(pod, podLevel, fix)
	case corev1.PodQOSGuaranteed:
		return guaranteed
	case corev1.PodQOSBurstable:
		return burstable
	case corev1.PodQOSBestEffort:
		return bestEffort
	}
	// A preset class that is none of the three: each caller falls through
	// its own switch as the kubelet's code does.
	return unknown
}

func computeClass(pod *corev1.Pod, podLevel, fix bool) class {
	if pod == nil {
		return bestEffort
	}
	if r := pod.Spec.Resources; podLevel && r != nil && (!fix || podLevelResourcesSet(r)) {
		return requirementsClass(r)
	}
	var pc class
	for i := range pod.Spec.InitContainers {
		cc := requirementsClass(&pod.Spec.InitContainers[i].Resources)
		if cc == burstable || (pc != unknown && pc != cc) {
			return burstable
		}
		pc = cc
	}
	for i := range pod.Spec.Containers {
		cc := requirementsClass(&pod.Spec.Containers[i].Resources)
		if cc == burstable || (pc != unknown && pc != cc) {
			return burstable
		}
		pc = cc
	}
	if pc == unknown {
		return bestEffort
	}
	return pc
}

// requirementsClass is the class of one set of requirements: each of cpu
// and memory has a shape (request != limit is Burstable, both zero or
// absent BestEffort, equal and non-zero Guaranteed), and the set is that
// shape when both agree, Burstable when they do not. This runs for every
// container of every pod, so it reads each value once and stops early.
func requirementsClass(r *corev1.ResourceRequirements) class {
	if len(r.Requests) == 0 && len(r.Limits) == 0 {
		return bestEffort
	}
	cpu := r.Requests[corev1.ResourceCPU]
	if lim := r.Limits[corev1.ResourceCPU]; cpu.Cmp(lim) != 0 {
		return burstable
	}
	mem := r.Requests[corev1.ResourceMemory]
	if lim := r.Limits[corev1.ResourceMemory]; mem.Cmp(lim) != 0 {
		return burstable
	}
	switch cpuZero := cpu.IsZero(); {
	case cpuZero != mem.IsZero():
		return burstable
	case cpuZero:
		return bestEffort
	}
	return guaranteed
}

// podLevelSupported reports whether a resource may be set at pod level:
// cpu, memory and hugepages of any size.
//
// Upstream: IsSupportedPodLevelResource in
// k8s.io/component-helpers/resource/helpers.go.
func podLevelSupported(name corev1.ResourceName) bool {
	return name == corev1.ResourceCPU || name == corev1.ResourceMemory ||
		strings.HasPrefix(string(name), corev1.ResourceHugePagesPrefix)
}

// podLevelResourcesSet reports whether spec.resources requests or limits a
// resource that may be set at pod level.
//
// Upstream: IsPodLevelResourcesSet in k8s.io/component-helpers/resource.
func podLevelResourcesSet(r *corev1.ResourceRequirements) bool {
	if r == nil {
		return false
	}
	for name := range r.Requests {
		if podLevelSupported(name) {
			return true
		}
	}
	for name := range r.Limits {
		if podLevelSupported(name) {
			return true
		}
	}
	return false
}

// podLevelRequestsSet reports whether spec.resources requests a resource
// that may be set at pod level.
//
// Upstream: IsPodLevelRequestsSet in k8s.io/component-helpers/resource.
func podLevelRequestsSet(r *corev1.ResourceRequirements) bool {
	if r == nil {
		return false
	}
	for name := range r.Requests {
		if podLevelSupported(name) {
			return true
		}
	}
	return false
}
