package qos

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/containerd/cgroups/v3/cgroup1"
	"github.com/containerd/cgroups/v3/cgroup2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	corev1 "k8s.io/api/core/v1"

	"github.com/kube-nodekit/nodekit/internal/testenv"
)

// kernelCases are pods whose computed cgroup values the kernel must accept
// unchanged: quotas at the 1ms floor and at a custom period, a sum of
// limits, memory limits in whole pages, a pids limit and huge pages.
func kernelCases() []struct {
	name string
	cfg  Config
	pod  *corev1.Pod
} {
	period25 := DefaultConfig()
	period25.CPUCFSQuotaPeriod = 25_000_000 // 25ms
	noQuota := DefaultConfig()
	noQuota.CPUCFSQuota = false
	pids := DefaultConfig()
	pids.PodPidsLimit = 512
	return []struct {
		name string
		cfg  Config
		pod  *corev1.Pod
	}{
		{"guaranteed", DefaultConfig(), pod([]corev1.Container{
			ctr("app", req(cm("1500m", "256Mi"), cm("1500m", "256Mi"))),
			ctr("proxy", req(cm("100m", "64Mi"), cm("100m", "64Mi")))})},
		{"burstable-limited", period25, pod([]corev1.Container{
			ctr("app", req(cm("250m", "128Mi"), cm("2", "1Gi"))),
			ctr("tiny", req(cm("1m", "4Mi"), cm("1m", "8Mi")))},
			withInit(sidecar("log", req(cm("50m", "32Mi"), cm("100m", "64Mi")))))},
		{"burstable-unlimited", pids, pod([]corev1.Container{
			ctr("app", req(cm("100m", "100Mi"), nil))})},
		{"best-effort", noQuota, pod([]corev1.Container{ctr("app", bestEffortReq)})},
		{"pod-level", DefaultConfig(), pod([]corev1.Container{
			ctr("app", req(cm("200m", ""), nil))},
			withPodResources(req(cm("1", "512Mi"), cm("2", "1Gi"))))},
		{"hugepages", DefaultConfig(), pod([]corev1.Container{
			ctr("app", req(list("cpu", "1", "memory", "1Gi", "hugepages-2Mi", "64Mi"), list("cpu", "1", "memory", "1Gi", "hugepages-2Mi", "64Mi")))})},
	}
}

// TestKernelAcceptsCgroupValues writes each case's pod cgroup values, and
// each container's below them as a runtime lays them out, into fresh
// cgroups of the machine's own kernel with github.com/containerd/cgroups/v3,
// and reads the kernel's files back: they must hold exactly what was
// computed. cgroup v1 where mounted; the controllers cgroup v2 offers where
// it is mounted (all of them on a v2 host, the leftovers on a hybrid one).
func TestKernelAcceptsCgroupValues(t *testing.T) {
	fs := testenv.CgroupFS(t)
	ran := false
	if fs.HasV1("cpu", "memory", "pids") {
		ran = true
		t.Run("v1", func(t *testing.T) { kernelV1(t, fs) })
	}
	if fs.V2 != "" {
		ran = true
		t.Run("v2", func(t *testing.T) { kernelV2(t, fs) })
	}
	if !ran {
		t.Fatalf("neither cgroup v1 cpu, memory and pids nor cgroup v2 is mounted: %+v", fs)
	}
}

