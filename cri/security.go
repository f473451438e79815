package cri

import (
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// NamespaceOptions returns the Linux namespaces of the pod's sandbox and
// containers (NamespacesForPod in pkg/kubelet/kuberuntime/util/util.go):
// the host's IPC, network and PID namespaces when the pod asks for them,
// a PID namespace shared by the pod with shareProcessNamespace, and one per
// container otherwise. userns is the pod's user namespace mapping (nil: the
// host's).
func NamespaceOptions(pod *corev1.Pod, userns *runtimeapi.UserNamespace) *runtimeapi.NamespaceOption {
	ns := &runtimeapi.NamespaceOption{
		Ipc:           runtimeapi.NamespaceMode_POD,
		Network:       runtimeapi.NamespaceMode_POD,
		Pid:           runtimeapi.NamespaceMode_CONTAINER,
		UsernsOptions: userns,
	}
	if pod.Spec.HostIPC {
		ns.Ipc = runtimeapi.NamespaceMode_NODE
	}
	if pod.Spec.HostNetwork {
		ns.Network = runtimeapi.NamespaceMode_NODE
	}
	switch {
	case pod.Spec.HostPID:
		ns.Pid = runtimeapi.NamespaceMode_NODE
	case pod.Spec.ShareProcessNamespace != nil && *pod.Spec.ShareProcessNamespace:
		ns.Pid = runtimeapi.NamespaceMode_POD
	}
	return ns
}

// hasPrivilegedContainer: any init, regular or ephemeral container with
// privileged: true makes the sandbox privileged.
func hasPrivilegedContainer(pod *corev1.Pod) bool {
	priv := func(sc *corev1.SecurityContext) bool {
		return sc != nil && sc.Privileged != nil && *sc.Privileged
	}
	for i := range pod.Spec.InitContainers {
		if priv(pod.Spec.InitContainers[i].SecurityContext) {
			return true
		}
	}
	for i := range pod.Spec.Containers {
		if priv(pod.Spec.Containers[i].SecurityContext) {
			return true
		}
	}
	for i := range pod.Spec.EphemeralContainers {
		if priv(pod.Spec.EphemeralContainers[i].SecurityContext) {
			return true
		}
	}
	return false
}

// supplementalGroupsPolicy converts the pod's policy to the CRI enum.
func supplementalGroupsPolicy(p *corev1.SupplementalGroupsPolicy) (runtimeapi.SupplementalGroupsPolicy, error) {
	v, ok := runtimeapi.SupplementalGroupsPolicy_value[string(*p)]
	if !ok {
		return 0, fmt.Errorf("cri: unsupported supplementalGroupsPolicy: %s", *p)
	}
	return runtimeapi.SupplementalGroupsPolicy(v), nil
}

// effectiveSecurityContext merges the pod's security context under the
// container's: container fields win (DetermineEffectiveSecurityContext in
// pkg/securitycontext/util.go). The result is a fresh value.
func effectiveSecurityContext(pod *corev1.Pod, c *corev1.Container) *corev1.SecurityContext {
	eff := &corev1.SecurityContext{}
	if psc := pod.Spec.SecurityContext; psc != nil {
		if psc.SELinuxOptions != nil {
			v := *psc.SELinuxOptions
			eff.SELinuxOptions = &v
		}
		if psc.WindowsOptions != nil {
			v := *psc.WindowsOptions
			eff.WindowsOptions = &v
		}
		eff.RunAsUser = copyPtr(psc.RunAsUser)
		eff.RunAsGroup = copyPtr(psc.RunAsGroup)
		eff.RunAsNonRoot = copyPtr(psc.RunAsNonRoot)
	}
	csc := c.SecurityContext
	if csc == nil {
		return eff
	}
	if csc.SELinuxOptions != nil {
		v := *csc.SELinuxOptions
		eff.SELinuxOptions = &v
	}
	if csc.Capabilities != nil {
		v := *csc.Capabilities
		eff.Capabilities = &v
	}
	if csc.Privileged != nil {
		eff.Privileged = copyPtr(csc.Privileged)
	}
	if csc.RunAsUser != nil {
		eff.RunAsUser = copyPtr(csc.RunAsUser)
	}
	if csc.RunAsGroup != nil {
		eff.RunAsGroup = copyPtr(csc.RunAsGroup)
	}
	if csc.RunAsNonRoot != nil {
		eff.RunAsNonRoot = copyPtr(csc.RunAsNonRoot)
	}
	if csc.ReadOnlyRootFilesystem != nil {
		eff.ReadOnlyRootFilesystem = copyPtr(csc.ReadOnlyRootFilesystem)
	}
	if csc.AllowPrivilegeEscalation != nil {
		eff.AllowPrivilegeEscalation = copyPtr(csc.AllowPrivilegeEscalation)
	}
	if csc.ProcMount != nil {
		eff.ProcMount = copyPtr(csc.ProcMount)
	}
	return eff
}

func copyPtr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}

