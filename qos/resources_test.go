package qos

import (
	"encoding/json"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	corev1 "k8s.io/api/core/v1"
)

// res builds expected resources; a negative value leaves the field nil.
func res(shares uint64, quota, period, memory int64, hugepages ...specs.LinuxHugepageLimit) *specs.LinuxResources {
	r := &specs.LinuxResources{CPU: &specs.LinuxCPU{Shares: &shares}, HugepageLimits: hugepages}
	if quota != nilValue {
		r.CPU.Quota = &quota
	}
	if period != nilValue {
		p := uint64(period)
		r.CPU.Period = &p
	}
	if memory != nilValue {
		r.Memory = &specs.LinuxMemory{Limit: &memory}
	}
	return r
}

// nilValue marks a field res leaves nil.
const nilValue = -1 << 62

func hp(size string, limit uint64) specs.LinuxHugepageLimit {
	return specs.LinuxHugepageLimit{Pagesize: size, Limit: limit}
}

func sameResources(t *testing.T, got, want *specs.LinuxResources) {
	t.Helper()
	g, _ := json.Marshal(got)
	w, _ := json.Marshal(want)
	if string(g) != string(w) {
		t.Errorf("resources\n got %s\nwant %s", g, w)
	}
}

// Upstream behaviour pinned here: generateLinuxContainerResources,
// calculateLinuxResources, getCPULimit, getMemoryLimit and
// GetHugepageLimitsFromResources in
// pkg/kubelet/kuberuntime/kuberuntime_container_linux.go, as containerd's
// CRI plugin turns the CRI values into runtime-spec (zero is unset).
func TestContainerResources(t *testing.T) {
	const N = nilValue
	noQuota := DefaultConfig()
	noQuota.CPUCFSQuota = false
	period50 := DefaultConfig()
	period50.CPUCFSQuotaPeriod = 50 * time.Millisecond
	huge := DefaultConfig()
	huge.HugePageSizes = []string{"2MB", "1GB"}
	gatesOff := DefaultConfig()
	gatesOff.PodLevelResources = false

	for _, tc := range []struct {
		name string
		cfg  Config
		pod  *corev1.Pod
		want *specs.LinuxResources
	}{
		{"kuberuntime_container_linux.go: no requests or limits: minimum shares, a period and no quota",
			DefaultConfig(), pod([]corev1.Container{ctr("a", bestEffortReq)}), res(2, N, 100000, N)},
		{"kuberuntime_container_linux.go: shares from the request, quota from the limit, memory limit in bytes",
			DefaultConfig(), pod([]corev1.Container{ctr("a", req(cm("250m", "64Mi"), cm("500m", "128Mi")))}), res(256, 50000, 100000, 128<<20)},
		{"kuberuntime_container_linux.go: no cpu request: shares from the cpu limit",
			DefaultConfig(), pod([]corev1.Container{ctr("a", req(nil, cm("2", "")))}), res(2048, 200000, 100000, N)},
		{"kuberuntime_container_linux.go: an explicit zero cpu request is a request: minimum shares",
			DefaultConfig(), pod([]corev1.Container{ctr("a", req(cm("0", ""), cm("2", "")))}), res(2, 200000, 100000, N)},
		{"kuberuntime_container_linux.go: a tiny limit is raised to the 1ms quota floor",
			DefaultConfig(), pod([]corev1.Container{ctr("a", req(cm("1m", ""), cm("1m", "")))}), res(2, 1000, 100000, N)},
		{"kuberuntime_container_linux.go: --cpu-cfs-quota=false sends neither quota nor period",
			noQuota, pod([]corev1.Container{ctr("a", req(cm("1", ""), cm("1", "")))}), res(1024, N, N, N)},
		{"kuberuntime_container_linux.go: the quota scales with --cpu-cfs-quota-period",
			period50, pod([]corev1.Container{ctr("a", req(cm("1", ""), cm("1", "")))}), res(1024, 50000, 50000, N)},
		{"kuberuntime_container_linux.go: sub-byte memory rounds up",
			DefaultConfig(), pod([]corev1.Container{ctr("a", req(nil, cm("", "1500m")))}), res(2, N, 100000, 2)},
		{"kuberuntime_container_linux.go: the container ignores the pod's class and other containers",
			DefaultConfig(), pod([]corev1.Container{ctr("a", req(cm("1", "1Gi"), cm("1", "1Gi"))), ctr("b", bestEffortReq)}), res(1024, 100000, 100000, 1<<30)},
		{"kuberuntime_container_linux.go: without a container limit, the pod-level limits apply, and the cpu one gives the shares",
			DefaultConfig(), pod([]corev1.Container{ctr("a", bestEffortReq)}, withPodResources(req(cm("1", "1Gi"), cm("2", "2Gi")))),
			res(2048, 200000, 100000, 2<<30)},
		{"kuberuntime_container_linux.go: a container limit wins over the pod-level one",
			DefaultConfig(), pod([]corev1.Container{ctr("a", req(cm("100m", ""), cm("500m", "64Mi")))}, withPodResources(req(nil, cm("2", "2Gi")))),
			res(102, 50000, 100000, 64<<20)},
		{"kuberuntime_container_linux.go: PodLevelResources off ignores pod-level limits",
			gatesOff, pod([]corev1.Container{ctr("a", bestEffortReq)}, withPodResources(req(nil, cm("2", "2Gi")))), res(2, N, 100000, N)},
		{"kuberuntime_container_linux.go: pod-level limits apply only when spec.resources sets cpu, memory or hugepages",
			DefaultConfig(), pod([]corev1.Container{ctr("a", bestEffortReq)}, withPodResources(req(list("ephemeral-storage", "1Gi"), nil))), res(2, N, 100000, N)},
		{"kuberuntime_container_linux.go: every machine page size is limited, 0 unless requested",
			huge, pod([]corev1.Container{ctr("a", req(list("hugepages-2Mi", "8Mi"), list("hugepages-2Mi", "8Mi")))}),
			res(2, N, 100000, N, hp("2MB", 8<<20), hp("1GB", 0))},
		{"kuberuntime_container_linux.go: a page size the machine lacks is dropped",
			huge, pod([]corev1.Container{ctr("a", req(nil, list("hugepages-64Ki", "1Mi")))}),
			res(2, N, 100000, N, hp("2MB", 0), hp("1GB", 0))},
		{"kuberuntime_container_linux.go: pod-level hugepage limits apply to containers without their own",
			huge, pod([]corev1.Container{ctr("a", req(nil, list("hugepages-1Gi", "1Gi")))}, withPodResources(req(nil, list("hugepages-2Mi", "4Mi", "hugepages-1Gi", "2Gi")))),
			res(2, N, 100000, N, hp("2MB", 4<<20), hp("1GB", 1<<30))},
		{"kuberuntime_container_linux.go: hugepage sizes are matched by value (hugepages-2048Ki is 2MB)",
			huge, pod([]corev1.Container{ctr("a", req(nil, list("hugepages-2048Ki", "6Mi")))}),
			res(2, N, 100000, N, hp("2MB", 6<<20), hp("1GB", 0))},
		{"nodekit: two names for one page size keep the larger (upstream: map order)",
			huge, pod([]corev1.Container{ctr("a", req(nil, list("hugepages-2048Ki", "6Mi", "hugepages-2Mi", "4Mi")))}),
			res(2, N, 100000, N, hp("2MB", 6<<20), hp("1GB", 0))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := tc.pod.DeepCopy()
			sameResources(t, tc.cfg.ContainerResources(tc.pod, &tc.pod.Spec.Containers[0]), tc.want)
			if !equalPods(before, tc.pod) {
				t.Error("ContainerResources modified the pod")
			}
		})
	}
	if got := ContainerResources(nil, nil); got != nil {
		t.Errorf("ContainerResources(nil, nil) = %+v, want nil", got)
	}
	sameResources(t, ContainerResources(nil, &corev1.Container{}), res(2, N, 100000, N))
}

