package cri

import (
	"fmt"
	"path/filepath"
	"strings"

	corev1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// SandboxOptions is what the kubelet knows about a sandbox besides the pod.
type SandboxOptions struct {
	// Attempt counts the pod's sandboxes: 0 for the first, one more each
	// time the kubelet has to recreate it.
	Attempt uint32
	// UserNamespace is the pod's user namespace mapping when
	// spec.hostUsers is false (the kubelet allocates it); nil otherwise.
	UserNamespace *runtimeapi.UserNamespace
	// ExtraSupplementalGroups are the groups the pod's persistent volumes
	// ask for (pv.beta.kubernetes.io/gid).
	ExtraSupplementalGroups []int64
}

// PodLogsDirectory is the directory of a pod's container logs:
// <pod-logs-dir>/<namespace>_<name>_<uid> (BuildPodLogsDirectory in
// pkg/kubelet/kuberuntime/helpers.go).
func (c *Config) PodLogsDirectory(pod *corev1.Pod) string {
	return filepath.Join(c.PodLogsDir, strings.Join([]string{pod.Namespace, pod.Name, string(pod.UID)}, "_"))
}

// ContainerLogPath is a container's log file relative to the pod's log
// directory: <container>/<restartCount>.log (buildContainerLogsPath).
func ContainerLogPath(containerName string, restartCount int) string {
	return filepath.Join(containerName, fmt.Sprintf("%d.log", restartCount))
}

// SandboxConfig translates a pod into the PodSandboxConfig the kubelet gives
// RunPodSandbox (generatePodSandboxConfig in
// pkg/kubelet/kuberuntime/kuberuntime_sandbox.go):
//
//   - metadata: the pod's name, namespace and uid, and the attempt;
//   - labels (the pod's plus io.kubernetes.pod.*) and annotations (the
//     pod's);
//   - DNS (PodDNS) and, unless the pod uses the host network, the hostname
//     (PodHostname, as an FQDN with setHostnameAsFQDN);
//   - the log directory (PodLogsDirectory), which the caller creates;
//   - port mappings of every regular container's ports, duplicates by name
//     dropped;
//   - Linux: the cgroup parent from qos, a privileged sandbox if any
//     container is privileged, RuntimeDefault seccomp, the pod's sysctls
//     (after the node's DefaultPodSysctls), and from the pod security
//     context run-as user and group, namespaces, supplemental groups and
//     policy, and SELinux options;
//   - sandbox and overhead resources (SandboxResources).
//
// As upstream, namespaces, run-as and groups are set only when the pod has
// a security context; the apiserver always gives it one (possibly empty),
// so set one on pods built by hand, or a hostNetwork pod gets its own
// network namespace. The runtime handler is not part of the config; see
// RuntimeHandler.
func (c *Config) SandboxConfig(pod *corev1.Pod, opts SandboxOptions) (*runtimeapi.PodSandboxConfig, error) {
	if pod == nil {
		return nil, fmt.Errorf("cri: SandboxConfig: nil pod")
	}
	cfg := &runtimeapi.PodSandboxConfig{
		Metadata: &runtimeapi.PodSandboxMetadata{
			Name: pod.Name, Namespace: pod.Namespace, Uid: string(pod.UID), Attempt: opts.Attempt,
		},
		Labels:      SandboxLabels(pod),
		Annotations: SandboxAnnotations(pod),
		DnsConfig:   c.PodDNS(pod),
	}
	if !pod.Spec.HostNetwork {
		host, domain, err := c.PodHostname(pod)
		if err != nil {
			return nil, err
		}
		if cfg.Hostname, err = kernelHostname(host, domain, pod.Spec.SetHostnameAsFQDN); err != nil {
			return nil, err
		}
	}
	cfg.LogDirectory = c.PodLogsDirectory(pod)
	cfg.PortMappings = PortMappings(pod)

	lc, err := c.sandboxLinuxConfig(pod, opts)
	if err != nil {
		return nil, err
	}
	cfg.Linux = lc
	lc.Resources, lc.Overhead = c.SandboxResources(pod)
	return cfg, nil
}

// PortMappings returns the port mappings of the pod's regular containers
// (MakePortMappings in pkg/kubelet/container/helpers.go): a port whose name,
// or when unnamed whose address family, protocol, host IP and ports, repeats
// within a container is dropped; an unknown protocol becomes TCP. Nil when
// there are none.
func PortMappings(pod *corev1.Pod) []*runtimeapi.PortMapping {
	var out []*runtimeapi.PortMapping
	for i := range pod.Spec.Containers {
		seen := map[string]bool{}
		for _, p := range pod.Spec.Containers[i].Ports {
			name := p.Name
			if name == "" {
				family := "any"
				if p.HostIP != "" {
					family = "v4"
					if strings.Contains(p.HostIP, ":") && isIPv6(p.HostIP) {
						family = "v6"
					}
				}
				name = fmt.Sprintf("%s-%s-%s:%d:%d", family, p.Protocol, p.HostIP, p.ContainerPort, p.HostPort)
			}
			if seen[name] {
				continue
			}
			seen[name] = true
			out = append(out, &runtimeapi.PortMapping{
				Protocol:      runtimeProtocol(p.Protocol),
				ContainerPort: p.ContainerPort,
				HostPort:      p.HostPort,
				HostIp:        p.HostIP,
			})
		}
	}
	return out
}

func runtimeProtocol(p corev1.Protocol) runtimeapi.Protocol {
	switch p {
	case corev1.ProtocolUDP:
		return runtimeapi.Protocol_UDP
	case corev1.ProtocolSCTP:
		return runtimeapi.Protocol_SCTP
	}
	return runtimeapi.Protocol_TCP
}

// namespacedIPCSysctls are the IPC sysctls runc accepts in a pod's own IPC
// namespace, besides fs.mqueue.* (applyPodSysctls in
// kuberuntime_sandbox.go).
var namespacedIPCSysctls = map[string]bool{
	"kernel.msgmax": true, "kernel.msgmnb": true, "kernel.msgmni": true, "kernel.sem": true,
	"kernel.shmall": true, "kernel.shmmax": true, "kernel.shmmni": true, "kernel.shm_rmid_forced": true,
}

func (c *Config) sandboxLinuxConfig(pod *corev1.Pod, opts SandboxOptions) (*runtimeapi.LinuxPodSandboxConfig, error) {
	parent, err := c.QOS.CgroupParent(pod)
	if err != nil {
		return nil, fmt.Errorf("cri: cgroup parent of pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	lc := &runtimeapi.LinuxPodSandboxConfig{
		CgroupParent: parent,
		SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
			Privileged: hasPrivilegedContainer(pod),
			Seccomp:    &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault},
		},
		Sysctls: map[string]string{},
	}
	for k, v := range c.DefaultPodSysctls {
		k = normalizeSysctl(k)
		switch {
		case namespacedIPCSysctls[k] || strings.HasPrefix(k, "fs.mqueue."):
			if !pod.Spec.HostIPC {
				lc.Sysctls[k] = v
			}
		case strings.HasPrefix(k, "net."):
			if !pod.Spec.HostNetwork {
				lc.Sysctls[k] = v
			}
		case strings.HasPrefix(k, "user."):
			if pod.Spec.HostUsers != nil && !*pod.Spec.HostUsers {
				lc.Sysctls[k] = v
			}
		case k == "kernel.domainname":
			if !pod.Spec.HostNetwork {
				lc.Sysctls[k] = v
			}
		}
	}
	sc := pod.Spec.SecurityContext
	if sc == nil {
		return lc, nil
	}
	for _, s := range sc.Sysctls {
		lc.Sysctls[s.Name] = s.Value
	}
	lsc := lc.SecurityContext
	if sc.RunAsUser != nil {
		lsc.RunAsUser = &runtimeapi.Int64Value{Value: *sc.RunAsUser}
	}
	if sc.RunAsGroup != nil {
		lsc.RunAsGroup = &runtimeapi.Int64Value{Value: *sc.RunAsGroup}
	}
	lsc.NamespaceOptions = NamespaceOptions(pod, opts.UserNamespace)
	if sc.FSGroup != nil {
		lsc.SupplementalGroups = append(lsc.SupplementalGroups, *sc.FSGroup)
	}
	lsc.SupplementalGroups = append(lsc.SupplementalGroups, opts.ExtraSupplementalGroups...)
	lsc.SupplementalGroups = append(lsc.SupplementalGroups, sc.SupplementalGroups...)
	if sc.SupplementalGroupsPolicy != nil {
		if lsc.SupplementalGroupsPolicy, err = supplementalGroupsPolicy(sc.SupplementalGroupsPolicy); err != nil {
			return nil, err
		}
	}
	if o := sc.SELinuxOptions; o != nil {
		lsc.SelinuxOptions = &runtimeapi.SELinuxOption{User: o.User, Role: o.Role, Type: o.Type, Level: o.Level}
	}
	return lc, nil
}

// normalizeSysctl turns the slash form "net/ipv4/ip_forward" into the dot
// form, swapping '.' and '/' when '/' comes first (NormalizeName in
// k8s.io/component-helpers/node/util/sysctl).
func normalizeSysctl(s string) string {
	i := strings.IndexAny(s, "./")
	if i < 0 || s[i] == '.' {
		return s
	}
	return strings.Map(func(r rune) rune {
		switch r {
		case '.':
			return '/'
		case '/':
			return '.'
		}
		return r
	}, s)
}