// The paths the runtime masks and makes read-only in /proc and /sys unless
// procMount is Unmasked (pkg/securitycontext/util.go, kept in sync with
// moby). The kubelet also masks /sys/devices/system/cpu/cpu*/thermal_throttle
// where the machine has them; Config.ExtraMaskedPaths carries those.
var (
	defaultMaskedPaths = []string{
		"/proc/asound", "/proc/acpi", "/proc/interrupts", "/proc/kcore", "/proc/keys",
		"/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug",
		"/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap",
	}
	defaultReadonlyPaths = []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}
)

// containerSecurityContext builds the container's Linux security context
// (determineEffectiveSecurityContext in
// pkg/kubelet/kuberuntime/security_context.go). uid and username are the
// image's user, used when no runAsUser is set.
func (c *Config) containerSecurityContext(pod *corev1.Pod, ctr *corev1.Container, uid *int64, username string, userns *runtimeapi.UserNamespace) (*runtimeapi.LinuxContainerSecurityContext, error) {
	eff := effectiveSecurityContext(pod, ctr)
	sc := &runtimeapi.LinuxContainerSecurityContext{}
	if eff.Capabilities != nil {
		sc.Capabilities = &runtimeapi.Capability{
			AddCapabilities:  make([]string, len(eff.Capabilities.Add)),
			DropCapabilities: make([]string, len(eff.Capabilities.Drop)),
		}
		for i, v := range eff.Capabilities.Add {
			sc.Capabilities.AddCapabilities[i] = string(v)
		}
		for i, v := range eff.Capabilities.Drop {
			sc.Capabilities.DropCapabilities[i] = string(v)
		}
	}
	if o := eff.SELinuxOptions; o != nil {
		sc.SelinuxOptions = &runtimeapi.SELinuxOption{User: o.User, Role: o.Role, Type: o.Type, Level: o.Level}
	}
	if eff.RunAsUser != nil {
		sc.RunAsUser = &runtimeapi.Int64Value{Value: *eff.RunAsUser}
	}
	if eff.RunAsGroup != nil {
		sc.RunAsGroup = &runtimeapi.Int64Value{Value: *eff.RunAsGroup}
	}
	if eff.Privileged != nil {
		sc.Privileged = *eff.Privileged
	}
	if eff.ReadOnlyRootFilesystem != nil {
		sc.ReadonlyRootfs = *eff.ReadOnlyRootFilesystem
	}

	var err error
	if sc.Seccomp, err = c.seccompProfile(pod.Spec.SecurityContext, ctr.SecurityContext); err != nil {
		return nil, err
	}
	//lint:ignore SA1019 the kubelet still fills the deprecated field, for older runtimes
	if sc.Apparmor, sc.ApparmorProfile, err = appArmorProfile(pod, ctr); err != nil {
		return nil, err
	}
	if sc.RunAsUser == nil {
		if uid != nil {
			sc.RunAsUser = &runtimeapi.Int64Value{Value: *uid}
		}
		sc.RunAsUsername = username
	}
	sc.NamespaceOptions = NamespaceOptions(pod, userns)
	if psc := pod.Spec.SecurityContext; psc != nil {
		if psc.FSGroup != nil {
			sc.SupplementalGroups = append(sc.SupplementalGroups, *psc.FSGroup)
		}
		sc.SupplementalGroups = append(sc.SupplementalGroups, psc.SupplementalGroups...)
		if psc.SupplementalGroupsPolicy != nil {
			if sc.SupplementalGroupsPolicy, err = supplementalGroupsPolicy(psc.SupplementalGroupsPolicy); err != nil {
				return nil, err
			}
		}
	}
	sc.NoNewPrivs = eff.AllowPrivilegeEscalation != nil && !*eff.AllowPrivilegeEscalation
	if eff.ProcMount != nil && *eff.ProcMount == corev1.UnmaskedProcMount {
		sc.MaskedPaths, sc.ReadonlyPaths = []string{}, []string{}
	} else {
		sc.MaskedPaths = append(append([]string(nil), defaultMaskedPaths...), c.ExtraMaskedPaths...)
		sc.ReadonlyPaths = append([]string(nil), defaultReadonlyPaths...)
	}
	return sc, nil
}

// seccompProfile picks the container's profile, then the pod's, then the
// default (getSeccompProfile in pkg/kubelet/kuberuntime/helpers.go).
func (c *Config) seccompProfile(psc *corev1.PodSecurityContext, csc *corev1.SecurityContext) (*runtimeapi.SecurityProfile, error) {
	var p *corev1.SeccompProfile
	switch {
	case csc != nil && csc.SeccompProfile != nil:
		p = csc.SeccompProfile
	case psc != nil && psc.SeccompProfile != nil:
		p = psc.SeccompProfile
	}
	switch {
	case p == nil:
		if c.SeccompDefault {
			return &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault}, nil
		}
		return &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Unconfined}, nil
	case p.Type == corev1.SeccompProfileTypeRuntimeDefault:
		return &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault}, nil
	case p.Type == corev1.SeccompProfileTypeLocalhost:
		if p.LocalhostProfile == nil || *p.LocalhostProfile == "" {
			return nil, errors.New("cri: localhostProfile must be set if seccompProfile type is Localhost")
		}
		return &runtimeapi.SecurityProfile{
			ProfileType:  runtimeapi.SecurityProfile_Localhost,
			LocalhostRef: filepath.Join(c.SeccompProfileRoot, *p.LocalhostProfile),
		}, nil
	}
	return &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Unconfined}, nil
}

