package qos

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// side selects requests or limits of a set of requirements.
type side bool

const (
	requests side = false
	limits   side = true
)

func (s side) of(r *corev1.ResourceRequirements) corev1.ResourceList {
	if s == limits {
		return r.Limits
	}
	return r.Requests
}

// amount is a quantity that may be absent. Upstream sums and maximums work
// on resource lists, where an absent resource differs from a zero one: the
// maximum of "absent" and -1 is -1.
type amount struct {
	q  resource.Quantity
	ok bool
}

// add adds q to a, copying q's storage so the pod is never written through
// a shared decimal.
func (a *amount) add(q resource.Quantity) {
	if !a.ok {
		a.q, a.ok = q.DeepCopy(), true
		return
	}
	a.q.Add(q)
}

// raise makes a the larger of a and b; an absent a takes b.
func (a *amount) raise(b amount) {
	if !b.ok {
		return
	}
	if !a.ok || b.q.Cmp(a.q) > 0 {
		a.q, a.ok = b.q.DeepCopy(), true
	}
}

// aggregate is the pod's need for one resource summed over its containers
// the way the scheduler and the kubelet count it for sidecars: regular and
// restartable init containers run together and add up; each plain init
// container runs alone next to the sidecars started before it; the pod needs
// the larger of the two phases.
//
// Upstream: AggregateContainerRequests / AggregateContainerLimits in
// k8s.io/component-helpers/resource/helpers.go (spec values, no status, no
// DRA).
func aggregate(pod *corev1.Pod, name corev1.ResourceName, of side) (resource.Quantity, bool) {
	var running amount
	for i := range pod.Spec.Containers {
		if q, ok := of.of(&pod.Spec.Containers[i].Resources)[name]; ok {
			running.add(q)
		}
	}
	var sidecars, initPeak amount
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		q, ok := of.of(&c.Resources)[name]
		if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			if ok {
				running.add(q)
				sidecars.add(q)
			}
			initPeak.raise(sidecars)
			continue
		}
		var phase amount
		if ok {
			phase.add(q)
		}
		if sidecars.ok {
			phase.add(sidecars.q)
		}
		initPeak.raise(phase)
	}
	running.raise(initPeak)
	return running.q, running.ok
}

// podTotal is the pod's request (or limit) of one resource as the kubelet
// sizes the pod cgroup: the container aggregate, replaced by a pod-level
// value when PodLevelResources applies, plus the pod overhead. Overhead is
// added to requests always, to limits only when the limit is non-zero.
//
// Upstream: PodRequests / PodLimits in k8s.io/component-helpers/resource.
func podTotal(pod *corev1.Pod, name corev1.ResourceName, of side, podLevel bool) amount {
	var a amount
	a.q, a.ok = aggregate(pod, name, of)
	if r := pod.Spec.Resources; podLevel && podLevelSupported(name) {
		// Pod-level requests replace the aggregate once any supported
		// resource is requested at pod level; pod-level limits once any is
		// requested or limited.
		applies := podLevelRequestsSet(r)
		if of == limits {
			applies = podLevelResourcesSet(r)
		}
		if applies {
			if q, ok := of.of(r)[name]; ok {
				a.q, a.ok = q.DeepCopy(), true
			}
		}
	}
	if q, ok := pod.Spec.Overhead[name]; ok {
		if of == requests {
			a.add(q)
		} else if a.ok && !a.q.IsZero() {
			a.q.Add(q)
		}
	}
	return a
}