// Upstream behaviour pinned here: ResourceConfigForPod and HugePageLimits
// in pkg/kubelet/cm/helpers_linux.go; PodRequests, PodLimits and
// AggregateContainerRequests in k8s.io/component-helpers/resource; pids in
// EnsureExists, pkg/kubelet/cm/pod_container_manager_linux.go; hugepage
// zero-fill in maybeSetHugetlb, pkg/kubelet/cm/cgroup_manager_linux.go.
func TestPodResources(t *testing.T) {
	const N = nilValue
	noQuota := DefaultConfig()
	noQuota.CPUCFSQuota = false
	huge := DefaultConfig()
	huge.HugePageSizes = []string{"2MB", "1GB"}
	pids := DefaultConfig()
	pids.PodPidsLimit = 1024
	gatesOff := DefaultConfig()
	gatesOff.PodLevelResources = false

	for _, tc := range []struct {
		name string
		cfg  Config
		pod  *corev1.Pod
		want *specs.LinuxResources
	}{
		{"helpers_linux.go: BestEffort gets minimum shares only",
			DefaultConfig(), pod([]corev1.Container{ctr("a", bestEffortReq)}), res(2, N, N, N)},
		{"helpers_linux.go: Guaranteed gets shares, quota, period and memory from the sums",
			DefaultConfig(), pod([]corev1.Container{ctr("a", guaranteedReq), ctr("b", req(cm("1", "1Gi"), cm("1", "1Gi")))}),
			res(1126, 110000, 100000, 100<<20+1<<30)},
		{"helpers_linux.go: Burstable with every container limited gets quota and memory",
			DefaultConfig(), pod([]corev1.Container{ctr("a", burstableReq), ctr("b", req(nil, cm("1", "1Gi")))}),
			res(102, 120000, 100000, 200<<20+1<<30)},
		{"helpers_linux.go: one container without a cpu limit leaves the pod without quota",
			DefaultConfig(), pod([]corev1.Container{ctr("a", burstableReq), ctr("b", req(nil, cm("", "1Gi")))}),
			res(102, N, N, 200<<20+1<<30)},
		{"helpers_linux.go: one container without a memory limit leaves the pod without a memory limit",
			DefaultConfig(), pod([]corev1.Container{ctr("a", burstableReq), ctr("b", req(nil, cm("1", "")))}),
			res(102, 120000, 100000, N)},
		{"helpers_linux.go: init containers must be limited too",
			DefaultConfig(), pod([]corev1.Container{ctr("a", burstableReq)}, withInit(ctr("i", req(cm("1", ""), nil)))),
			res(1024, N, N, N)},
		{"helpers.go: the largest init container sets the request when it exceeds the sum",
			DefaultConfig(), pod([]corev1.Container{ctr("a", burstableReq)}, withInit(ctr("i", req(cm("1", "1Gi"), cm("1", "1Gi"))))),
			res(1024, 100000, 100000, 1<<30)},
		{"helpers.go: sidecars add to the running sum and to each later init container",
			// running: 200m + 100m sidecar = 300m; init phase: 100m sidecar + 500m = 600m.
			DefaultConfig(), pod([]corev1.Container{ctr("a", req(cm("200m", ""), nil))},
				withInit(sidecar("s", req(cm("100m", ""), nil)), ctr("i", req(cm("500m", ""), nil)))),
			res(614, N, N, N)},
		{"helpers_linux.go: --cpu-cfs-quota=false writes -1",
			noQuota, pod([]corev1.Container{ctr("a", guaranteedReq)}), res(102, -1, 100000, 100<<20)},
		{"helpers.go: overhead adds to requests and to non-zero limits",
			DefaultConfig(), pod([]corev1.Container{ctr("a", guaranteedReq)}, withOverhead(cm("50m", "20Mi"))),
			res(153, 15000, 100000, 120<<20)},
		{"helpers.go: overhead does not create a limit",
			DefaultConfig(), pod([]corev1.Container{ctr("a", req(cm("100m", ""), nil))}, withOverhead(cm("50m", "20Mi"))),
			res(153, N, N, N)},
		{"helpers_linux.go: pod-level limits stand in for unlimited containers",
			DefaultConfig(), pod([]corev1.Container{ctr("a", req(cm("100m", ""), nil))}, withPodResources(req(cm("1", "1Gi"), cm("2", "2Gi")))),
			res(1024, 200000, 100000, 2<<30)},
		{"helpers.go: pod-level requests replace the containers' sum",
			DefaultConfig(), pod([]corev1.Container{ctr("a", req(cm("100m", "10Mi"), nil))}, withPodResources(req(cm("", "1Gi"), nil))),
			res(102, N, N, N)},
		{"helpers_linux.go: PodLevelResources off ignores spec.resources",
			gatesOff, pod([]corev1.Container{ctr("a", req(cm("100m", ""), nil))}, withPodResources(req(cm("1", "1Gi"), cm("2", "2Gi")))),
			res(102, N, N, N)},
		{"helpers_linux.go: a preset Guaranteed class writes whatever the sums are, zero included",
			DefaultConfig(), pod([]corev1.Container{ctr("a", bestEffortReq)}, withStatusClass(corev1.PodQOSGuaranteed)),
			res(2, 0, 100000, 0)},
		{"helpers_linux.go: an unknown preset class falls into the BestEffort branch",
			DefaultConfig(), pod([]corev1.Container{ctr("a", guaranteedReq)}, withStatusClass("Platinum")), res(2, N, N, N)},
		{"helpers_linux.go: hugepage requests are summed per size and every other machine size is 0",
			huge, pod([]corev1.Container{
				ctr("a", req(list("hugepages-2Mi", "4Mi"), list("hugepages-2Mi", "4Mi"))),
				ctr("b", req(list("hugepages-2048Ki", "2Mi"), list("hugepages-2048Ki", "2Mi")))}),
			res(2, N, N, N, hp("2MB", 6<<20), hp("1GB", 0))},
		{"cgroup_manager_linux.go: a requested size the machine lacks is still written",
			huge, pod([]corev1.Container{ctr("a", req(list("hugepages-64Ki", "1Mi"), nil))}),
			res(2, N, N, N, hp("2MB", 0), hp("1GB", 0), hp("64KB", 1<<20))},
		{"helpers_linux.go: hugepages come from requests, not limits",
			huge, pod([]corev1.Container{ctr("a", req(nil, list("hugepages-2Mi", "4Mi")))}),
			res(2, N, N, N, hp("2MB", 0), hp("1GB", 0))},
		{"pod_container_manager_linux.go: a positive --pod-max-pids becomes the pids limit",
			pids, pod([]corev1.Container{ctr("a", bestEffortReq)}),
			&specs.LinuxResources{CPU: &specs.LinuxCPU{Shares: ptr(uint64(2))}, Pids: &specs.LinuxPids{Limit: ptr(int64(1024))}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := tc.pod.DeepCopy()
			sameResources(t, tc.cfg.PodResources(tc.pod), tc.want)
			if !equalPods(before, tc.pod) {
				t.Error("PodResources modified the pod")
			}
		})
	}
	sameResources(t, PodResources(nil), res(2, N, N, N))
}

func equalPods(a, b *corev1.Pod) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}
