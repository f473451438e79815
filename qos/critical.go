package qos

import corev1 "k8s.io/api/core/v1"

// Priority and annotations by which the kubelet recognises critical pods.
const (
	// SystemCriticalPriority is the lowest priority of a critical pod:
	// system-cluster-critical and system-node-critical are at or above it.
	SystemCriticalPriority int32 = 2_000_000_000
	// SystemNodeCritical is the priority class name of node-critical pods.
	SystemNodeCritical = "system-node-critical"
	// ConfigSourceAnnotation names the source of a pod the kubelet read
	// itself ("file", "http"; "api" for the apiserver).
	ConfigSourceAnnotation = "kubernetes.io/config.source"
	// ConfigMirrorAnnotation marks a mirror pod of a static pod.
	ConfigMirrorAnnotation = corev1.MirrorPodAnnotationKey
)

// Critical reports whether the kubelet treats the pod as critical: a static
// pod (its kubernetes.io/config.source annotation is present and is not
// "api", an empty value included), a mirror pod, or a pod whose resolved
// spec.priority is at least SystemCriticalPriority. Eviction never picks
// critical pods.
//
// Upstream: IsCriticalPod in pkg/kubelet/types/pod_update.go.
func Critical(pod *corev1.Pod) bool {
	if pod == nil {
		return false
	}
	if src, ok := pod.Annotations[ConfigSourceAnnotation]; ok && src != "api" {
		return true
	}
	if _, ok := pod.Annotations[ConfigMirrorAnnotation]; ok {
		return true
	}
	return pod.Spec.Priority != nil && *pod.Spec.Priority >= SystemCriticalPriority
}

// NodeCritical reports whether the pod is critical and asks for the
// system-node-critical priority class by name. Both are needed: a static pod
// with another class, or a pod of that class whose priority was not
// resolved, is not node-critical. Node-critical containers get the
// Guaranteed OOM score whatever their class.
//
// Upstream: IsNodeCriticalPod in pkg/kubelet/types/pod_update.go.
func NodeCritical(pod *corev1.Pod) bool {
	// The class name is the cheap test; check it first.
	return pod != nil && pod.Spec.PriorityClassName == SystemNodeCritical && Critical(pod)
}
