package cri

import (
	corev1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/kube-nodekit/nodekit/qos"
)

// Config is what the kubelet knows about its node, flags and feature gates
// that shapes the CRI messages it builds from a pod. DefaultConfig returns a
// v1.37 kubelet's defaults; change fields from there (a zero Config has no
// log directory and CFS quotas off).
//
// Config's methods (SandboxConfig, ContainerConfig, RuntimeHandler) are pure:
// they read the pod and the Config and do no I/O. What the kubelet looks up
// elsewhere comes in through the lookup fields (RuntimeClasses, EnvSource)
// or ContainerInput.
type Config struct {
	// QOS holds the feature gates and node settings of the resource
	// computations (cgroup driver and root, CFS quota and period, huge
	// page sizes, PodLevelResources).
	QOS qos.Config
	// MemoryCapacity is the node's memory in bytes, for the OOM score of
	// Burstable containers.
	MemoryCapacity int64
	// CgroupV2 is true on a cgroup v2 (unified) node. It adds the cgroup v2
	// keys the kubelet sends: memory.high=max and, unless
	// SingleProcessOOMKill, memory.oom.group=1.
	CgroupV2 bool
	// SingleProcessOOMKill is --single-process-oom-kill (cgroup v2 only;
	// default false: the whole container is killed on OOM).
	SingleProcessOOMKill bool
	// SwapControllerAvailable says the node can limit swap
	// (memory.memsw.limit_in_bytes on cgroup v1, memory.swap.max on v2);
	// the kubelet then turns swap off for containers (NoSwap).
	SwapControllerAvailable bool

	// RootDir is --root-dir (/var/lib/kubelet); pod directories, the
	// managed /etc/hosts file and emptyDir volumes live under it.
	RootDir string
	// PodLogsDir is --pod-logs-dir (/var/log/pods).
	PodLogsDir string

	// ClusterDNS is --cluster-dns: the nameservers of ClusterFirst pods.
	ClusterDNS []string
	// ClusterDomain is --cluster-domain (empty by default; clusters set
	// "cluster.local").
	ClusterDomain string
	// HostDNS is the node's resolver configuration, parsed from
	// --resolv-conf with ParseResolvConf. Nil stands for --resolv-conf="":
	// pods that use the host's DNS get a localhost nameserver.
	HostDNS *runtimeapi.DNSConfig
	// NodeIPs are the node's addresses, for the localhost nameserver family
	// when HostDNS is nil.
	NodeIPs []string

	// SeccompDefault is --seccomp-default: containers without a seccomp
	// profile get RuntimeDefault instead of Unconfined.
	SeccompDefault bool
	// SeccompProfileRoot is where Localhost seccomp profiles live
	// (<root-dir>/seccomp).
	SeccompProfileRoot string
	// ExtraMaskedPaths are masked in every container besides the defaults:
	// the kubelet adds /sys/devices/system/cpu/cpu<N>/thermal_throttle for
	// each possible CPU where that directory exists.
	ExtraMaskedPaths []string
	// SELinuxEnabled says whether SELinux is on; relabel requests are
	// dropped when it is off, as the kubelet does.
	SELinuxEnabled bool
	// SupportsRecursiveReadOnly says whether the runtime handler supports
	// recursive read-only mounts (from the runtime's Status).
	SupportsRecursiveReadOnly bool
	// ContainerStopSignals is the ContainerStopSignals feature gate (alpha,
	// off in v1.37): lifecycle.stopSignal reaches the runtime.
	ContainerStopSignals bool
	// DefaultPodSysctls is --default-pod-sysctls (DefaultPodSysctls gate):
	// namespaced sysctls every pod gets unless it shares the host
	// namespace they belong to.
	DefaultPodSysctls map[string]string

	// NodeAllocatable is the node's allocatable resources: the downward
	// API reports them as the limits of a container that sets none.
	NodeAllocatable corev1.ResourceList

	// RuntimeClasses resolves spec.runtimeClassName to a runtime handler;
	// nil means pods with a runtime class are rejected.
	RuntimeClasses RuntimeClassLookup
	// EnvSource resolves env values from ConfigMaps and Secrets; nil means
	// such references are errors (as for a kubelet without a client).
	EnvSource EnvSource
}

// The kubelet's default paths.
const (
	DefaultRootDir    = "/var/lib/kubelet"
	DefaultPodLogsDir = "/var/log/pods"
)

// DefaultConfig returns the configuration of a v1.37 kubelet with default
// flags on a cgroup v1 node. Set MemoryCapacity (Burstable OOM scores
// depend on it) and the DNS fields for the node at hand.
func DefaultConfig() Config {
	return Config{
		QOS:                qos.DefaultConfig(),
		RootDir:            DefaultRootDir,
		PodLogsDir:         DefaultPodLogsDir,
		SeccompProfileRoot: DefaultRootDir + "/seccomp",
	}
}

// RuntimeClassLookup maps a RuntimeClass name to its handler, as the
// kubelet's runtimeclass.Manager does from the RuntimeClass objects.
type RuntimeClassLookup interface {
	RuntimeHandler(runtimeClassName string) (string, error)
}

// RuntimeClassMap is a RuntimeClassLookup from a fixed map.
type RuntimeClassMap map[string]string

// RuntimeHandler returns the handler of name, or an error naming it.
func (m RuntimeClassMap) RuntimeHandler(name string) (string, error) {
	h, ok := m[name]
	if !ok {
		return "", &notFoundError{kind: "RuntimeClass", name: name}
	}
	return h, nil
}

// RuntimeHandler returns the runtime handler RunPodSandbox must get for
// the pod: "" (the runtime's default) without spec.runtimeClassName,
// otherwise the handler of that RuntimeClass.
func (c *Config) RuntimeHandler(pod *corev1.Pod) (string, error) {
	name := pod.Spec.RuntimeClassName
	if name == nil || *name == "" {
		return "", nil
	}
	if c.RuntimeClasses == nil {
		return "", &notFoundError{kind: "RuntimeClass", name: *name}
	}
	return c.RuntimeClasses.RuntimeHandler(*name)
}

type notFoundError struct{ kind, name string }

func (e *notFoundError) Error() string {
	return "cri: " + e.kind + " " + e.name + " not found"
}
func (e *notFoundError) Unwrap() error { return ErrNotFound }
