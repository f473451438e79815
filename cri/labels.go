package cri

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"maps"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/dump"
)

// The labels and annotations the kubelet puts on sandboxes and containers,
// by which it (and PLEG, and crictl users) find the pod of a runtime object.
//
// Upstream: k8s.io/kubelet/pkg/types/labels.go and
// pkg/kubelet/kuberuntime/labels.go.
const (
	PodNameLabel       = "io.kubernetes.pod.name"
	PodNamespaceLabel  = "io.kubernetes.pod.namespace"
	PodUIDLabel        = "io.kubernetes.pod.uid"
	ContainerNameLabel = "io.kubernetes.container.name"

	PodDeletionGracePeriodAnnotation          = "io.kubernetes.pod.deletionGracePeriod"
	PodTerminationGracePeriodAnnotation       = "io.kubernetes.pod.terminationGracePeriod"
	ContainerHashAnnotation                   = "io.kubernetes.container.hash"
	ContainerRestartCountAnnotation           = "io.kubernetes.container.restartCount"
	ContainerTerminationMessagePathAnnotation = "io.kubernetes.container.terminationMessagePath"
	// The spelling is upstream's.
	ContainerTerminationMessagePolicyAnnotation = "io.kubernetes.container.terminationMessagePolicy"
	ContainerPreStopHandlerAnnotation           = "io.kubernetes.container.preStopHandler"
	ContainerPortsAnnotation                    = "io.kubernetes.container.ports"
)

// SandboxLabels returns the labels of the pod's sandbox: the pod's own
// labels plus its name, namespace and uid (which win over pod labels of the
// same keys).
func SandboxLabels(pod *corev1.Pod) map[string]string {
	labels := make(map[string]string, len(pod.Labels)+3)
	maps.Copy(labels, pod.Labels)
	labels[PodNameLabel] = pod.Name
	labels[PodNamespaceLabel] = pod.Namespace
	labels[PodUIDLabel] = string(pod.UID)
	return labels
}

// SandboxAnnotations returns the annotations of the pod's sandbox: the pod's
// annotations, the same map (the kubelet does not copy it).
func SandboxAnnotations(pod *corev1.Pod) map[string]string { return pod.Annotations }

// ContainerLabels returns the labels of a container: only the pod's
// identity and the container name; pod labels stay on the sandbox.
func ContainerLabels(pod *corev1.Pod, container *corev1.Container) map[string]string {
	return map[string]string{
		PodNameLabel:       pod.Name,
		PodNamespaceLabel:  pod.Namespace,
		PodUIDLabel:        string(pod.UID),
		ContainerNameLabel: container.Name,
	}
}

// ContainerAnnotations returns the annotations of a container: extra (the
// device plugins' annotations, overridden by the kubelet's own), the
// container hash, restart count, termination message path and policy, the
// pod's grace periods when set, and the PreStop handler and ports as JSON
// when present.
func ContainerAnnotations(pod *corev1.Pod, container *corev1.Container, restartCount int, extra map[string]string) map[string]string {
	a := make(map[string]string, len(extra)+8)
	maps.Copy(a, extra)
	a[ContainerHashAnnotation] = strconv.FormatUint(HashContainer(container), 16)
	a[ContainerRestartCountAnnotation] = strconv.Itoa(restartCount)
	a[ContainerTerminationMessagePathAnnotation] = container.TerminationMessagePath
	a[ContainerTerminationMessagePolicyAnnotation] = string(container.TerminationMessagePolicy)
	if pod.DeletionGracePeriodSeconds != nil {
		a[PodDeletionGracePeriodAnnotation] = strconv.FormatInt(*pod.DeletionGracePeriodSeconds, 10)
	}
	if pod.Spec.TerminationGracePeriodSeconds != nil {
		a[PodTerminationGracePeriodAnnotation] = strconv.FormatInt(*pod.Spec.TerminationGracePeriodSeconds, 10)
	}
	if container.Lifecycle != nil && container.Lifecycle.PreStop != nil {
		if raw, err := json.Marshal(container.Lifecycle.PreStop); err == nil {
			a[ContainerPreStopHandlerAnnotation] = string(raw)
		}
	}
	if len(container.Ports) > 0 {
		if raw, err := json.Marshal(container.Ports); err == nil {
			a[ContainerPortsAnnotation] = string(raw)
		}
	}
	return a
}

// HashContainer returns the hash the kubelet stores in the
// io.kubernetes.container.hash annotation and compares to decide whether a
// running container still matches its spec. Only the name and the image
// count, so it survives in-place resizes. It is FNV-32a over the spew dump
// of the JSON of {"image": ..., "name": ...}, exactly as upstream computes
// it (HashContainer in pkg/kubelet/container/helpers.go, DeepHashObject in
// pkg/util/hash), so containers started by a kubelet keep their hash.
func HashContainer(container *corev1.Container) uint64 {
	raw, _ := json.Marshal(map[string]string{"name": container.Name, "image": container.Image})
	h := fnv.New32a()
	fmt.Fprintf(h, "%v", dump.ForHash(raw))
	return uint64(h.Sum32())
}
