package cri_test

import (
	"fmt"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/utils/ptr"

	"github.com/kube-nodekit/nodekit/cri"
)

// basePod is a defaulted pod with one container.
func basePod() *corev1.Pod {
	links := true
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop", UID: "1234-abcd",
			Labels: map[string]string{"app": "web"}, Annotations: map[string]string{"note": "x"}},
		Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Name: "c", Image: "busybox:1.36",
				TerminationMessagePath: "/dev/termination-log", TerminationMessagePolicy: corev1.TerminationMessageReadFile}},
			DNSPolicy:          corev1.DNSClusterFirst,
			SecurityContext:    &corev1.PodSecurityContext{},
			EnableServiceLinks: &links,
		},
	}
}

func clusterConfig() cri.Config {
	cfg := cri.DefaultConfig()
	cfg.ClusterDNS = []string{"10.96.0.10"}
	cfg.ClusterDomain = "cluster.local"
	cfg.HostDNS = &runtimeapi.DNSConfig{Servers: []string{"192.168.1.1"}, Searches: []string{"corp.example"}, Options: []string{"timeout:2"}}
	cfg.MemoryCapacity = 4 << 30
	return cfg
}

// TestSandboxConfig pins generatePodSandboxConfig
// (pkg/kubelet/kuberuntime/kuberuntime_sandbox.go) on a whole message.
func TestSandboxConfig(t *testing.T) {
	cfg := clusterConfig()
	pod := basePod()
	pod.Spec.Containers[0].Ports = []corev1.ContainerPort{
		{Name: "http", ContainerPort: 80, HostPort: 8080, Protocol: corev1.ProtocolTCP},
		{Name: "http", ContainerPort: 81, Protocol: corev1.ProtocolTCP}, // same name: dropped
		{ContainerPort: 53, Protocol: corev1.ProtocolUDP, HostIP: "fd00::1"},
	}
	pod.Spec.Containers[0].Resources = limits("500m", "128Mi")
	got, err := cfg.SandboxConfig(pod, cri.SandboxOptions{Attempt: 2})
	if err != nil {
		t.Fatal(err)
	}
	want := &runtimeapi.PodSandboxConfig{
		Metadata: &runtimeapi.PodSandboxMetadata{Name: "web", Namespace: "shop", Uid: "1234-abcd", Attempt: 2},
		Hostname: "web",
		Labels: map[string]string{"app": "web", cri.PodNameLabel: "web", cri.PodNamespaceLabel: "shop",
			cri.PodUIDLabel: "1234-abcd"},
		Annotations:  map[string]string{"note": "x"},
		LogDirectory: "/var/log/pods/shop_web_1234-abcd",
		DnsConfig: &runtimeapi.DNSConfig{Servers: []string{"10.96.0.10"},
			Searches: []string{"shop.svc.cluster.local", "svc.cluster.local", "cluster.local", "corp.example"},
			Options:  []string{"ndots:5"}},
		PortMappings: []*runtimeapi.PortMapping{
			{Protocol: runtimeapi.Protocol_TCP, ContainerPort: 80, HostPort: 8080},
			{Protocol: runtimeapi.Protocol_UDP, ContainerPort: 53, HostIp: "fd00::1"},
		},
		Linux: &runtimeapi.LinuxPodSandboxConfig{
			CgroupParent: "/kubepods/pod1234-abcd",
			SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
				NamespaceOptions: &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_POD, Pid: runtimeapi.NamespaceMode_CONTAINER, Ipc: runtimeapi.NamespaceMode_POD},
				Seccomp:          &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault},
			},
			Sysctls:   map[string]string{},
			Resources: &runtimeapi.LinuxContainerResources{CpuPeriod: 100000, CpuQuota: 50000, CpuShares: 512, MemoryLimitInBytes: 128 << 20},
			Overhead:  &runtimeapi.LinuxContainerResources{},
		},
	}
	if !proto.Equal(got, want) {
		t.Fatalf("SandboxConfig:\n got %v\nwant %v", got, want)
	}
}

