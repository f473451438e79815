package qos

import (
	"errors"
	"fmt"
	"path"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// ErrCgroupName is wrapped by CgroupParent's errors: a name component the
// kubelet's cgroup naming cannot represent (where the kubelet panics).
var ErrCgroupName = errors.New("invalid cgroup name")

// The kubelet's cgroup hierarchy: kubepods under the cgroup root, the
// Burstable and BestEffort tiers under it, Guaranteed pods directly in
// kubepods, each pod in pod<uid>.
//
// Upstream: pkg/kubelet/cm/node_container_manager_linux.go,
// qos_container_manager_linux.go, pod_container_manager_linux.go.
const (
	KubepodsCgroup   = "kubepods"
	BurstableCgroup  = "burstable"
	BestEffortCgroup = "besteffort"
	PodCgroupPrefix  = "pod"
)

// CgroupParent returns the pod's cgroup as the kubelet names it for the
// runtime (PodSandboxConfig.Linux.CgroupParent) with DefaultConfig: the
// cgroupfs driver under root "/", "/kubepods/burstable/pod<uid>".
func CgroupParent(pod *corev1.Pod) (string, error) {
	return DefaultConfig().CgroupParent(pod)
}

// CgroupParent returns the pod's cgroup as the kubelet names it for the
// runtime (PodSandboxConfig.Linux.CgroupParent): the cgroup root, kubepods,
// the class's tier (none for Guaranteed), and pod<uid>.
//
//	cgroupfs: /kubepods/burstable/pod0b5f6bb4-2f0c-4b4f-a2f4-8d8bd2c1fb8a
//	systemd:  /kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0b5f6bb4_2f0c_4b4f_a2f4_8d8bd2c1fb8a.slice
//
// For systemd the kubelet passes the whole expanded path, not just the unit
// name; path.Base of it is the slice unit. The class is Class(pod), so a
// preset status.qosClass decides; a preset class that is none of the three
// puts the pod directly under the cgroup root ("/pod<uid>"), as upstream's
// switch leaves the parent empty. With CgroupsPerQOS off the kubelet sends
// no parent and CgroupParent returns "".
//
// A UID containing "/" or "_", or (with systemd) a cgroup root with an
// empty path component, is an error wrapping ErrCgroupName; the kubelet
// panics on those.
//
// Upstream: GetPodContainerName in pkg/kubelet/cm/pod_container_manager_linux.go,
// CgroupName.ToCgroupfs and ToSystemd in pkg/kubelet/cm/cgroup_manager_linux.go,
// ExpandSlice in github.com/opencontainers/cgroups/systemd.
func (c Config) CgroupParent(pod *corev1.Pod) (string, error) {
	if !c.CgroupsPerQOS {
		return "", nil
	}
	if pod == nil {
		return "", fmt.Errorf("qos: cgroup parent of a nil pod: %w", ErrCgroupName)
	}
	uid := string(pod.UID)
	if strings.ContainsAny(uid, "/_") {
		return "", fmt.Errorf("qos: cgroup parent of pod %s/%s: uid %q contains \"/\" or \"_\": %w",
			pod.Namespace, pod.Name, uid, ErrCgroupName)
	}

	root := strings.TrimPrefix(c.CgroupRoot, "/")
	parts := make([]string, 0, 8)
	if root != "" {
		parts = append(parts, strings.Split(root, "/")...)
	}
	switch podClass(pod, c.PodLevelResources, c.PodLevelResourcesFixKubeletQOSClass) {
	case guaranteed:
		parts = append(parts, KubepodsCgroup)
	case burstable:
		parts = append(parts, KubepodsCgroup, BurstableCgroup)
	case bestEffort:
		parts = append(parts, KubepodsCgroup, BestEffortCgroup)
	default:
		// A preset class that is none of the three: the kubelet's switch
		// leaves the parent empty, and the pod lands at the root of the
		// hierarchy, outside even the cgroup root.
		parts = parts[:0]
	}
	parts = append(parts, PodCgroupPrefix+uid)

	if c.CgroupDriver == Systemd {
		p, err := systemdPath(parts)
		if err != nil {
			return "", fmt.Errorf("qos: cgroup parent of pod %s/%s: %w", pod.Namespace, pod.Name, err)
		}
		return p, nil
	}
	return "/" + path.Join(parts...), nil
}

// systemdPath spells a cgroup name the systemd way: every component's
// dashes become underscores, the components join with dashes into one slice
// name, and the slice expands into its parents,
// a-b-c.slice -> /a.slice/a-b.slice/a-b-c.slice.
func systemdPath(parts []string) (string, error) {
	var b strings.Builder
	prefix := ""
	for _, part := range parts {
		part = strings.ReplaceAll(part, "-", "_")
		if part == "" || strings.Contains(part, "/") {
			return "", fmt.Errorf("systemd slice from %q: empty component: %w", parts, ErrCgroupName)
		}
		b.WriteString("/")
		b.WriteString(prefix)
		b.WriteString(part)
		b.WriteString(".slice")
		prefix += part + "-"
	}
	if b.Len() == 0 {
		return "/", nil
	}
	return b.String(), nil
}
