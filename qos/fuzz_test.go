package qos

import (
	"errors"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/types"
)

// The seed corpus in testdata/fuzz holds, for each target, one input per
// kind of pod fuzzing reached (class, sidecars, pod-level resources, preset
// status, node-critical), and FuzzResources/049129211f4c2401, a memory
// request of 2^63-1 bytes whose 1000*request wraps as upstream's does.

// fuzzPod decodes arbitrary bytes into a pod: init, sidecar and regular
// containers, pod-level resources, overhead, preset status, static and
// mirror annotations, priorities and odd UIDs. Every input decodes to some
// pod; quantities come from a table of edge cases or from raw bytes, so
// negative, sub-milli and arbitrary-precision values all occur.
func fuzzPod(data []byte) *corev1.Pod {
	r := &fuzzReader{data: data}
	p := &corev1.Pod{}
	p.Name, p.Namespace = "fuzz", "ns"
	p.UID = types.UID(pick(r, []string{"0b5f6bb4-2f0c-4b4f-a2f4-8d8bd2c1fb8a", "", "a_b", "x/y", "pod-1"}))
	for range r.next() % 4 {
		p.Spec.InitContainers = append(p.Spec.InitContainers, r.container(r.next()%3 == 0))
	}
	for range r.next() % 5 {
		p.Spec.Containers = append(p.Spec.Containers, r.container(r.next()%8 == 0))
	}
	switch r.next() % 4 {
	case 1:
		p.Spec.Resources = &corev1.ResourceRequirements{}
	case 2, 3:
		p.Spec.Resources = &corev1.ResourceRequirements{Requests: r.list(), Limits: r.list()}
	}
	if r.next()%4 == 0 {
		p.Spec.Overhead = r.list()
	}
	p.Status.QOSClass = corev1.PodQOSClass(pick(r, []string{"", "", "", "Guaranteed", "Burstable", "BestEffort", "Platinum"}))
	switch r.next() % 6 {
	case 1:
		p.Annotations = map[string]string{ConfigSourceAnnotation: pick(r, []string{"file", "http", "api", ""})}
	case 2:
		p.Annotations = map[string]string{ConfigMirrorAnnotation: "x"}
	}
	switch r.next() % 4 {
	case 1:
		p.Spec.Priority = ptr(SystemCriticalPriority)
	case 2:
		p.Spec.Priority = ptr(int32(r.int64()))
	}
	if r.next()%2 == 0 {
		p.Spec.PriorityClassName = SystemNodeCritical
	}
	return p
}

type fuzzReader struct{ data []byte }

func (r *fuzzReader) next() byte {
	if len(r.data) == 0 {
		return 0
	}
	b := r.data[0]
	r.data = r.data[1:]
	return b
}

func (r *fuzzReader) int64() int64 {
	var v uint64
	for range 8 {
		v = v<<8 | uint64(r.next())
	}
	return int64(v)
}

func pick[T any](r *fuzzReader, from []T) T { return from[int(r.next())%len(from)] }

var (
	fuzzNames = []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory, corev1.ResourceCPU, corev1.ResourceMemory,
		corev1.ResourceEphemeralStorage, "hugepages-2Mi", "hugepages-1Gi", "hugepages-2048Ki", "hugepages-bad", "example.com/gpu"}
	fuzzQuantities = []string{"0", "1m", "100m", "250m", "1", "2", "0.5m", "1500m", "64Mi", "100Mi", "1Gi", "2Gi", "1G",
		"-1", "-100m", "1e3", "9223372036854775807", "123456789012345678901234567890", "0.000000001", "1k"}
)

func (r *fuzzReader) quantity() resource.Quantity {
	if r.next()%2 == 0 {
		return resource.MustParse(pick(r, fuzzQuantities))
	}
	// A raw value at a decimal scale from nano to exa.
	v := int64(int16(uint16(r.next())<<8 | uint16(r.next())))
	return *resource.NewScaledQuantity(v, resource.Scale(int(r.next()%28)-9))
}

func (r *fuzzReader) list() corev1.ResourceList {
	n := r.next() % 5
	if n == 0 {
		return nil
	}
	l := corev1.ResourceList{}
	for range n {
		l[pick(r, fuzzNames)] = r.quantity()
	}
	return l
}

func (r *fuzzReader) container(restartAlways bool) corev1.Container {
	c := corev1.Container{Name: pick(r, []string{"a", "b", "c", "s", "i"})}
	c.Resources = corev1.ResourceRequirements{Requests: r.list(), Limits: r.list()}
	if restartAlways {
		always := corev1.ContainerRestartPolicyAlways
		c.RestartPolicy = &always
	}
	return c
}

