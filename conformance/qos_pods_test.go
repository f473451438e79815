package conformance

import (
	"fmt"
	"math/rand/v2"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// podGen makes random pods for the differential tests: regular, init and
// sidecar containers, requests and limits in every combination (limits
// only, requests only, equal, different, explicit zeros), many spellings of
// one quantity, hugepages, pod-level resources ({} included), overhead,
// preset status classes, static, mirror and critical pods, and UIDs the
// kubelet cannot turn into cgroup names.
type podGen struct{ r *rand.Rand }

func newPodGen(seed uint64) *podGen {
	return &podGen{r: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

func (g *podGen) chance(p float64) bool { return g.r.Float64() < p }

func pickOne[T any](g *podGen, from ...T) T { return from[g.r.IntN(len(from))] }

var (
	cpuQuantities = []string{"1m", "2m", "5m", "10m", "11m", "100m", "250m", "500m", "999m", "1", "1000m", "1.5", "2", "4", "7500m",
		"0.5m", "0.0001", "300", "1k"}
	memQuantities = []string{"1", "1500m", "1Ki", "1Mi", "64Mi", "100Mi", "128M", "256Mi", "512Mi", "1G", "1Gi", "1073741824",
		"2Gi", "3Gi", "7.5Gi", "16Gi", "1Ti", "123456789"}
	hugePageNames = [][]corev1.ResourceName{{"hugepages-2Mi", "hugepages-2048Ki"}, {"hugepages-1Gi"}, {"hugepages-64Ki"}}
)

func (g *podGen) quantity(name corev1.ResourceName) resource.Quantity {
	switch {
	case g.chance(0.04):
		return resource.MustParse(pickOne(g, "0", "0m", "0Gi"))
	case g.chance(0.02):
		// Invalid, but both sides must still agree.
		return resource.MustParse(pickOne(g, "-1", "-100m", "-1Gi"))
	case g.chance(0.01):
		return resource.MustParse("123456789012345678901234567890")
	}
	switch name {
	case corev1.ResourceCPU:
		return resource.MustParse(pickOne(g, cpuQuantities...))
	case corev1.ResourceMemory:
		return resource.MustParse(pickOne(g, memQuantities...))
	case corev1.ResourceEphemeralStorage:
		return resource.MustParse(pickOne(g, "1Gi", "10Gi"))
	}
	// Hugepages: a whole number of pages.
	return resource.MustParse(pickOne(g, "2Mi", "4Mi", "64Mi", "1Gi", "2Gi"))
}

// requirements picks a shape for cpu and memory independently, then maybe
// adds ephemeral-storage and hugepages (one spelling per page size).
func (g *podGen) requirements() corev1.ResourceRequirements {
	var r corev1.ResourceRequirements
	set := func(l *corev1.ResourceList, name corev1.ResourceName, q resource.Quantity) {
		if *l == nil {
			*l = corev1.ResourceList{}
		}
		(*l)[name] = q
	}
	for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		switch g.r.IntN(7) {
		case 0: // absent
		case 1: // request only
			set(&r.Requests, name, g.quantity(name))
		case 2: // limit only
			set(&r.Limits, name, g.quantity(name))
		case 3, 4: // equal, possibly spelled differently
			q := g.quantity(name)
			set(&r.Requests, name, q)
			set(&r.Limits, name, respell(g, q))
		case 5: // both, independent
			set(&r.Requests, name, g.quantity(name))
			set(&r.Limits, name, g.quantity(name))
		case 6: // explicit zeros
			set(&r.Requests, name, resource.MustParse("0"))
			if g.chance(0.5) {
				set(&r.Limits, name, resource.MustParse("0"))
			}
		}
	}
	if g.chance(0.1) {
		set(&r.Requests, corev1.ResourceEphemeralStorage, g.quantity(corev1.ResourceEphemeralStorage))
	}
	if g.chance(0.15) {
		names := pickOne(g, hugePageNames...)
		q := g.quantity("hugepages")
		if g.chance(0.8) {
			set(&r.Requests, pickOne(g, names...), q)
		}
		set(&r.Limits, pickOne(g, names...), q)
	}
	if g.chance(0.05) {
		r = corev1.ResourceRequirements{Requests: corev1.ResourceList{}, Limits: corev1.ResourceList{}}
	}
	return r
}

// respell writes q differently without changing its value, sometimes.
func respell(g *podGen, q resource.Quantity) resource.Quantity {
	if !g.chance(0.3) {
		return q.DeepCopy()
	}
	if g.chance(0.5) {
		return *resource.NewMilliQuantity(q.MilliValue(), resource.DecimalSI)
	}
	return *resource.NewQuantity(q.Value(), resource.BinarySI)
}

func (g *podGen) pod(i int) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{
		Name:      fmt.Sprintf("pod-%d", i),
		Namespace: "default",
		UID:       types.UID(fmt.Sprintf("%08x-%04x-%04x-%04x-%012x", g.r.Uint32(), g.r.IntN(1<<16), g.r.IntN(1<<16), g.r.IntN(1<<16), g.r.Uint64()&(1<<48-1))),
	}}
	if g.chance(0.02) {
		p.UID = types.UID(pickOne(g, "with_underscore", "with/slash", ""))
	}
	always := corev1.ContainerRestartPolicyAlways
	for j := range g.r.IntN(4) {
		c := corev1.Container{Name: fmt.Sprintf("init-%d", j), Resources: g.requirements()}
		if g.chance(0.4) {
			c.RestartPolicy = &always
		}
		p.Spec.InitContainers = append(p.Spec.InitContainers, c)
	}
	n := 1 + g.r.IntN(5)
	if g.chance(0.03) {
		n = 0
	}
	for j := range n {
		p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: fmt.Sprintf("c-%d", j), Resources: g.requirements()})
	}
	if n == 0 {
		// A sidecar with no regular container makes upstream index an
		// empty slice; keep those pods out of the differential run.
		for j := range p.Spec.InitContainers {
			p.Spec.InitContainers[j].RestartPolicy = nil
		}
	}
	switch {
	case g.chance(0.08):
		p.Spec.Resources = &corev1.ResourceRequirements{}
	case g.chance(0.35):
		r := g.requirements()
		p.Spec.Resources = &r
	}
	if g.chance(0.15) {
		p.Spec.Overhead = corev1.ResourceList{
			corev1.ResourceCPU:    resource.MustParse(pickOne(g, "10m", "250m")),
			corev1.ResourceMemory: resource.MustParse(pickOne(g, "20Mi", "120Mi")),
		}
	}
	if g.chance(0.1) {
		p.Status.QOSClass = pickOne(g, corev1.PodQOSGuaranteed, corev1.PodQOSBurstable, corev1.PodQOSBestEffort)
	}
	switch {
	case g.chance(0.05):
		p.Annotations = map[string]string{"kubernetes.io/config.source": pickOne(g, "file", "http", "api", "")}
	case g.chance(0.03):
		p.Annotations = map[string]string{corev1.MirrorPodAnnotationKey: "mirror"}
	}
	if g.chance(0.1) {
		p.Spec.PriorityClassName = pickOne(g, "system-node-critical", "system-cluster-critical", "high")
		if g.chance(0.7) {
			p.Spec.Priority = new(pickOne[int32](g, 0, 1000, 2000000000, 2000001000))
		}
	}
	return p
}

// allContainers lists init containers then regular ones, by pointer.
func allContainers(p *corev1.Pod) []*corev1.Container {
	var out []*corev1.Container
	for i := range p.Spec.InitContainers {
		out = append(out, &p.Spec.InitContainers[i])
	}
	for i := range p.Spec.Containers {
		out = append(out, &p.Spec.Containers[i])
	}
	return out
}