func TestSandboxHostnameAndDomain(t *testing.T) {
	cfg := clusterConfig()
	long := strings.Repeat("a", 62) + "-b"
	for _, tc := range []struct {
		name, podName, hostname, subdomain string
		fqdn                               *bool
		hostNetwork                        bool
		override                           *string
		want, err                          string
	}{
		{name: "pod name", podName: "web", want: "web"},
		{name: "spec.hostname", podName: "web", hostname: "front", want: "front"},
		{name: "subdomain without FQDN", podName: "web", subdomain: "svc1", want: "web"},
		{name: "FQDN", podName: "web", subdomain: "svc1", fqdn: ptr.To(true), want: "web.svc1.shop.svc.cluster.local"},
		{name: "FQDN needs a subdomain", podName: "web", fqdn: ptr.To(true), want: "web"},
		{name: "FQDN too long", podName: "w" + strings.Repeat("x", 40), subdomain: "svc1", fqdn: ptr.To(true), err: "too long"},
		{name: "cut at 63 without trailing dash", podName: long, want: strings.Repeat("a", 62)},
		{name: "host network: no hostname", podName: "web", hostNetwork: true, want: ""},
		{name: "override", podName: "web", override: ptr.To("my.host"), subdomain: "svc1", want: "my.host"},
		{name: "bad hostname", podName: "web", hostname: "Not_A_Label", err: "not a valid DNS label"},
		{name: "bad subdomain", podName: "web", subdomain: "-x", err: "not a valid DNS label"},
		{name: "bad override", podName: "web", override: ptr.To("UPPER"), err: "not a valid DNS subdomain"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pod := basePod()
			pod.Name, pod.Spec.Hostname, pod.Spec.Subdomain = tc.podName, tc.hostname, tc.subdomain
			pod.Spec.SetHostnameAsFQDN, pod.Spec.HostNetwork, pod.Spec.HostnameOverride = tc.fqdn, tc.hostNetwork, tc.override
			got, err := cfg.SandboxConfig(pod, cri.SandboxOptions{})
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Hostname != tc.want {
				t.Fatalf("Hostname = %q, want %q", got.Hostname, tc.want)
			}
		})
	}
}

