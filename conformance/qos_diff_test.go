package conformance

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	libcontainercgroups "github.com/opencontainers/cgroups"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	corev1 "k8s.io/api/core/v1"
	utilfeature "k8s.io/apiserver/pkg/util/feature"
	featuregatetesting "k8s.io/component-base/featuregate/testing"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"
	v1helper "k8s.io/kubernetes/pkg/apis/core/v1/helper"
	upstreamqos "k8s.io/kubernetes/pkg/apis/core/v1/helper/qos"
	"k8s.io/kubernetes/pkg/features"
	kubeletconfig "k8s.io/kubernetes/pkg/kubelet/apis/config"
	"k8s.io/kubernetes/pkg/kubelet/cm"
	kubeletqos "k8s.io/kubernetes/pkg/kubelet/qos"

	"github.com/kube-nodekit/nodekit/qos"
)

// The differential tests run thousands of random pods (qos_pods_test.go)
// through nodekit's qos and through the code of k8s.io/kubernetes v1.37.2,
// under each combination of the feature gates qos models, and require the
// same answer every time. Upstream gets its own copy of each pod: its
// PodLimits adds the overhead in place to a pod-level limit held as an
// arbitrary-precision decimal, changing the pod it was given.

const diffPods = 3000

// gateCombos are the PodLevelResources / PodLevelResourcesFixKubeletQOSClass
// settings compared; the fix depends on PodLevelResources, so with that off
// only one combination exists.
var gateCombos = []struct{ plr, fix bool }{{true, true}, {true, false}, {false, false}}

// withGates sets the upstream feature gates for the test and returns the
// matching nodekit configuration.
func withGates(t *testing.T, plr, fix bool) qos.Config {
	t.Helper()
	featuregatetesting.SetFeatureGatesDuringTest(t, utilfeature.DefaultFeatureGate, featuregatetesting.FeatureOverrides{
		features.PodLevelResources:                   plr,
		features.PodLevelResourcesFixKubeletQOSClass: fix,
	})
	cfg := qos.DefaultConfig()
	cfg.PodLevelResources, cfg.PodLevelResourcesFixKubeletQOSClass = plr, fix
	return cfg
}

func forEachGateCombo(t *testing.T, f func(t *testing.T, cfg qos.Config, seed uint64)) {
	for i, g := range gateCombos {
		t.Run(fmt.Sprintf("PodLevelResources=%v/FixKubeletQOSClass=%v", g.plr, g.fix), func(t *testing.T) {
			f(t, withGates(t, g.plr, g.fix), uint64(1000+i))
		})
	}
}

// describe prints a pod compactly for failure messages.
func describe(p *corev1.Pod) string {
	var b strings.Builder
	fmt.Fprintf(&b, "pod %s uid=%q status=%q annotations=%v priority=%q/%v overhead=%v resources=",
		p.Name, p.UID, p.Status.QOSClass, p.Annotations, p.Spec.PriorityClassName, p.Spec.Priority, p.Spec.Overhead)
	if p.Spec.Resources == nil {
		b.WriteString("nil")
	} else {
		fmt.Fprintf(&b, "{req %v lim %v}", p.Spec.Resources.Requests, p.Spec.Resources.Limits)
	}
	for _, c := range allContainers(p) {
		fmt.Fprintf(&b, "\n  %s restart=%v req=%v lim=%v", c.Name, c.RestartPolicy != nil, c.Resources.Requests, c.Resources.Limits)
	}
	return b.String()
}

// TestQOSClassMatchesUpstream: qos.Class and ComputeClass against GetPodQOS
// and ComputePodQOS of pkg/apis/core/v1/helper/qos/qos.go.
func TestQOSClassMatchesUpstream(t *testing.T) {
	forEachGateCombo(t, func(t *testing.T, cfg qos.Config, seed uint64) {
		g := newPodGen(seed)
		seen := map[corev1.PodQOSClass]int{}
		for i := range diffPods {
			p := g.pod(i)
			want := upstreamqos.GetPodQOS(p.DeepCopy())
			seen[want]++
			if got := cfg.Class(p); got != want {
				t.Fatalf("Class = %s, upstream GetPodQOS = %s\n%s", got, want, describe(p))
			}
			if got, want := cfg.ComputeClass(p), upstreamqos.ComputePodQOS(p.DeepCopy()); got != want {
				t.Fatalf("ComputeClass = %s, upstream ComputePodQOS = %s\n%s", got, want, describe(p))
			}
		}
		requireVariety(t, seen, corev1.PodQOSGuaranteed, corev1.PodQOSBurstable, corev1.PodQOSBestEffort)
	})
}