func kernelV1(t *testing.T, fs testenv.Cgroups) {
	hierarchy := func() ([]cgroup1.Subsystem, error) {
		subs := []cgroup1.Subsystem{
			cgroup1.NewCpu(filepath.Dir(fs.V1["cpu"])),
			cgroup1.NewMemory(filepath.Dir(fs.V1["memory"])),
			cgroup1.NewPids(filepath.Dir(fs.V1["pids"])),
		}
		if fs.HasV1("hugetlb") {
			h, err := cgroup1.NewHugetlb(filepath.Dir(fs.V1["hugetlb"]))
			if err != nil {
				return nil, err
			}
			subs = append(subs, h)
		}
		return subs, nil
	}
	root := "/" + testenv.CgroupPrefix + randomSuffix(t)
	t.Cleanup(func() { removeRoot(t, fs, root) })
	for _, tc := range kernelCases() {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			cfg.HugePageSizes = fs.HugePageSizes
			podPath := root + "/" + tc.name
			podRes := cfg.PodResources(tc.pod)
			create := func(path string, r *specs.LinuxResources) {
				t.Helper()
				if !fs.HasV1("hugetlb") {
					r.HugepageLimits = nil
				}
				cg, err := cgroup1.New(cgroup1.StaticPath(path), r, cgroup1.WithHierarchy(hierarchy))
				if err != nil {
					t.Fatalf("creating cgroup %s with %s: %v", path, describeResources(r), err)
				}
				t.Cleanup(func() {
					if err := cg.Delete(); err != nil {
						t.Errorf("deleting cgroup %s: %v", path, err)
					}
				})
			}
			create(podPath, podRes)
			checkV1(t, fs, podPath, podRes)
			for _, c := range allOf(tc.pod) {
				path := podPath + "/" + c.Name
				r := cfg.ContainerResources(tc.pod, c)
				create(path, r)
				checkV1(t, fs, path, r)
			}
		})
	}
}

func checkV1(t *testing.T, fs testenv.Cgroups, path string, r *specs.LinuxResources) {
	t.Helper()
	file := func(controller, name string) string {
		return filepath.Join(fs.V1[controller], path, name)
	}
	expect(t, file("cpu", "cpu.shares"), strconv.FormatUint(*r.CPU.Shares, 10))
	if r.CPU.Period != nil {
		expect(t, file("cpu", "cpu.cfs_period_us"), strconv.FormatUint(*r.CPU.Period, 10))
	}
	quota := "-1" // the kernel's default: no quota
	if r.CPU.Quota != nil {
		quota = strconv.FormatInt(*r.CPU.Quota, 10)
	}
	expect(t, file("cpu", "cpu.cfs_quota_us"), quota)
	if r.Memory != nil && r.Memory.Limit != nil {
		expect(t, file("memory", "memory.limit_in_bytes"), strconv.FormatInt(*r.Memory.Limit, 10))
	}
	pids := "max"
	if r.Pids != nil {
		pids = strconv.FormatInt(*r.Pids.Limit, 10)
	}
	expect(t, file("pids", "pids.max"), pids)
	if fs.HasV1("hugetlb") {
		for _, l := range r.HugepageLimits {
			expect(t, file("hugetlb", "hugetlb."+l.Pagesize+".limit_in_bytes"), strconv.FormatUint(l.Limit, 10))
		}
	}
}

// kernelV2 writes what the kubelet and a runtime write on cgroup v2: for
// the pod cgroup, cpu.weight by the kubelet's linear mapping; for
// containers, the runtime-spec resources as containerd's cgroups library
// converts them (runc's quadratic weight).
func kernelV2(t *testing.T, fs testenv.Cgroups) {
	var offered []string
	for _, c := range []string{"cpu", "memory", "pids", "hugetlb"} {
		if fs.HasV2(c) {
			offered = append(offered, c)
		}
	}
	if len(offered) == 0 {
		t.Skipf("cgroup v2 at %s offers none of cpu, memory, pids, hugetlb (offers %v)", fs.V2, fs.V2Controllers)
	}
	t.Logf("cgroup v2 at %s: checking %v", fs.V2, offered)
	has := func(c string) bool { return fs.HasV2(c) }
	root := "/" + testenv.CgroupPrefix + randomSuffix(t)
	t.Cleanup(func() { removeRoot(t, testenv.Cgroups{V2: fs.V2}, root) })
	for _, tc := range kernelCases() {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			cfg.HugePageSizes = fs.HugePageSizes
			podGroup := root + "/" + tc.name
			podRes := cfg.PodResources(tc.pod)
			podV2 := keep(cgroup2.ToResources(podRes), has)
			if podV2.CPU != nil && podRes.CPU.Shares != nil {
				w := SharesToWeightLinear(*podRes.CPU.Shares)
				podV2.CPU.Weight = &w
			}
			create := func(group string, r *cgroup2.Resources) {
				t.Helper()
				m, err := cgroup2.NewManager(fs.V2, group, r)
				if err != nil {
					t.Fatalf("creating cgroup %s: %v", group, err)
				}
				t.Cleanup(func() {
					if err := m.Delete(); err != nil {
						t.Errorf("deleting cgroup %s: %v", group, err)
					}
				})
			}
			create(podGroup, podV2)
			checkV2(t, filepath.Join(fs.V2, podGroup), podRes, has, SharesToWeightLinear)
			for _, c := range allOf(tc.pod) {
				group := podGroup + "/" + c.Name
				r := cfg.ContainerResources(tc.pod, c)
				create(group, keep(cgroup2.ToResources(r), has))
				checkV2(t, filepath.Join(fs.V2, group), r, has, SharesToWeightQuadratic)
			}
		})
	}
}