// TestPodDNS pins GetPodDNS (pkg/kubelet/network/dns/dns.go).
func TestPodDNS(t *testing.T) {
	withDNSConfig := &corev1.PodDNSConfig{Nameservers: []string{"1.1.1.1", "10.96.0.10"}, Searches: []string{"extra.example"},
		Options: []corev1.PodDNSConfigOption{{Name: "ndots", Value: ptr.To("2")}, {Name: "edns0"}}}
	for _, tc := range []struct {
		name        string
		policy      corev1.DNSPolicy
		hostNetwork bool
		dnsConfig   *corev1.PodDNSConfig
		configure   func(*cri.Config)
		want        *runtimeapi.DNSConfig
	}{
		{name: "ClusterFirst", policy: corev1.DNSClusterFirst,
			want: &runtimeapi.DNSConfig{Servers: []string{"10.96.0.10"}, Searches: []string{"shop.svc.cluster.local", "svc.cluster.local", "cluster.local", "corp.example"}, Options: []string{"ndots:5"}}},
		{name: "ClusterFirst on host network is Default", policy: corev1.DNSClusterFirst, hostNetwork: true,
			want: &runtimeapi.DNSConfig{Servers: []string{"192.168.1.1"}, Searches: []string{"corp.example"}, Options: []string{"timeout:2"}}},
		{name: "ClusterFirstWithHostNet", policy: corev1.DNSClusterFirstWithHostNet, hostNetwork: true,
			want: &runtimeapi.DNSConfig{Servers: []string{"10.96.0.10"}, Searches: []string{"shop.svc.cluster.local", "svc.cluster.local", "cluster.local", "corp.example"}, Options: []string{"ndots:5"}}},
		{name: "empty policy is ClusterFirst", policy: "",
			want: &runtimeapi.DNSConfig{Servers: []string{"10.96.0.10"}, Searches: []string{"shop.svc.cluster.local", "svc.cluster.local", "cluster.local", "corp.example"}, Options: []string{"ndots:5"}}},
		{name: "Default", policy: corev1.DNSDefault,
			want: &runtimeapi.DNSConfig{Servers: []string{"192.168.1.1"}, Searches: []string{"corp.example"}, Options: []string{"timeout:2"}}},
		{name: "None with dnsConfig", policy: corev1.DNSNone, dnsConfig: withDNSConfig,
			want: &runtimeapi.DNSConfig{Servers: []string{"1.1.1.1", "10.96.0.10"}, Searches: []string{"extra.example"}, Options: []string{"ndots:2", "edns0"}}},
		{name: "ClusterFirst merges dnsConfig", policy: corev1.DNSClusterFirst, dnsConfig: withDNSConfig,
			want: &runtimeapi.DNSConfig{Servers: []string{"10.96.0.10", "1.1.1.1"},
				Searches: []string{"shop.svc.cluster.local", "svc.cluster.local", "cluster.local", "corp.example", "extra.example"},
				Options:  []string{"ndots:2", "edns0"}}},
		{name: "ClusterFirst without cluster DNS falls back to Default", policy: corev1.DNSClusterFirst,
			configure: func(c *cri.Config) { c.ClusterDNS = nil },
			want:      &runtimeapi.DNSConfig{Servers: []string{"192.168.1.1"}, Searches: []string{"corp.example"}, Options: []string{"timeout:2"}}},
		{name: "Default without resolv.conf: localhost", policy: corev1.DNSDefault,
			configure: func(c *cri.Config) { c.HostDNS = nil; c.NodeIPs = []string{"10.0.0.5", "fd00::5"} },
			want:      &runtimeapi.DNSConfig{Servers: []string{"127.0.0.1", "::1"}, Searches: []string{"."}}},
		{name: "nameservers cut to 3", policy: corev1.DNSNone,
			dnsConfig: &corev1.PodDNSConfig{Nameservers: []string{"1.1.1.1", "2.2.2.2", "3.3.3.3", "4.4.4.4"}},
			want:      &runtimeapi.DNSConfig{Servers: []string{"1.1.1.1", "2.2.2.2", "3.3.3.3"}}},
		{name: "search domains over 253 characters dropped", policy: corev1.DNSNone,
			dnsConfig: &corev1.PodDNSConfig{Searches: []string{"a.example", strings.Repeat("b", 254), "c.example"}},
			want:      &runtimeapi.DNSConfig{Searches: []string{"a.example", "c.example"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := clusterConfig()
			if tc.configure != nil {
				tc.configure(&cfg)
			}
			pod := basePod()
			pod.Spec.DNSPolicy, pod.Spec.HostNetwork, pod.Spec.DNSConfig = tc.policy, tc.hostNetwork, tc.dnsConfig
			if got := cfg.PodDNS(pod); !proto.Equal(got, tc.want) {
				t.Fatalf("PodDNS:\n got %v\nwant %v", got, tc.want)
			}
		})
	}
}

func TestPodDNSSearchLineLimits(t *testing.T) {
	var searches []string
	for i := range 40 {
		searches = append(searches, fmt.Sprintf("%02d", i)+strings.Repeat("x", 58)+".example")
	}
	cfg := clusterConfig()
	pod := basePod()
	pod.Spec.DNSPolicy = corev1.DNSNone
	pod.Spec.DNSConfig = &corev1.PodDNSConfig{Searches: searches}
	got := cfg.PodDNS(pod).Searches
	if n := len(strings.Join(got, " ")); n > 2048 || len(got) > 32 {
		t.Fatalf("search line of %d domains, %d characters: over the limits", len(got), n)
	}
	// 32 kept (2207 characters), then 3 cut from the end to fit in 2048.
	if len(got) != 29 || got[28] != searches[28] {
		t.Fatalf("kept %d domains, want the first 29", len(got))
	}
}

func TestParseResolvConf(t *testing.T) {
	got, err := cri.ParseResolvConf(strings.NewReader(`# comment
nameserver 10.0.0.1
nameserver 10.0.0.2
search old.example
search a.example. b.example .
options ndots:2 timeout:1
options ndots:3
`))
	if err != nil {
		t.Fatal(err)
	}
	want := &runtimeapi.DNSConfig{Servers: []string{"10.0.0.1", "10.0.0.2"}, Searches: []string{"a.example", "b.example"}, Options: []string{"ndots:3", "timeout:1"}}
	if !proto.Equal(got, want) {
		t.Fatalf("ParseResolvConf = %v, want %v", got, want)
	}
	if _, err := cri.ParseResolvConf(strings.NewReader("nameserver\n")); err == nil {
		t.Error("nameserver without address: no error")
	}
}

// TestSandboxSecurity pins generatePodSandboxLinuxConfig.
func TestSandboxSecurity(t *testing.T) {
	cfg := clusterConfig()
	pod := basePod()
	policy := corev1.SupplementalGroupsPolicyStrict
	pod.Spec.HostNetwork, pod.Spec.HostPID, pod.Spec.HostIPC = true, true, true
	pod.Spec.SecurityContext = &corev1.PodSecurityContext{
		RunAsUser: ptr.To[int64](1000), RunAsGroup: ptr.To[int64](2000), FSGroup: ptr.To[int64](3000),
		SupplementalGroups: []int64{4000}, SupplementalGroupsPolicy: &policy,
		SELinuxOptions: &corev1.SELinuxOptions{Level: "s0:c1"},
		Sysctls:        []corev1.Sysctl{{Name: "net.core.somaxconn", Value: "1024"}},
	}
	pod.Spec.InitContainers = []corev1.Container{{Name: "i", SecurityContext: &corev1.SecurityContext{Privileged: ptr.To(true)}}}
	got, err := cfg.SandboxConfig(pod, cri.SandboxOptions{ExtraSupplementalGroups: []int64{5000}})
	if err != nil {
		t.Fatal(err)
	}
	want := &runtimeapi.LinuxSandboxSecurityContext{
		NamespaceOptions:         &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_NODE, Pid: runtimeapi.NamespaceMode_NODE, Ipc: runtimeapi.NamespaceMode_NODE},
		SelinuxOptions:           &runtimeapi.SELinuxOption{Level: "s0:c1"},
		RunAsUser:                &runtimeapi.Int64Value{Value: 1000},
		RunAsGroup:               &runtimeapi.Int64Value{Value: 2000},
		SupplementalGroups:       []int64{3000, 5000, 4000},
		Privileged:               true,
		Seccomp:                  &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault},
		SupplementalGroupsPolicy: runtimeapi.SupplementalGroupsPolicy_Strict,
	}
	if !proto.Equal(got.Linux.SecurityContext, want) {
		t.Fatalf("security context:\n got %v\nwant %v", got.Linux.SecurityContext, want)
	}
	if got.Linux.Sysctls["net.core.somaxconn"] != "1024" || got.Hostname != "" || got.LogDirectory == "" {
		t.Errorf("sysctls %v, hostname %q", got.Linux.Sysctls, got.Hostname)
	}

	// Upstream quirk: no pod security context, no namespace options.
	pod.Spec.SecurityContext = nil
	got, err = cfg.SandboxConfig(pod, cri.SandboxOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Linux.SecurityContext.NamespaceOptions != nil {
		t.Errorf("namespace options without a pod security context: %v", got.Linux.SecurityContext.NamespaceOptions)
	}
}

