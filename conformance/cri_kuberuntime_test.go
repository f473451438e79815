package conformance

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/opencontainers/cgroups"
	"google.golang.org/protobuf/proto"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kubetypes "k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/record"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"
	kubecontainer "k8s.io/kubernetes/pkg/kubelet/container"
	containertest "k8s.io/kubernetes/pkg/kubelet/container/testing"
	"k8s.io/kubernetes/pkg/kubelet/network/dns"
	"k8s.io/kubernetes/pkg/securitycontext"

	"github.com/kube-nodekit/nodekit/cri"
)

// The kubelet builds the CRI messages of a pod in unexported methods of its
// runtime manager. These declarations call the upstream code itself, by
// symbol name (a method's receiver is its function's first argument).

//go:linkname criUpstreamSandboxConfig k8s.io/kubernetes/pkg/kubelet/kuberuntime.(*kubeGenericRuntimeManager).generatePodSandboxConfig
func criUpstreamSandboxConfig(m unsafe.Pointer, ctx context.Context, pod *v1.Pod, attempt uint32) (*runtimeapi.PodSandboxConfig, error)

//go:linkname criUpstreamContainerConfig k8s.io/kubernetes/pkg/kubelet/kuberuntime.(*kubeGenericRuntimeManager).generateContainerConfig
func criUpstreamContainerConfig(m unsafe.Pointer, ctx context.Context, container *v1.Container, pod *v1.Pod, restartCount int, podIP, imageRef string, podIPs []string, nsTarget *kubecontainer.ContainerID, imageVolumes kubecontainer.ImageVolumes) (*runtimeapi.ContainerConfig, func(), error)

// criHelper is the kubelet's side of the runtime manager. DNS is the real
// upstream configurer; the cgroup parent, hostname and environment, which
// the kubelet computes in its own (unexported) code, are nodekit's, so the
// comparison covers what kuberuntime does with them.
type criHelper struct {
	*containertest.FakeRuntimeHelper
	cfg *cri.Config
	dns *dns.Configurer
}

func (h *criHelper) GetPodDNS(ctx context.Context, pod *v1.Pod) (*runtimeapi.DNSConfig, error) {
	return h.dns.GetPodDNS(ctx, pod)
}

func (h *criHelper) GetPodCgroupParent(pod *v1.Pod) string {
	p, _ := h.cfg.QOS.CgroupParent(pod)
	return p
}

func (h *criHelper) GeneratePodHostNameAndDomain(_ klog.Logger, pod *v1.Pod) (string, string, error) {
	return h.cfg.PodHostname(pod)
}

func (h *criHelper) GenerateRunContainerOptions(_ context.Context, pod *v1.Pod, c *v1.Container, podIP string, podIPs []string, _ kubecontainer.ImageVolumes) (*kubecontainer.RunContainerOptions, func(), error) {
	env, err := h.cfg.Env(pod, c, &cri.ContainerInput{PodIPs: podIPs})
	if err != nil {
		return nil, nil, err
	}
	opts := &kubecontainer.RunContainerOptions{}
	for _, kv := range env {
		opts.Envs = append(opts.Envs, kubecontainer.EnvVar{Name: kv.Key, Value: string(kv.Value)})
	}
	return opts, nil, nil
}

const criMemory = 8 << 30

// criPair is nodekit's Config and an upstream runtime manager set up
// alike: cluster DNS 10.96.0.10 in cluster.local, a resolv.conf, 8 GiB of
// memory, this machine's huge page sizes, masked paths and swap controller.
type criPair struct {
	cfg      cri.Config
	upstream unsafe.Pointer
}