// requireVariety fails when the generator stopped producing some case, which
// would make agreement on it vacuous.
func requireVariety[K comparable](t *testing.T, seen map[K]int, want ...K) {
	t.Helper()
	for _, k := range want {
		if seen[k] < diffPods/100 {
			t.Errorf("only %d random pods produced %v: the generator no longer covers it (%v)", seen[k], k, seen)
		}
	}
}

var memoryCapacities = []int64{1 << 30, 4 << 30, 16<<30 + 12345, 64 << 30, 1 << 40, 3}

// TestQOSOOMScoreAdjMatchesUpstream: qos.OOMScoreAdj against
// GetContainerOOMScoreAdjust of pkg/kubelet/qos/policy.go for every
// container, init and sidecar containers included.
func TestQOSOOMScoreAdjMatchesUpstream(t *testing.T) {
	forEachGateCombo(t, func(t *testing.T, cfg qos.Config, seed uint64) {
		g := newPodGen(seed)
		seen := map[string]int{}
		for i := range diffPods {
			p := g.pod(i)
			capacity := pickOne(g, memoryCapacities...)
			up := p.DeepCopy()
			for j, c := range allContainers(p) {
				want := kubeletqos.GetContainerOOMScoreAdjust(up, allContainers(up)[j], capacity)
				switch want {
				case -997, 1000:
					seen[fmt.Sprint(want)]++
				default:
					seen["burstable"]++
				}
				if got := cfg.OOMScoreAdj(p, c, capacity); got != want {
					t.Fatalf("OOMScoreAdj(%s, capacity %d) = %d, upstream %d\n%s", c.Name, capacity, got, want, describe(p))
				}
			}
		}
		requireVariety(t, seen, "-997", "1000", "burstable")
	})
}

// containerRuntimeConfigs are the kubelet flag settings compared for
// container resources: --cpu-cfs-quota and --cpu-cfs-quota-period.
var containerRuntimeConfigs = []struct {
	quota  bool
	period time.Duration
}{{true, 100 * time.Millisecond}, {false, 100 * time.Millisecond}, {true, 25 * time.Millisecond}}

// TestQOSContainerResourcesMatchUpstream: qos.ContainerResources (and the
// OOM score the kubelet puts beside it) against the kubelet's own
// generateLinuxContainerResources in
// pkg/kubelet/kuberuntime/kuberuntime_container_linux.go, run on a real
// runtime manager (qos_upstream_test.go), on this machine's huge page sizes.
func TestQOSContainerResourcesMatchUpstream(t *testing.T) {
	hugePageSizes := libcontainercgroups.HugePageSizes()
	if len(hugePageSizes) == 0 {
		t.Log("this machine has no huge page sizes: hugepage limits are compared empty")
	}
	for _, rc := range containerRuntimeConfigs {
		t.Run(fmt.Sprintf("cpuCFSQuota=%v/period=%v", rc.quota, rc.period), func(t *testing.T) {
			const capacity = 16 << 30
			upstream := newUpstreamRuntime(t, capacity, rc.quota, rc.period)
			forEachGateCombo(t, func(t *testing.T, cfg qos.Config, seed uint64) {
				cfg.CPUCFSQuota, cfg.CPUCFSQuotaPeriod, cfg.HugePageSizes = rc.quota, rc.period, hugePageSizes
				g := newPodGen(seed)
				seen := map[string]int{}
				for i := range diffPods / 2 {
					p := g.pod(i)
					up := p.DeepCopy()
					for j, c := range allContainers(p) {
						want := upstream.containerResources(up, allContainers(up)[j])
						if want.CpuQuota != 0 {
							seen["quota"]++
						}
						if want.MemoryLimitInBytes != 0 {
							seen["memory"]++
						}
						for _, l := range want.HugepageLimits {
							if l.Limit != 0 {
								seen["hugepages"]++
							}
						}
						got := cfg.ContainerResources(p, c)
						if diff := compareContainer(got, want.CpuShares, want.CpuQuota, want.CpuPeriod, want.MemoryLimitInBytes, criHugePages(want)); diff != "" {
							t.Fatalf("ContainerResources(%s): %s\n%s", c.Name, diff, describe(p))
						}
						if adj := cfg.OOMScoreAdj(p, c, capacity); int64(adj) != want.OomScoreAdj {
							t.Fatalf("OOMScoreAdj(%s) = %d, kubelet's container config has %d\n%s", c.Name, adj, want.OomScoreAdj, describe(p))
						}
					}
				}
				want := []string{"memory"}
				if rc.quota {
					want = append(want, "quota")
				}
				if len(hugePageSizes) > 0 {
					want = append(want, "hugepages")
				}
				requireVariety(t, seen, want...)
			})
		})
	}
}

