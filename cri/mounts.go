package cri

import (
	"bytes"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

const etcHostsPath = "/etc/hosts"

// PodDir is the kubelet's directory of a pod: <root-dir>/pods/<uid>.
func (c *Config) PodDir(pod *corev1.Pod) string {
	return filepath.Join(c.RootDir, "pods", string(pod.UID))
}

// EtcHostsPath is where the kubelet writes the pod's managed /etc/hosts,
// which ContainerConfig mounts into every container of a pod that has an IP
// or uses the host network. The caller writes it, e.g. with HostsFile.
func (c *Config) EtcHostsPath(pod *corev1.Pod) string {
	return filepath.Join(c.PodDir(pod), "etc-hosts")
}

// TerminationMessageDir is the directory in which the kubelet creates a
// container's termination-log file (<pod dir>/containers/<name>); the file
// itself gets a random name per container instance and mode 0666.
func (c *Config) TerminationMessageDir(pod *corev1.Pod, ctr *corev1.Container) string {
	return filepath.Join(c.PodDir(pod), "containers", ctr.Name)
}

// volumePluginDirs are the kubelet's directory names of the in-tree volume
// plugins whose host path follows from the pod alone, and whether the
// plugin mounts them read-only whatever the volumeMount says.
var volumePluginDirs = map[string]bool{
	"kubernetes.io~empty-dir":    false,
	"kubernetes.io~secret":       true,
	"kubernetes.io~configmap":    true,
	"kubernetes.io~downward-api": true,
	"kubernetes.io~projected":    true,
}

// volumeHostPath returns the host path of a pod volume: in.VolumePaths if
// the caller set it, the path of a hostPath volume, or the kubelet's
// directory for emptyDir, secret, configMap, downwardAPI and projected
// volumes. mustRO is the plugin's read-only attribute.
func (c *Config) volumeHostPath(pod *corev1.Pod, name string, in *ContainerInput) (path string, mustRO, managed, ok bool) {
	var plugin string
	var vol *corev1.Volume
	for i := range pod.Spec.Volumes {
		if pod.Spec.Volumes[i].Name == name {
			vol = &pod.Spec.Volumes[i]
			break
		}
	}
	if vol != nil {
		switch {
		case vol.HostPath != nil:
			plugin = "hostpath"
		case vol.EmptyDir != nil:
			plugin = "kubernetes.io~empty-dir"
		case vol.Secret != nil:
			plugin = "kubernetes.io~secret"
		case vol.ConfigMap != nil:
			plugin = "kubernetes.io~configmap"
		case vol.DownwardAPI != nil:
			plugin = "kubernetes.io~downward-api"
		case vol.Projected != nil:
			plugin = "kubernetes.io~projected"
		}
	}
	ro, managed := volumePluginDirs[plugin]
	if p, set := in.VolumePaths[name]; set {
		return p, ro, managed, true
	}
	switch {
	case vol == nil || plugin == "":
		return "", false, false, false
	case plugin == "hostpath":
		return vol.HostPath.Path, false, false, true
	}
	return filepath.Join(c.PodDir(pod), "volumes", plugin, name), ro, managed, true
}

// Mounts returns the container's CRI mounts (makeMounts in
// pkg/kubelet/kubelet_pods.go and kuberuntime_container.go): its volume
// mounts in order, the pod's managed /etc/hosts unless the container
// mounts something there, and the termination-log file when
// in.TerminationMessagePath names one. env is the container's environment,
// for subPathExpr. A subPath is joined to the volume path; the kubelet
// additionally bind-mounts it to a safe place under the pod directory
// first, which is I/O left to the caller.
func (c *Config) Mounts(pod *corev1.Pod, ctr *corev1.Container, in *ContainerInput, env []*runtimeapi.KeyValue) ([]*runtimeapi.Mount, error) {
	mounts := []*runtimeapi.Mount{}
	mountHosts := len(in.PodIPs) > 0 || pod.Spec.HostNetwork
	for _, vm := range ctr.VolumeMounts {
		mountHosts = mountHosts && vm.MountPath != etcHostsPath
		hostPath, mustRO, managed, ok := c.volumeHostPath(pod, vm.Name, in)
		if !ok {
			return nil, fmt.Errorf("cri: cannot find volume %q to mount into container %q", vm.Name, ctr.Name)
		}
		subPath := vm.SubPath
		if vm.SubPathExpr != "" {
			var err error
			if subPath, err = expandSubPath(vm.SubPathExpr, env); err != nil {
				return nil, err
			}
		}
		if subPath != "" {
			if filepath.IsAbs(subPath) {
				return nil, fmt.Errorf("cri: error SubPath `%s` must not be an absolute path", subPath)
			}
			if slices.Contains(strings.Split(filepath.ToSlash(subPath), "/"), "..") {
				return nil, fmt.Errorf("cri: unable to provision SubPath `%s`: must not contain '..'", subPath)
			}
			hostPath = filepath.Join(hostPath, subPath)
		}
		containerPath := vm.MountPath
		if !filepath.IsAbs(containerPath) {
			containerPath = filepath.Clean("/" + containerPath)
		}
		prop, err := mountPropagation(vm.MountPropagation)
		if err != nil {
			return nil, err
		}
		rro, err := recursiveReadOnly(vm, c.SupportsRecursiveReadOnly)
		if err != nil {
			return nil, fmt.Errorf("cri: failed to resolve recursive read-only mode: %w", err)
		}
		mounts = append(mounts, &runtimeapi.Mount{
			ContainerPath:     containerPath,
			HostPath:          hostPath,
			Readonly:          vm.ReadOnly || mustRO,
			RecursiveReadOnly: rro,
			SelinuxRelabel:    managed && c.SELinuxEnabled,
			Propagation:       prop,
		})
	}
	if mountHosts {
		mounts = append(mounts, &runtimeapi.Mount{
			ContainerPath:  etcHostsPath,
			HostPath:       c.EtcHostsPath(pod),
			SelinuxRelabel: c.SELinuxEnabled,
		})
	}
	if in.TerminationMessagePath != "" && ctr.TerminationMessagePath != "" {
		mounts = append(mounts, &runtimeapi.Mount{
			HostPath:       filepath.Clean("/" + in.TerminationMessagePath),
			ContainerPath:  filepath.Clean("/" + ctr.TerminationMessagePath),
			SelinuxRelabel: c.SELinuxEnabled,
		})
	}
	return mounts, nil
}

// expandSubPath expands a subPathExpr against the container's environment;
// a reference to a missing or empty variable is an error
// (ExpandContainerVolumeMounts in pkg/kubelet/container/helpers.go).
func expandSubPath(expr string, env []*runtimeapi.KeyValue) (string, error) {
	m := make(map[string]string, len(env))
	for _, kv := range env {
		m[kv.Key] = string(kv.Value)
	}
	var missing []string
	out := Expand(expr, func(k string) (string, bool) {
		v, ok := m[k]
		if !ok || v == "" {
			if !slices.Contains(missing, k) {
				missing = append(missing, k)
			}
		}
		return v, true
	})
	if len(missing) > 0 {
		slices.Sort(missing)
		return "", fmt.Errorf("cri: missing value for %s", strings.Join(missing, ", "))
	}
	return out, nil
}

func mountPropagation(m *corev1.MountPropagationMode) (runtimeapi.MountPropagation, error) {
	switch {
	case m == nil, *m == corev1.MountPropagationNone:
		return runtimeapi.MountPropagation_PROPAGATION_PRIVATE, nil
	case *m == corev1.MountPropagationHostToContainer:
		return runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER, nil
	case *m == corev1.MountPropagationBidirectional:
		return runtimeapi.MountPropagation_PROPAGATION_BIDIRECTIONAL, nil
	}
	return 0, fmt.Errorf("cri: invalid MountPropagation mode: %q", *m)
}

// recursiveReadOnly is resolveRecursiveReadOnly of kubelet_pods.go.
func recursiveReadOnly(m corev1.VolumeMount, supported bool) (bool, error) {
	if m.RecursiveReadOnly == nil || *m.RecursiveReadOnly == corev1.RecursiveReadOnlyDisabled {
		return false, nil
	}
	if !m.ReadOnly {
		return false, fmt.Errorf("volume %q requested recursive read-only mode, but it is not read-only", m.Name)
	}
	if m.MountPropagation != nil && *m.MountPropagation != corev1.MountPropagationNone {
		return false, fmt.Errorf("volume %q requested recursive read-only mode, but it is not compatible with propagation %q", m.Name, *m.MountPropagation)
	}
	switch *m.RecursiveReadOnly {
	case corev1.RecursiveReadOnlyIfPossible:
		return supported, nil
	case corev1.RecursiveReadOnlyEnabled:
		if !supported {
			return false, fmt.Errorf("volume %q requested recursive read-only mode, but it is not supported by the runtime", m.Name)
		}
		return true, nil
	}
	return false, fmt.Errorf("unknown recursive read-only mode %q", *m.RecursiveReadOnly)
}

// HostsFile returns the managed /etc/hosts the kubelet writes for a pod that
// does not use the host network (managedHostsFileContent in
// kubelet_pods.go): localhost entries, the pod's IPs with its hostname (and
// FQDN when it has a domain), and the pod's hostAliases.
func HostsFile(pod *corev1.Pod, podIPs []string, hostname, domain string) []byte {
	var b bytes.Buffer
	b.WriteString("# Kubernetes-managed hosts file.\n")
	b.WriteString("127.0.0.1\tlocalhost\n")
	b.WriteString("::1\tlocalhost ip6-localhost ip6-loopback\n")
	b.WriteString("fe00::0\tip6-localnet\n")
	b.WriteString("fe00::0\tip6-mcastprefix\n")
	b.WriteString("fe00::1\tip6-allnodes\n")
	b.WriteString("fe00::2\tip6-allrouters\n")
	for _, ip := range podIPs {
		if domain != "" {
			fmt.Fprintf(&b, "%s\t%s.%s\t%s\n", ip, hostname, domain, hostname)
		} else {
			fmt.Fprintf(&b, "%s\t%s\n", ip, hostname)
		}
	}
	if len(pod.Spec.HostAliases) > 0 {
		b.WriteString("\n# Entries added by HostAliases.\n")
		for _, a := range pod.Spec.HostAliases {
			fmt.Fprintf(&b, "%s\t%s\n", a.IP, strings.Join(a.Hostnames, "\t"))
		}
	}
	return b.Bytes()
}