func TestDefaultPodSysctls(t *testing.T) {
	cfg := clusterConfig()
	cfg.DefaultPodSysctls = map[string]string{"net/ipv4/ip_unprivileged_port_start": "0", "kernel.shmmax": "1", "user.max_user_namespaces": "9", "vm.swappiness": "1"}
	pod := basePod()
	pod.Spec.SecurityContext.Sysctls = []corev1.Sysctl{{Name: "kernel.shmmax", Value: "2"}}
	got, err := cfg.SandboxConfig(pod, cri.SandboxOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"net.ipv4.ip_unprivileged_port_start": "0", "kernel.shmmax": "2"}
	if len(got.Linux.Sysctls) != len(want) || got.Linux.Sysctls["net.ipv4.ip_unprivileged_port_start"] != "0" || got.Linux.Sysctls["kernel.shmmax"] != "2" {
		t.Fatalf("sysctls = %v, want %v", got.Linux.Sysctls, want)
	}
	pod.Spec.HostNetwork, pod.Spec.HostUsers = true, ptr.To(false)
	got, _ = cfg.SandboxConfig(pod, cri.SandboxOptions{})
	if _, ok := got.Linux.Sysctls["net.ipv4.ip_unprivileged_port_start"]; ok || got.Linux.Sysctls["user.max_user_namespaces"] != "9" {
		t.Fatalf("host network / user namespace sysctls = %v", got.Linux.Sysctls)
	}
}