func criHugePages(r *runtimeapi.LinuxContainerResources) map[string]uint64 {
	out := map[string]uint64{}
	for _, l := range r.GetHugepageLimits() {
		out[l.PageSize] = l.Limit
	}
	return out
}

// compareContainer compares nodekit's runtime-spec resources with the
// kubelet's CRI values, reading nil as the CRI's 0 (unset).
func compareContainer(got *specs.LinuxResources, shares, quota, period, memory int64, hugepages map[string]uint64) string {
	var gShares, gQuota, gPeriod, gMemory int64
	if got.CPU != nil {
		if got.CPU.Shares != nil {
			gShares = int64(*got.CPU.Shares)
		}
		if got.CPU.Quota != nil {
			gQuota = *got.CPU.Quota
			if gQuota == 0 {
				return "CPU.Quota is a pointer to 0; the CRI's 0 must be nil"
			}
		}
		if got.CPU.Period != nil {
			gPeriod = int64(*got.CPU.Period)
		}
	}
	if got.Memory != nil && got.Memory.Limit != nil {
		gMemory = *got.Memory.Limit
		if gMemory == 0 {
			return "Memory.Limit is a pointer to 0; the CRI's 0 must be nil"
		}
	}
	var diffs []string
	for _, d := range []struct {
		what      string
		got, want int64
	}{{"cpu shares", gShares, shares}, {"cpu quota", gQuota, quota}, {"cpu period", gPeriod, period}, {"memory limit", gMemory, memory}} {
		if d.got != d.want {
			diffs = append(diffs, fmt.Sprintf("%s %d, upstream %d", d.what, d.got, d.want))
		}
	}
	if g := specHugePages(got); fmt.Sprint(g) != fmt.Sprint(hugepages) {
		diffs = append(diffs, fmt.Sprintf("hugepages %v, upstream %v", g, hugepages))
	}
	return strings.Join(diffs, "; ")
}

func specHugePages(r *specs.LinuxResources) map[string]uint64 {
	out := map[string]uint64{}
	for _, l := range r.HugepageLimits {
		out[l.Pagesize] = l.Limit
	}
	return out
}

// TestQOSPodResourcesMatchUpstream: qos.PodResources against
// ResourceConfigForPod of pkg/kubelet/cm/helpers_linux.go. Huge pages are
// compared as the kubelet writes them on a node with the hugetlb
// controller: the byte sizes of ResourceConfig.HugePageLimit spelled by
// v1helper.HugePageUnitSizeFromByteSize, and every other machine size at 0
// (maybeSetHugetlb in pkg/kubelet/cm/cgroup_manager_linux.go).
func TestQOSPodResourcesMatchUpstream(t *testing.T) {
	machine := []string{"2MB", "1GB"}
	for _, rc := range containerRuntimeConfigs {
		t.Run(fmt.Sprintf("cpuCFSQuota=%v/period=%v", rc.quota, rc.period), func(t *testing.T) {
			forEachGateCombo(t, func(t *testing.T, cfg qos.Config, seed uint64) {
				cfg.CPUCFSQuota, cfg.CPUCFSQuotaPeriod, cfg.HugePageSizes = rc.quota, rc.period, machine
				g := newPodGen(seed)
				seen := map[string]int{}
				for i := range diffPods {
					p := g.pod(i)
					want := cm.ResourceConfigForPod(p.DeepCopy(), rc.quota, uint64(rc.period/time.Microsecond), false, kubeletconfig.NoneMemoryReservationPolicy)
					got := cfg.PodResources(p)
					if diff := comparePod(got, want, machine); diff != "" {
						t.Fatalf("PodResources: %s\n%s", diff, describe(p))
					}
					if want.CPUQuota != nil {
						seen["quota"]++
					}
					if want.Memory != nil {
						seen["memory"]++
					}
					if len(want.HugePageLimit) > 0 {
						seen["hugepages"]++
					}
				}
				requireVariety(t, seen, "quota", "memory", "hugepages")
			})
		})
	}
}

