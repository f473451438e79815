package staticpod

import corev1 "k8s.io/api/core/v1"

// Source names, as the kubelet writes them into the
// kubernetes.io/config.source annotation (pkg/kubelet/types/pod_update.go).
const (
	SourceFile = "file" // a manifest directory or file
	SourceHTTP = "http" // a manifest URL
	SourceAPI  = "api"  // the apiserver: not a static pod
)

// Annotations the kubelet reads and writes on static and mirror pods.
const (
	// AnnotationHash is the hash of the manifest; it equals the pod's UID.
	AnnotationHash = "kubernetes.io/config.hash"
	// AnnotationSource names the source the pod came from.
	AnnotationSource = "kubernetes.io/config.source"
	// AnnotationSeen is when the Merger first saw the pod (RFC 3339).
	AnnotationSeen = "kubernetes.io/config.seen"
	// AnnotationMirror marks a mirror pod; its value is the static pod's hash.
	AnnotationMirror = corev1.MirrorPodAnnotationKey
)

// SystemCriticalPriority is the lowest priority of a critical pod
// (pkg/apis/scheduling).
const SystemCriticalPriority int32 = 2_000_000_000

// IsStatic reports whether the pod came from a source other than the
// apiserver: its kubernetes.io/config.source annotation is present and is
// not "api" (an empty value counts as static, as upstream).
//
// Upstream: IsStaticPod in pkg/kubelet/types/pod_update.go.
func IsStatic(pod *corev1.Pod) bool {
	if pod == nil {
		return false
	}
	src, ok := pod.Annotations[AnnotationSource]
	return ok && src != SourceAPI
}

// IsMirror reports whether the pod is a mirror pod: it carries the
// kubernetes.io/config.mirror annotation, whatever its value.
//
// Upstream: IsMirrorPod in pkg/kubelet/types/pod_update.go.
func IsMirror(pod *corev1.Pod) bool {
	if pod == nil {
		return false
	}
	_, ok := pod.Annotations[AnnotationMirror]
	return ok
}

// Critical reports whether the kubelet treats the pod as critical: static
// and mirror pods always are, other pods when their resolved priority is at
// least SystemCriticalPriority. A critical pod is never chosen for eviction
// and is admitted even under node pressure; this is why control-plane pods
// run as static pods. Other packages (eviction, admission) call it.
//
// Upstream: IsCriticalPod in pkg/kubelet/types/pod_update.go.
func Critical(pod *corev1.Pod) bool {
	if pod == nil {
		return false
	}
	if IsStatic(pod) || IsMirror(pod) {
		return true
	}
	return pod.Spec.Priority != nil && *pod.Spec.Priority >= SystemCriticalPriority
}
