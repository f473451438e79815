package qos

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Builders for the table tests: short enough that a case reads as the pod
// it describes.

// list parses name=quantity pairs: list("cpu", "100m", "memory", "1Gi").
func list(kv ...string) corev1.ResourceList {
	l := corev1.ResourceList{}
	for i := 0; i+1 < len(kv); i += 2 {
		l[corev1.ResourceName(kv[i])] = resource.MustParse(kv[i+1])
	}
	return l
}

// cm is a cpu/memory list; an empty string leaves the resource out.
func cm(cpu, memory string) corev1.ResourceList {
	l := corev1.ResourceList{}
	if cpu != "" {
		l[corev1.ResourceCPU] = resource.MustParse(cpu)
	}
	if memory != "" {
		l[corev1.ResourceMemory] = resource.MustParse(memory)
	}
	return l
}

func req(requests, limits corev1.ResourceList) corev1.ResourceRequirements {
	return corev1.ResourceRequirements{Requests: requests, Limits: limits}
}

func ctr(name string, r corev1.ResourceRequirements) corev1.Container {
	return corev1.Container{Name: name, Resources: r}
}

func sidecar(name string, r corev1.ResourceRequirements) corev1.Container {
	always := corev1.ContainerRestartPolicyAlways
	return corev1.Container{Name: name, Resources: r, RestartPolicy: &always}
}

var (
	guaranteedReq = req(cm("100m", "100Mi"), cm("100m", "100Mi"))
	burstableReq  = req(cm("100m", "100Mi"), cm("200m", "200Mi"))
	bestEffortReq = corev1.ResourceRequirements{}
)

type podOpt func(*corev1.Pod)

func pod(containers []corev1.Container, opts ...podOpt) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "0b5f6bb4-2f0c-4b4f-a2f4-8d8bd2c1fb8a"},
		Spec:       corev1.PodSpec{Containers: containers},
	}
	for _, o := range opts {
		o(p)
	}
	return p
}

func withInit(cs ...corev1.Container) podOpt {
	return func(p *corev1.Pod) { p.Spec.InitContainers = append(p.Spec.InitContainers, cs...) }
}

func withPodResources(r corev1.ResourceRequirements) podOpt {
	return func(p *corev1.Pod) { p.Spec.Resources = &r }
}

func withStatusClass(c corev1.PodQOSClass) podOpt {
	return func(p *corev1.Pod) { p.Status.QOSClass = c }
}

func withAnnotation(k, v string) podOpt {
	return func(p *corev1.Pod) {
		if p.Annotations == nil {
			p.Annotations = map[string]string{}
		}
		p.Annotations[k] = v
	}
}

func withPriority(class string, prio *int32) podOpt {
	return func(p *corev1.Pod) { p.Spec.PriorityClassName, p.Spec.Priority = class, prio }
}

func withOverhead(l corev1.ResourceList) podOpt {
	return func(p *corev1.Pod) { p.Spec.Overhead = l }
}

func withUID(uid string) podOpt {
	return func(p *corev1.Pod) { p.UID = types.UID(uid) }
}

func ptr[T any](v T) *T { return &v }