func comparePod(got *specs.LinuxResources, want *cm.ResourceConfig, machine []string) string {
	var diffs []string
	ptrs := func(what string, g, w any, gNil, wNil bool) {
		switch {
		case gNil != wNil:
			diffs = append(diffs, fmt.Sprintf("%s set=%v, upstream set=%v", what, !gNil, !wNil))
		case !gNil && fmt.Sprint(g) != fmt.Sprint(w):
			diffs = append(diffs, fmt.Sprintf("%s %v, upstream %v", what, g, w))
		}
	}
	cpu := got.CPU
	if cpu == nil {
		cpu = &specs.LinuxCPU{}
	}
	ptrs("cpu shares", deref(cpu.Shares), deref(want.CPUShares), cpu.Shares == nil, want.CPUShares == nil)
	ptrs("cpu quota", deref(cpu.Quota), deref(want.CPUQuota), cpu.Quota == nil, want.CPUQuota == nil)
	ptrs("cpu period", deref(cpu.Period), deref(want.CPUPeriod), cpu.Period == nil, want.CPUPeriod == nil)
	var mem *int64
	if got.Memory != nil {
		mem = got.Memory.Limit
	}
	ptrs("memory limit", deref(mem), deref(want.Memory), mem == nil, want.Memory == nil)

	wantHuge := map[string]uint64{}
	for size, limit := range want.HugePageLimit {
		unit, err := v1helper.HugePageUnitSizeFromByteSize(size)
		if err != nil {
			continue
		}
		wantHuge[unit] = uint64(limit)
	}
	for _, size := range machine {
		if _, ok := wantHuge[size]; !ok {
			wantHuge[size] = 0
		}
	}
	if g := specHugePages(got); fmt.Sprint(g) != fmt.Sprint(wantHuge) {
		diffs = append(diffs, fmt.Sprintf("hugepages %v, upstream %v", g, wantHuge))
	}
	return strings.Join(diffs, "; ")
}

func deref[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}

// upstreamCgroupParent assembles the kubelet's pod cgroup name from the
// exported pieces of pkg/kubelet/cm the way NewContainerManager (kubepods
// under --cgroup-root), qosContainerManagerImpl.Start (the tiers) and
// podContainerManagerImpl.GetPodContainerName do; a panic in them is
// reported as panicked.
func upstreamCgroupParent(p *corev1.Pod, driver, root string) (name string, panicked bool) {
	defer func() {
		if recover() != nil {
			name, panicked = "", true
		}
	}()
	base := cm.NewCgroupName(cm.ParseCgroupfsToCgroupName(root), "kubepods")
	var parent cm.CgroupName
	switch upstreamqos.GetPodQOS(p) {
	case corev1.PodQOSGuaranteed:
		parent = base
	case corev1.PodQOSBurstable:
		parent = cm.NewCgroupName(base, strings.ToLower(string(corev1.PodQOSBurstable)))
	case corev1.PodQOSBestEffort:
		parent = cm.NewCgroupName(base, strings.ToLower(string(corev1.PodQOSBestEffort)))
	}
	mgr := cm.NewCgroupManager(klog.Background(), &cm.CgroupSubsystems{}, driver)
	return mgr.Name(cm.NewCgroupName(parent, cm.GetPodCgroupNameSuffix(p.UID))), false
}