// fuzzConfigs are the gate combinations and node settings every fuzzed pod
// goes through.
func fuzzConfigs() []Config {
	var out []Config
	for _, plr := range []bool{true, false} {
		for _, fix := range []bool{true, false} {
			c := DefaultConfig()
			c.PodLevelResources, c.PodLevelResourcesFixKubeletQOSClass = plr, fix
			out = append(out, c)
		}
	}
	odd := DefaultConfig()
	odd.CPUCFSQuota = false
	odd.CgroupDriver = Systemd
	odd.CgroupRoot = "/node-a"
	odd.HugePageSizes = []string{"2MB", "1GB"}
	odd.PodPidsLimit = 100
	return append(out, odd)
}

// FuzzClass checks ComputeClass against a second, set-based reading of the
// rules, and the class invariants: Guaranteed means every container (or the
// deciding pod level) has equal non-zero cpu and memory requests and
// limits; BestEffort means none has a non-zero cpu or memory value.
func FuzzClass(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15})
	f.Add([]byte("\x00\x00\x01\x02\x00\x00\x0a\x02\x00\x01\x02\x02\x00\x01\x03\x00\x01\x02\x00\x03"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p := fuzzPod(data)
		before := p.DeepCopy()
		for _, cfg := range fuzzConfigs() {
			got := cfg.ComputeClass(p)
			if want := referenceClass(p, cfg); got != want {
				t.Fatalf("ComputeClass = %s, reference %s (gates %v/%v)", got, want, cfg.PodLevelResources, cfg.PodLevelResourcesFixKubeletQOSClass)
			}
			if p.Status.QOSClass == "" {
				if c := cfg.Class(p); c != got {
					t.Fatalf("Class = %s without a status, ComputeClass = %s", c, got)
				}
			} else if c := cfg.Class(p); c != p.Status.QOSClass {
				t.Fatalf("Class = %s, status.qosClass %s", c, p.Status.QOSClass)
			}
			checkClassInvariants(t, p, cfg, got)
		}
		if !equalPods(before, p) {
			t.Fatal("classifying modified the pod")
		}
	})
}

func checkClassInvariants(t *testing.T, p *corev1.Pod, cfg Config, got corev1.PodQOSClass) {
	t.Helper()
	var all []corev1.ResourceRequirements
	if r := p.Spec.Resources; cfg.PodLevelResources && r != nil && (!cfg.PodLevelResourcesFixKubeletQOSClass || podLevelResourcesSet(r)) {
		all = []corev1.ResourceRequirements{*r}
	} else {
		for _, c := range append(append([]corev1.Container{}, p.Spec.InitContainers...), p.Spec.Containers...) {
			all = append(all, c.Resources)
		}
	}
	for _, r := range all {
		for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			req, lim := r.Requests[name], r.Limits[name]
			switch got {
			case corev1.PodQOSGuaranteed:
				if req.IsZero() || req.Cmp(lim) != 0 {
					t.Fatalf("Guaranteed, but %s request %s limit %s", name, req.String(), lim.String())
				}
			case corev1.PodQOSBestEffort:
				if !req.IsZero() || !lim.IsZero() {
					t.Fatalf("BestEffort, but %s request %s limit %s", name, req.String(), lim.String())
				}
			case corev1.PodQOSBurstable:
			default:
				t.Fatalf("class %q is none of the three", got)
			}
		}
	}
}

// referenceClass reads the rules of pkg/apis/core/v1/helper/qos/qos.go the
// long way: collect the shape of every resource of every set of
// requirements, then decide on the set of shapes.
func referenceClass(p *corev1.Pod, cfg Config) corev1.PodQOSClass {
	var sets []corev1.ResourceRequirements
	decided := false
	if r := p.Spec.Resources; cfg.PodLevelResources && r != nil {
		supported := false
		for n := range r.Requests {
			supported = supported || n == "cpu" || n == "memory" || strings.HasPrefix(string(n), "hugepages-")
		}
		for n := range r.Limits {
			supported = supported || n == "cpu" || n == "memory" || strings.HasPrefix(string(n), "hugepages-")
		}
		if !cfg.PodLevelResourcesFixKubeletQOSClass || supported {
			sets, decided = []corev1.ResourceRequirements{*r}, true
		}
	}
	if !decided {
		for _, c := range p.Spec.InitContainers {
			sets = append(sets, c.Resources)
		}
		for _, c := range p.Spec.Containers {
			sets = append(sets, c.Resources)
		}
	}
	classes := map[corev1.PodQOSClass]bool{}
	for _, r := range sets {
		shapes := map[corev1.PodQOSClass]bool{}
		if len(r.Requests)+len(r.Limits) > 0 {
			for _, n := range []corev1.ResourceName{"cpu", "memory"} {
				req, lim := r.Requests[n], r.Limits[n]
				switch {
				case req.Cmp(lim) != 0:
					shapes[corev1.PodQOSBurstable] = true
				case req.IsZero():
					shapes[corev1.PodQOSBestEffort] = true
				default:
					shapes[corev1.PodQOSGuaranteed] = true
				}
			}
		} else {
			shapes[corev1.PodQOSBestEffort] = true
		}
		if len(shapes) > 1 || shapes[corev1.PodQOSBurstable] {
			return corev1.PodQOSBurstable
		}
		for s := range shapes {
			classes[s] = true
		}
	}
	switch {
	case len(classes) > 1:
		return corev1.PodQOSBurstable
	case classes[corev1.PodQOSGuaranteed]:
		return corev1.PodQOSGuaranteed
	}
	return corev1.PodQOSBestEffort
}