// appArmorProfile returns the container's AppArmor profile and its
// deprecated string form (getAppArmorProfile in helpers.go, GetProfile in
// pkg/security/apparmor): the container's field, then the deprecated
// per-container pod annotation, then the pod's field.
func appArmorProfile(pod *corev1.Pod, ctr *corev1.Container) (*runtimeapi.SecurityProfile, string, error) {
	var p *corev1.AppArmorProfile
	switch {
	case ctr.SecurityContext != nil && ctr.SecurityContext.AppArmorProfile != nil:
		p = ctr.SecurityContext.AppArmorProfile
	default:
		p = appArmorFromAnnotation(pod.Annotations, ctr.Name)
		if p == nil && pod.Spec.SecurityContext != nil {
			p = pod.Spec.SecurityContext.AppArmorProfile
		}
	}
	if p == nil {
		return nil, "", nil
	}
	switch p.Type {
	case corev1.AppArmorProfileTypeRuntimeDefault:
		return &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault}, corev1.DeprecatedAppArmorBetaProfileRuntimeDefault, nil
	case corev1.AppArmorProfileTypeUnconfined:
		return &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Unconfined}, corev1.DeprecatedAppArmorBetaProfileNameUnconfined, nil
	case corev1.AppArmorProfileTypeLocalhost:
		if p.LocalhostProfile == nil {
			return nil, "", errors.New("cri: missing localhost apparmor profile name")
		}
		return &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Localhost, LocalhostRef: *p.LocalhostProfile},
			corev1.DeprecatedAppArmorBetaProfileNamePrefix + *p.LocalhostProfile, nil
	}
	return nil, "", fmt.Errorf("cri: unknown apparmor profile type: %q", p.Type)
}

func appArmorFromAnnotation(annotations map[string]string, container string) *corev1.AppArmorProfile {
	v, ok := annotations[corev1.DeprecatedAppArmorBetaContainerAnnotationKeyPrefix+container]
	if !ok {
		return nil
	}
	switch {
	case v == corev1.DeprecatedAppArmorBetaProfileRuntimeDefault:
		return &corev1.AppArmorProfile{Type: corev1.AppArmorProfileTypeRuntimeDefault}
	case v == corev1.DeprecatedAppArmorBetaProfileNameUnconfined:
		return &corev1.AppArmorProfile{Type: corev1.AppArmorProfileTypeUnconfined}
	case strings.HasPrefix(v, corev1.DeprecatedAppArmorBetaProfileNamePrefix):
		name := strings.TrimPrefix(v, corev1.DeprecatedAppArmorBetaProfileNamePrefix)
		return &corev1.AppArmorProfile{Type: corev1.AppArmorProfileTypeLocalhost, LocalhostProfile: &name}
	}
	return nil
}

// verifyRunAsNonRoot enforces runAsNonRoot against the effective user
// (verifyRunAsNonRoot in security_context_others.go).
func verifyRunAsNonRoot(pod *corev1.Pod, ctr *corev1.Container, uid *int64, username string) error {
	eff := effectiveSecurityContext(pod, ctr)
	if eff.RunAsNonRoot == nil || !*eff.RunAsNonRoot {
		return nil
	}
	podName := pod.Name + "_" + pod.Namespace + "(" + string(pod.UID) + ")"
	if eff.RunAsUser != nil {
		if *eff.RunAsUser == 0 {
			return fmt.Errorf("cri: container's runAsUser breaks non-root policy (pod: %q, container: %s)", podName, ctr.Name)
		}
		return nil
	}
	switch {
	case uid == nil && username != "":
		return fmt.Errorf("cri: container has runAsNonRoot and image has non-numeric user (%s), cannot verify user is non-root (pod: %q, container: %s)", username, podName, ctr.Name)
	case uid != nil && *uid == 0:
		return fmt.Errorf("cri: container has runAsNonRoot and image will run as root (pod: %q, container: %s)", podName, ctr.Name)
	case uid != nil:
		if errs := validation.IsValidUserID(*uid); len(errs) > 0 {
			return fmt.Errorf("cri: container has runAsNonRoot and image has an invalid user id (%d). (Must be 1-(%d)): %s (pod: %q, container: %s)", *uid, math.MaxInt32, strings.Join(errs, "; "), podName, ctr.Name)
		}
	}
	return nil
}