// TestSandboxResources pins calculateSandboxResources: pod totals with
// sidecars, without overhead; the overhead on its own.
func TestSandboxResources(t *testing.T) {
	cfg := clusterConfig()
	pod := basePod()
	always := corev1.ContainerRestartPolicyAlways
	pod.Spec.Containers[0].Resources = corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m")},
		Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("200m"), corev1.ResourceMemory: resource.MustParse("100Mi")},
	}
	pod.Spec.InitContainers = []corev1.Container{
		{Name: "sidecar", RestartPolicy: &always, Resources: limits("50m", "50Mi")},
		{Name: "big-init", Resources: limits("1", "10Mi")},
	}
	pod.Spec.Overhead = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("250m"), corev1.ResourceMemory: resource.MustParse("120Mi")}
	res, overhead := cfg.SandboxResources(pod)
	// requests: max(100m+50m, 1000m+50m) = 1050m; limits cpu max(250m, 1050m), memory max(150Mi, 60Mi)
	wantRes := &runtimeapi.LinuxContainerResources{CpuShares: 1075, CpuQuota: 105000, CpuPeriod: 100000, MemoryLimitInBytes: 150 << 20}
	wantOverhead := &runtimeapi.LinuxContainerResources{CpuShares: 256, CpuQuota: 25000, CpuPeriod: 100000, MemoryLimitInBytes: 120 << 20}
	if !proto.Equal(res, wantRes) || !proto.Equal(overhead, wantOverhead) {
		t.Fatalf("SandboxResources:\n got %v / %v\nwant %v / %v", res, overhead, wantRes, wantOverhead)
	}

	// No cpu request anywhere: shares from the limit.
	pod = basePod()
	pod.Spec.Containers[0].Resources.Limits = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1")}
	res, _ = cfg.SandboxResources(pod)
	if res.CpuShares != 1024 || res.CpuQuota != 100000 || res.MemoryLimitInBytes != 0 {
		t.Fatalf("limit-only sandbox resources = %v", res)
	}

	// Pod-level resources replace the containers' sum.
	pod.Spec.Resources = &corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2"), corev1.ResourceMemory: resource.MustParse("1Gi")}}
	res, _ = cfg.SandboxResources(pod)
	if res.CpuQuota != 200000 || res.MemoryLimitInBytes != 1<<30 {
		t.Fatalf("pod-level sandbox resources = %v", res)
	}
}

func TestRuntimeHandler(t *testing.T) {
	cfg := clusterConfig()
	pod := basePod()
	if h, err := cfg.RuntimeHandler(pod); h != "" || err != nil {
		t.Fatalf("no runtime class: %q, %v", h, err)
	}
	pod.Spec.RuntimeClassName = ptr.To("gvisor")
	if _, err := cfg.RuntimeHandler(pod); !cri.IsNotFound(err) {
		t.Fatalf("unknown runtime class: err = %v, want not found", err)
	}
	cfg.RuntimeClasses = cri.RuntimeClassMap{"gvisor": "runsc"}
	if h, err := cfg.RuntimeHandler(pod); h != "runsc" || err != nil {
		t.Fatalf("runtime class gvisor: %q, %v", h, err)
	}
}

func TestSandboxConfigNilPod(t *testing.T) {
	cfg := cri.DefaultConfig()
	if _, err := cfg.SandboxConfig(nil, cri.SandboxOptions{}); err == nil {
		t.Fatal("nil pod: no error")
	}
	pod := basePod()
	pod.UID = "has/slash"
	if _, err := cfg.SandboxConfig(pod, cri.SandboxOptions{}); err == nil {
		t.Fatal("UID that cannot be a cgroup name: no error")
	}
}