// keep drops the settings of controllers the hierarchy does not offer.
func keep(r *cgroup2.Resources, has func(string) bool) *cgroup2.Resources {
	if !has("cpu") {
		r.CPU = nil
	}
	if !has("memory") {
		r.Memory = nil
	}
	if !has("pids") {
		r.Pids = nil
	}
	if !has("hugetlb") {
		r.HugeTlb = nil
	}
	return r
}

func checkV2(t *testing.T, dir string, r *specs.LinuxResources, has func(string) bool, weight func(uint64) uint64) {
	t.Helper()
	if has("cpu") {
		expect(t, filepath.Join(dir, "cpu.weight"), strconv.FormatUint(weight(*r.CPU.Shares), 10))
		if r.CPU.Period != nil {
			quota := "max"
			if r.CPU.Quota != nil && *r.CPU.Quota > 0 {
				quota = strconv.FormatInt(*r.CPU.Quota, 10)
			}
			expect(t, filepath.Join(dir, "cpu.max"), quota+" "+strconv.FormatUint(*r.CPU.Period, 10))
		}
	}
	if has("memory") && r.Memory != nil && r.Memory.Limit != nil {
		expect(t, filepath.Join(dir, "memory.max"), strconv.FormatInt(*r.Memory.Limit, 10))
	}
	if has("pids") {
		pids := "max"
		if r.Pids != nil {
			pids = strconv.FormatInt(*r.Pids.Limit, 10)
		}
		expect(t, filepath.Join(dir, "pids.max"), pids)
	}
	if has("hugetlb") {
		for _, l := range r.HugepageLimits {
			expect(t, filepath.Join(dir, "hugetlb."+l.Pagesize+".max"), strconv.FormatUint(l.Limit, 10))
		}
	}
}

func expect(t *testing.T, file, want string) {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Errorf("reading %s: %v", file, err)
		return
	}
	if got := strings.TrimSpace(string(data)); got != want {
		t.Errorf("%s = %q, want %q", file, got, want)
	}
}

func describeResources(r *specs.LinuxResources) string {
	var b strings.Builder
	if r.CPU != nil {
		fmt.Fprintf(&b, "shares=%v quota=%v period=%v ", deref(r.CPU.Shares), deref(r.CPU.Quota), deref(r.CPU.Period))
	}
	if r.Memory != nil {
		fmt.Fprintf(&b, "memory=%v ", deref(r.Memory.Limit))
	}
	fmt.Fprintf(&b, "hugepages=%v", r.HugepageLimits)
	return b.String()
}

func deref[T any](p *T) any {
	if p == nil {
		return "nil"
	}
	return *p
}

// removeRoot removes the test's root cgroup from every hierarchy once the
// cgroups below it are gone.
func removeRoot(t *testing.T, fs testenv.Cgroups, root string) {
	dirs := []string{fs.V2}
	for _, mount := range fs.V1 {
		dirs = append(dirs, mount)
	}
	for _, d := range dirs {
		if d == "" {
			continue
		}
		if err := os.Remove(filepath.Join(d, root)); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Errorf("removing the test's cgroup root: %v", err)
		}
	}
}

func allOf(p *corev1.Pod) []*corev1.Container {
	var out []*corev1.Container
	for i := range p.Spec.InitContainers {
		out = append(out, &p.Spec.InitContainers[i])
	}
	for i := range p.Spec.Containers {
		out = append(out, &p.Spec.Containers[i])
	}
	return out
}

func randomSuffix(t *testing.T) string {
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}