// TestQOSCgroupParentMatchesUpstream: qos.CgroupParent against the
// kubelet's naming for both drivers and several cgroup roots.
func TestQOSCgroupParentMatchesUpstream(t *testing.T) {
	for _, driver := range []qos.CgroupDriver{qos.Cgroupfs, qos.Systemd} {
		for _, root := range []string{"/", "/node-a", "/a/b-c", "/x//y"} {
			t.Run(fmt.Sprintf("driver=%s/root=%s", driver, root), func(t *testing.T) {
				forEachGateCombo(t, func(t *testing.T, cfg qos.Config, seed uint64) {
					cfg.CgroupDriver, cfg.CgroupRoot = driver, root
					g := newPodGen(seed)
					for i := range diffPods / 3 {
						p := g.pod(i)
						want, panicked := upstreamCgroupParent(p.DeepCopy(), string(driver), root)
						got, err := cfg.CgroupParent(p)
						switch {
						case panicked && !errors.Is(err, qos.ErrCgroupName):
							t.Fatalf("upstream panics, CgroupParent = %q, %v; want an ErrCgroupName\n%s", got, err, describe(p))
						case !panicked && (err != nil || got != want):
							t.Fatalf("CgroupParent = %q, %v; upstream %q\n%s", got, err, want, describe(p))
						}
					}
				})
			})
		}
	}
}

// TestQOSCPUConversionsMatchUpstream compares the conversions over the
// whole kernel range of shares and weights, and at random beyond it.
func TestQOSCPUConversionsMatchUpstream(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 11))
	for m := int64(-10); m <= 300000; m++ {
		if got, want := qos.MilliCPUToShares(m), cm.MilliCPUToShares(m); got != want {
			t.Fatalf("MilliCPUToShares(%d) = %d, upstream %d", m, got, want)
		}
		for _, period := range []int64{1000, 25000, 100000, 1000000} {
			if got, want := qos.MilliCPUToQuota(m, period), cm.MilliCPUToQuota(m, period); got != want {
				t.Fatalf("MilliCPUToQuota(%d, %d) = %d, upstream %d", m, period, got, want)
			}
		}
	}
	for s := int64(-5); s <= 300000; s++ {
		if got, want := qos.SharesToMilliCPU(s), cm.SharesToMilliCPU(s); got != want {
			t.Fatalf("SharesToMilliCPU(%d) = %d, upstream %d", s, got, want)
		}
	}
	for range 100000 {
		s := r.Int64N(1 << 40)
		if got, want := qos.SharesToMilliCPU(s), cm.SharesToMilliCPU(s); got != want {
			t.Fatalf("SharesToMilliCPU(%d) = %d, upstream %d", s, got, want)
		}
		quota, period := r.Int64N(1<<40)-1, 1+r.Int64N(1<<30)
		if got, want := qos.QuotaToMilliCPU(quota, period), cm.QuotaToMilliCPU(quota, period); got != want {
			t.Fatalf("QuotaToMilliCPU(%d, %d) = %d, upstream %d", quota, period, got, want)
		}
	}
	for s := uint64(0); s <= 300000; s++ {
		if got, want := qos.SharesToWeightQuadratic(s), libcontainercgroups.ConvertCPUSharesToCgroupV2Value(s); got != want {
			t.Fatalf("SharesToWeightQuadratic(%d) = %d, runc's ConvertCPUSharesToCgroupV2Value %d", s, got, want)
		}
		if s < cm.MinShares {
			continue // upstream never converts these; its arithmetic wraps
		}
		if got, want := qos.SharesToWeightLinear(s), upstreamGetCPUWeight(&s); got != want {
			t.Fatalf("SharesToWeightLinear(%d) = %d, kubelet getCPUWeight %d", s, got, want)
		}
	}
	for w := uint64(1); w <= 10000; w++ {
		if got, want := qos.WeightToSharesLinear(w), upstreamCPUWeightToCPUShares(w); got != want {
			t.Fatalf("WeightToSharesLinear(%d) = %d, kubelet cpuWeightToCPUShares %d", w, got, want)
		}
	}
}