// FuzzResources runs every computation on arbitrary pods: none may panic
// or modify the pod, and each result stays in its documented range.
func FuzzResources(f *testing.F) {
	f.Add([]byte{}, int64(4<<30))
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}, int64(0))
	f.Add([]byte("\x00\x00\x03\x01\x02\x03\x04\x02\x00\x01\x09\x02\x01\x00\x0a\x01\x00\x02\x02"), int64(1))
	f.Fuzz(func(t *testing.T, data []byte, capacity int64) {
		p := fuzzPod(data)
		before := p.DeepCopy()
		// The policy's range holds for valid pods; negative quantities and
		// ones big enough to overflow 1000*request wrap, as upstream's do.
		sane := allSane(p)
		for _, cfg := range fuzzConfigs() {
			class := cfg.Class(p)
			var containers []*corev1.Container
			for i := range p.Spec.InitContainers {
				containers = append(containers, &p.Spec.InitContainers[i])
			}
			for i := range p.Spec.Containers {
				containers = append(containers, &p.Spec.Containers[i])
			}
			for _, c := range containers {
				adj := cfg.OOMScoreAdj(p, c, capacity)
				if sane && capacity > 0 && adj != GuaranteedOOMScoreAdj && adj != BestEffortOOMScoreAdj &&
					(adj < MinBurstableOOMScoreAdj || adj > MaxBurstableOOMScoreAdj) {
					t.Fatalf("OOMScoreAdj = %d: outside the policy's values", adj)
				}
				if class == corev1.PodQOSGuaranteed && adj != GuaranteedOOMScoreAdj {
					t.Fatalf("Guaranteed pod, OOMScoreAdj = %d", adj)
				}
				r := cfg.ContainerResources(p, c)
				if s := *r.CPU.Shares; s < MinShares || s > MaxShares {
					t.Fatalf("container shares %d out of range", s)
				}
				if (r.CPU.Period != nil) != cfg.CPUCFSQuota || (r.CPU.Quota != nil && !cfg.CPUCFSQuota) {
					t.Fatalf("container quota %v period %v with CPUCFSQuota=%v", r.CPU.Quota, r.CPU.Period, cfg.CPUCFSQuota)
				}
				if len(r.HugepageLimits) != len(cfg.HugePageSizes) {
					t.Fatalf("container hugepage limits %v for machine sizes %v", r.HugepageLimits, cfg.HugePageSizes)
				}
			}
			r := cfg.PodResources(p)
			if s := *r.CPU.Shares; s < MinShares || s > MaxShares {
				t.Fatalf("pod shares %d out of range", s)
			}
			if class == corev1.PodQOSGuaranteed && (r.Memory == nil || r.CPU.Quota == nil) {
				t.Fatalf("Guaranteed pod without memory limit or quota: %+v", r)
			}
			if class == corev1.PodQOSBestEffort && (r.Memory != nil || r.CPU.Quota != nil || *r.CPU.Shares != MinShares) {
				t.Fatalf("BestEffort pod with limits: %+v", r)
			}
			parent, err := cfg.CgroupParent(p)
			if err != nil && !errors.Is(err, ErrCgroupName) {
				t.Fatalf("CgroupParent error %v does not wrap ErrCgroupName", err)
			}
			if err == nil && !strings.HasPrefix(parent, "/") {
				t.Fatalf("CgroupParent = %q, not absolute", parent)
			}
		}
		if !equalPods(before, p) {
			t.Fatal("computing resources modified the pod")
		}
	})
}

func allSane(p *corev1.Pod) bool {
	ok := true
	check := func(l corev1.ResourceList) {
		for _, q := range l {
			ok = ok && q.Sign() >= 0 && q.CmpInt64(1<<50) < 0
		}
	}
	for _, c := range append(append([]corev1.Container{}, p.Spec.InitContainers...), p.Spec.Containers...) {
		check(c.Resources.Requests)
		check(c.Resources.Limits)
	}
	if p.Spec.Resources != nil {
		check(p.Spec.Resources.Requests)
		check(p.Spec.Resources.Limits)
	}
	check(p.Spec.Overhead)
	return ok
}