func newCRIPair(t testing.TB) *criPair {
	t.Helper()
	dir := t.TempDir()
	resolv := filepath.Join(dir, "resolv.conf")
	if err := os.WriteFile(resolv, []byte("nameserver 192.168.1.1\nnameserver 192.168.1.2\nsearch corp.example lab.example\noptions timeout:2 ndots:1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, _ := os.Open(resolv)
	hostDNS, err := cri.ParseResolvConf(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	p := &criPair{cfg: cri.DefaultConfig()}
	p.cfg.RootDir, p.cfg.PodLogsDir = filepath.Join(dir, "root"), filepath.Join(dir, "logs")
	p.cfg.SeccompProfileRoot = filepath.Join(p.cfg.RootDir, "seccomp")
	p.cfg.ClusterDNS, p.cfg.ClusterDomain, p.cfg.HostDNS = []string{"10.96.0.10"}, "cluster.local", hostDNS
	p.cfg.MemoryCapacity = criMemory
	p.cfg.QOS.HugePageSizes = cgroups.HugePageSizes()
	p.cfg.ExtraMaskedPaths = securitycontext.ConvertToRuntimeMaskedPaths(nil)[12:] // thermal_throttle dirs of this machine
	_, err = os.Stat("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes")
	p.cfg.SwapControllerAvailable = err == nil && !cgroups.IsCgroup2UnifiedMode()
	p.cfg.CgroupV2 = cgroups.IsCgroup2UnifiedMode()
	if p.cfg.CgroupV2 {
		_, err := os.Stat("/sys/fs/cgroup/memory.swap.max")
		p.cfg.SwapControllerAvailable = err == nil
	}

	configurer := dns.NewConfigurer(&record.FakeRecorder{}, &v1.ObjectReference{Kind: "Node", Name: "node"},
		[]net.IP{net.ParseIP("10.0.0.5")}, []net.IP{net.ParseIP("10.96.0.10")}, "cluster.local", resolv)
	helper := &criHelper{FakeRuntimeHelper: &containertest.FakeRuntimeHelper{}, cfg: &p.cfg, dns: configurer}
	p.upstream = kubeRuntimeManager(t, p.cfg.RootDir, p.cfg.PodLogsDir, criMemory, helper, true, 100*time.Millisecond)
	return p
}

// sortDNSOptions: upstream's option order comes from map iteration.
func sortDNSOptions(c *runtimeapi.DNSConfig) {
	if c != nil {
		slices.Sort(c.Options)
	}
}

// sortEnvs: upstream's environment order comes from map iteration.
func sortEnvs(c *runtimeapi.ContainerConfig) {
	slices.SortFunc(c.Envs, func(a, b *runtimeapi.KeyValue) int { return strings.Compare(a.Key, b.Key) })
}

// TestCriTranslationMatchesUpstream runs random pods through nodekit's
// SandboxConfig and ContainerConfig and through the kubelet's
// generatePodSandboxConfig and generateContainerConfig
// (pkg/kubelet/kuberuntime), and wants equal messages: metadata, labels,
// annotations (container hash included), log paths, DNS, port mappings,
// sysctls, security contexts, sandbox and container resources, command and
// args. Errors must agree too.
func TestCriTranslationMatchesUpstream(t *testing.T) {
	p := newCRIPair(t)
	g := &criGen{r: rand.New(rand.NewPCG(37, 2025))}
	ctx := context.Background()
	var sandboxes, containers, errs int
	for i := range 1500 {
		pod := g.pod(i)
		attempt := uint32(g.r.IntN(3))
		want, wantErr := criUpstreamSandboxConfig(p.upstream, ctx, pod, attempt)
		got, gotErr := p.cfg.SandboxConfig(pod, cri.SandboxOptions{Attempt: attempt})
		if (wantErr != nil) != (gotErr != nil) {
			t.Fatalf("pod %d: sandbox errors differ: upstream %v, nodekit %v\n%s", i, wantErr, gotErr, criDump(pod))
		}
		if wantErr == nil {
			sortDNSOptions(want.DnsConfig)
			sortDNSOptions(got.DnsConfig)
			if !proto.Equal(got, want) {
				t.Fatalf("pod %d: sandbox config differs\nnodekit:  %v\nupstream: %v\n%s", i, got, want, criDump(pod))
			}
			sandboxes++
		} else {
			errs++
		}
		all := append(append([]v1.Container{}, pod.Spec.InitContainers...), pod.Spec.Containers...)
		for j := range all {
			c := &all[j]
			restarts := g.r.IntN(4)
			ips := []string{"10.244.3.7"}
			want, _, wantErr := criUpstreamContainerConfig(p.upstream, ctx, c, pod, restarts, ips[0], "sha256:feed", ips, nil, nil)
			got, gotErr := p.cfg.ContainerConfig(pod, c, cri.ContainerInput{RestartCount: restarts, ImageRef: "sha256:feed", PodIPs: ips, ImageUID: new(int64)})
			if (wantErr != nil) != (gotErr != nil) {
				t.Fatalf("pod %d container %s: errors differ: upstream %v, nodekit %v\n%s", i, c.Name, wantErr, gotErr, criDump(pod))
			}
			if wantErr != nil {
				errs++
				continue
			}
			// Upstream mounts the managed /etc/hosts in kubelet code this
			// comparison does not run (the helper returns no mounts).
			got.Mounts = slices.DeleteFunc(got.Mounts, func(m *runtimeapi.Mount) bool { return m.ContainerPath == "/etc/hosts" })
			sortEnvs(want)
			sortEnvs(got)
			if !proto.Equal(got, want) {
				t.Fatalf("pod %d container %s: config differs\nnodekit:  %v\nupstream: %v\n%s", i, c.Name, got, want, criDump(pod))
			}
			containers++
		}
	}
	t.Logf("equal: %d sandbox configs, %d container configs; %d inputs rejected by both", sandboxes, containers, errs)
	if sandboxes < 1000 || containers < 2000 || errs == 0 {
		t.Fatalf("the random pods do not cover enough: %d sandboxes, %d containers, %d errors", sandboxes, containers, errs)
	}
}

func criDump(pod *v1.Pod) string {
	return fmt.Sprintf("pod %s/%s: %+v", pod.Namespace, pod.Name, pod.Spec)
}

// criGen makes random pods that exercise the translation.
type criGen struct{ r *rand.Rand }

func (g *criGen) chance(p float64) bool { return g.r.Float64() < p }

func criPick[T any](g *criGen, from ...T) T { return from[g.r.IntN(len(from))] }

func (g *criGen) quantities() v1.ResourceList {
	l := v1.ResourceList{}
	if g.chance(0.6) {
		l[v1.ResourceCPU] = resource.MustParse(criPick(g, "0", "1m", "10m", "100m", "250m", "1", "1500m", "4"))
	}
	if g.chance(0.6) {
		l[v1.ResourceMemory] = resource.MustParse(criPick(g, "0", "1Mi", "64Mi", "100M", "1Gi", "3Gi"))
	}
	if g.chance(0.1) {
		l[v1.ResourceName("hugepages-2Mi")] = resource.MustParse(criPick(g, "2Mi", "4Mi"))
	}
	if g.chance(0.1) {
		l[v1.ResourceEphemeralStorage] = resource.MustParse("1Gi")
	}
	return l
}

func (g *criGen) resources() v1.ResourceRequirements {
	r := v1.ResourceRequirements{}
	if g.chance(0.6) {
		r.Requests = g.quantities()
	}
	if g.chance(0.5) {
		r.Limits = g.quantities()
		if g.chance(0.3) { // guaranteed-shaped
			r.Requests = r.Limits.DeepCopy()
		}
	}
	return r
}

func (g *criGen) securityContext() *v1.SecurityContext {
	if !g.chance(0.5) {
		return nil
	}
	sc := &v1.SecurityContext{}
	if g.chance(0.3) {
		sc.Privileged = new(g.chance(0.5))
	}
	if g.chance(0.3) {
		sc.RunAsUser = new(int64(criPick(g, 0, 1000, 65534)))
	}
	if g.chance(0.2) {
		sc.RunAsGroup = new(int64(criPick(g, 0, 3000)))
	}
	if g.chance(0.2) {
		sc.RunAsNonRoot = new(g.chance(0.7))
	}
	if g.chance(0.3) {
		sc.AllowPrivilegeEscalation = new(g.chance(0.5))
	}
	if g.chance(0.2) {
		sc.ReadOnlyRootFilesystem = new(true)
	}
	if g.chance(0.3) {
		sc.Capabilities = &v1.Capabilities{Add: []v1.Capability{"NET_ADMIN"}, Drop: []v1.Capability{"ALL"}}
	}
	if g.chance(0.1) {
		sc.ProcMount = new(criPick(g, v1.DefaultProcMount, v1.UnmaskedProcMount))
	}
	if g.chance(0.2) {
		sc.SeccompProfile = g.seccomp()
	}
	if g.chance(0.1) {
		sc.AppArmorProfile = g.appArmor()
	}
	if g.chance(0.1) {
		sc.SELinuxOptions = &v1.SELinuxOptions{Level: "s0:c1,c2", Type: "spc_t"}
	}
	return sc
}

func (g *criGen) seccomp() *v1.SeccompProfile {
	switch g.r.IntN(4) {
	case 0:
		return &v1.SeccompProfile{Type: v1.SeccompProfileTypeRuntimeDefault}
	case 1:
		return &v1.SeccompProfile{Type: v1.SeccompProfileTypeUnconfined}
	case 2:
		return &v1.SeccompProfile{Type: v1.SeccompProfileTypeLocalhost, LocalhostProfile: new("profiles/audit.json")}
	}
	return &v1.SeccompProfile{Type: v1.SeccompProfileTypeLocalhost} // an error in both
}

func (g *criGen) appArmor() *v1.AppArmorProfile {
	switch g.r.IntN(3) {
	case 0:
		return &v1.AppArmorProfile{Type: v1.AppArmorProfileTypeRuntimeDefault}
	case 1:
		return &v1.AppArmorProfile{Type: v1.AppArmorProfileTypeUnconfined}
	}
	return &v1.AppArmorProfile{Type: v1.AppArmorProfileTypeLocalhost, LocalhostProfile: new("k8s-nginx")}
}

func (g *criGen) container(name string, sidecar bool) v1.Container {
	c := v1.Container{
		Name: name, Image: criPick(g, "busybox", "busybox:1.36", "registry.k8s.io/pause:3.10.2", "localhost:5000/app@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"),
		Resources:                g.resources(),
		SecurityContext:          g.securityContext(),
		TerminationMessagePath:   criPick(g, "/dev/termination-log", "", "/tmp/msg"),
		TerminationMessagePolicy: criPick(g, v1.TerminationMessageReadFile, v1.TerminationMessageFallbackToLogsOnError),
		WorkingDir:               criPick(g, "", "/work"),
		Stdin:                    g.chance(0.1), StdinOnce: g.chance(0.05), TTY: g.chance(0.1),
	}
	if sidecar {
		c.RestartPolicy = new(v1.ContainerRestartPolicyAlways)
	}
	if g.chance(0.5) {
		c.Command = []string{"sh", "-c", criPick(g, "echo $(A) $(B)", "exec $(MISSING)", "echo $$(A) $(", "true")}
	}
	if g.chance(0.3) {
		c.Args = []string{criPick(g, "--a=$(A)", "$(B)$(A)", "x")}
	}
	if g.chance(0.5) {
		c.Env = []v1.EnvVar{{Name: "A", Value: "alpha"}, {Name: "B", Value: "$(A)-beta"}}
		if g.chance(0.5) {
			c.Env = append(c.Env, v1.EnvVar{Name: "POD", ValueFrom: &v1.EnvVarSource{FieldRef: &v1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.name"}}})
		}
	}
	if g.chance(0.4) {
		for k := range g.r.IntN(3) + 1 {
			p := v1.ContainerPort{ContainerPort: int32(80 + g.r.IntN(3)), Protocol: criPick(g, v1.ProtocolTCP, v1.ProtocolUDP, v1.ProtocolSCTP)}
			if g.chance(0.5) {
				p.Name = fmt.Sprintf("p%d", g.r.IntN(2))
			}
			if g.chance(0.3) {
				p.HostPort = int32(8000 + k)
			}
			if g.chance(0.2) {
				p.HostIP = criPick(g, "127.0.0.1", "::1")
			}
			c.Ports = append(c.Ports, p)
		}
	}
	if g.chance(0.2) {
		c.Lifecycle = &v1.Lifecycle{PreStop: &v1.LifecycleHandler{Exec: &v1.ExecAction{Command: []string{"sleep", "1"}}}}
		if g.chance(0.5) {
			c.Lifecycle.StopSignal = new(criPick(g, v1.SIGTERM, v1.SIGUSR1, v1.Signal("SIGRTMIN+3")))
		}
	}
	return c
}

func (g *criGen) pod(i int) *v1.Pod {
	links := g.chance(0.5)
	pod := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name:      criPick(g, "web", "a-very-long-pod-name-that-goes-on-and-on-and-on-beyond-sixty-three-chars", "db-0"),
			Namespace: criPick(g, "default", "shop"), UID: kubetypes.UID(fmt.Sprintf("uid-%d", i)),
		},
		Spec: v1.PodSpec{
			DNSPolicy:          criPick(g, v1.DNSClusterFirst, v1.DNSClusterFirstWithHostNet, v1.DNSDefault, v1.DNSNone, ""),
			HostNetwork:        g.chance(0.2),
			HostPID:            g.chance(0.1),
			HostIPC:            g.chance(0.1),
			EnableServiceLinks: &links,
		},
	}
	if g.chance(0.5) {
		pod.Labels = map[string]string{"app": "x", "io.kubernetes.pod.name": "spoofed"}
	}
	if g.chance(0.5) {
		pod.Annotations = map[string]string{"note": "y", v1.DeprecatedAppArmorBetaContainerAnnotationKeyPrefix + "c0": criPick(g, "runtime/default", "unconfined", "localhost/prof", "bogus")}
	}
	if g.chance(0.3) {
		pod.Spec.Hostname = criPick(g, "front", "Bad_Name")
	}
	if g.chance(0.3) {
		pod.Spec.Subdomain = "svc1"
		pod.Spec.SetHostnameAsFQDN = new(g.chance(0.5))
	}
	if g.chance(0.3) {
		pod.Spec.DNSConfig = &v1.PodDNSConfig{Nameservers: []string{"1.1.1.1", "10.96.0.10"}, Searches: []string{"extra.example", "corp.example"},
			Options: []v1.PodDNSConfigOption{{Name: "ndots", Value: new("3")}, {Name: "edns0"}}}
	}
	if g.chance(0.9) {
		sc := &v1.PodSecurityContext{}
		if g.chance(0.3) {
			sc.RunAsUser = new(int64(criPick(g, 0, 1000)))
		}
		if g.chance(0.2) {
			sc.RunAsGroup = new(int64(2000))
		}
		if g.chance(0.2) {
			sc.RunAsNonRoot = new(g.chance(0.5))
		}
		if g.chance(0.3) {
			sc.FSGroup = new(int64(3000))
		}
		if g.chance(0.3) {
			sc.SupplementalGroups = []int64{4000, 4001}
		}
		if g.chance(0.1) {
			sc.SupplementalGroupsPolicy = new(criPick(g, v1.SupplementalGroupsPolicyMerge, v1.SupplementalGroupsPolicyStrict, v1.SupplementalGroupsPolicy("Bogus")))
		}
		if g.chance(0.3) {
			sc.Sysctls = []v1.Sysctl{{Name: "net.core.somaxconn", Value: "1024"}, {Name: "kernel.shm_rmid_forced", Value: "1"}}
		}
		if g.chance(0.2) {
			sc.SeccompProfile = g.seccomp()
		}
		if g.chance(0.1) {
			sc.AppArmorProfile = g.appArmor()
		}
		if g.chance(0.1) {
			sc.SELinuxOptions = &v1.SELinuxOptions{Level: "s0:c3"}
		}
		pod.Spec.SecurityContext = sc
	}
	if g.chance(0.2) {
		pod.Spec.ShareProcessNamespace = new(g.chance(0.5))
	}
	if g.chance(0.3) {
		pod.Spec.TerminationGracePeriodSeconds = new(int64(criPick(g, 0, 30)))
	}
	if g.chance(0.1) {
		pod.DeletionGracePeriodSeconds = new(int64(5))
	}
	if g.chance(0.1) {
		pod.Spec.Overhead = v1.ResourceList{v1.ResourceCPU: resource.MustParse("250m"), v1.ResourceMemory: resource.MustParse("120Mi")}
	}
	if g.chance(0.15) {
		pod.Spec.Resources = &v1.ResourceRequirements{Requests: g.quantities(), Limits: g.quantities()}
	}
	if g.chance(0.1) {
		pod.Spec.Priority = new(int32(2_000_001_000))
		pod.Spec.PriorityClassName = "system-node-critical"
	}
	for k := range g.r.IntN(3) {
		pod.Spec.InitContainers = append(pod.Spec.InitContainers, g.container(fmt.Sprintf("i%d", k), g.chance(0.4)))
	}
	for k := range g.r.IntN(3) + 1 {
		pod.Spec.Containers = append(pod.Spec.Containers, g.container(fmt.Sprintf("c%d", k), false))
	}
	return pod
}
