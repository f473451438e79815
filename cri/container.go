package cri

import (
	"fmt"
	"net/netip"
	"strings"

	corev1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ContainerInput is what the kubelet knows about a container instance
// besides the pod spec: results of earlier CRI calls and of node state.
type ContainerInput struct {
	// RestartCount is the instance's attempt: 0 for the first, one more
	// each restart. It names the log file and the restartCount annotation.
	RestartCount int
	// ImageRef is the image as the runtime resolved it (PullImage's or
	// ImageStatus's answer, usually a digest); empty means container.Image.
	ImageRef string
	// ImageUID and ImageUsername are the image's user (ImageStatus): the
	// container runs as it when no runAsUser is set, and runAsNonRoot is
	// checked against it. Both empty means root.
	ImageUID      *int64
	ImageUsername string
	// PodIPs are the sandbox's IPs, primary family first, for the downward
	// API and the /etc/hosts mount.
	PodIPs []string
	// HostIPs are the node's IPs, for status.hostIP(s).
	HostIPs []string
	// ServiceEnv holds the service link variables (FOO_SERVICE_HOST, ...)
	// the kubelet derives from the Services the pod may see.
	ServiceEnv map[string]string
	// VolumePaths overrides the host path of pod volumes by name. Volumes
	// of other types than hostPath, emptyDir, secret, configMap,
	// downwardAPI and projected must be listed here to be mounted.
	VolumePaths map[string]string
	// TerminationMessagePath is the host file (the kubelet creates it under
	// TerminationMessageDir with mode 0666) mounted at the container's
	// terminationMessagePath; empty means none is mounted.
	TerminationMessagePath string
	// Annotations, Devices and CDIDevices come from device plugins and DRA.
	Annotations map[string]string
	Devices     []*runtimeapi.Device
	CDIDevices  []*runtimeapi.CDIDevice
	// UserNamespace is the pod's user namespace mapping (see SandboxOptions).
	UserNamespace *runtimeapi.UserNamespace
	// TargetContainerID, for an ephemeral container that targets another
	// container, makes it join that container's PID namespace.
	TargetContainerID string
}

// ContainerConfig translates one container of the pod into the
// ContainerConfig the kubelet gives CreateContainer (generateContainerConfig
// in pkg/kubelet/kuberuntime/kuberuntime_container.go):
//
//   - metadata: the container name and restart count as attempt;
//   - image: in.ImageRef, with the user's spelling as UserSpecifiedImage;
//   - command and args with $(VAR) expanded against the environment (Env);
//   - working dir, stdin, stdinOnce, tty;
//   - labels (ContainerLabels), annotations (ContainerAnnotations);
//   - mounts (Mounts), devices, the log path <name>/<restartCount>.log;
//   - the stop signal (ContainerStopSignals);
//   - Linux: resources (ContainerResources) and the security context;
//   - the environment.
//
// runAsNonRoot is verified against the effective user first. The container
// may be any of the pod's init, regular or ephemeral containers.
func (c *Config) ContainerConfig(pod *corev1.Pod, ctr *corev1.Container, in ContainerInput) (*runtimeapi.ContainerConfig, error) {
	if pod == nil || ctr == nil {
		return nil, fmt.Errorf("cri: ContainerConfig: nil pod or container")
	}
	if err := verifyRunAsNonRoot(pod, ctr, in.ImageUID, in.ImageUsername); err != nil {
		return nil, err
	}
	env, err := c.Env(pod, ctr, &in)
	if err != nil {
		return nil, err
	}
	lookup := func(k string) (string, bool) {
		for i := len(env) - 1; i >= 0; i-- {
			if env[i].Key == k {
				return string(env[i].Value), true
			}
		}
		return "", false
	}
	var command, args []string
	for _, s := range ctr.Command {
		command = append(command, Expand(s, lookup))
	}
	for _, s := range ctr.Args {
		args = append(args, Expand(s, lookup))
	}
	mounts, err := c.Mounts(pod, ctr, &in, env)
	if err != nil {
		return nil, err
	}
	imageRef := in.ImageRef
	if imageRef == "" {
		imageRef = ctr.Image
	}
	cfg := &runtimeapi.ContainerConfig{
		Metadata:    &runtimeapi.ContainerMetadata{Name: ctr.Name, Attempt: uint32(in.RestartCount)},
		Image:       &runtimeapi.ImageSpec{Image: imageRef, UserSpecifiedImage: ctr.Image},
		Command:     command,
		Args:        args,
		WorkingDir:  ctr.WorkingDir,
		Labels:      ContainerLabels(pod, ctr),
		Annotations: ContainerAnnotations(pod, ctr, in.RestartCount, in.Annotations),
		Devices:     append([]*runtimeapi.Device{}, in.Devices...),
		CDIDevices:  append([]*runtimeapi.CDIDevice{}, in.CDIDevices...),
		Mounts:      mounts,
		LogPath:     ContainerLogPath(ctr.Name, in.RestartCount),
		Stdin:       ctr.Stdin,
		StdinOnce:   ctr.StdinOnce,
		Tty:         ctr.TTY,
	}
	if c.ContainerStopSignals && ctr.Lifecycle != nil && ctr.Lifecycle.StopSignal != nil {
		cfg.StopSignal = stopSignals[string(*ctr.Lifecycle.StopSignal)]
	}
	sc, err := c.containerSecurityContext(pod, ctr, in.ImageUID, in.ImageUsername, in.UserNamespace)
	if err != nil {
		return nil, err
	}
	if in.TargetContainerID != "" && sc.NamespaceOptions.Pid == runtimeapi.NamespaceMode_CONTAINER {
		sc.NamespaceOptions.Pid = runtimeapi.NamespaceMode_TARGET
		sc.NamespaceOptions.TargetId = in.TargetContainerID
	}
	cfg.Linux = &runtimeapi.LinuxContainerConfig{
		Resources:       c.ContainerResources(pod, ctr),
		SecurityContext: sc,
	}
	if u := in.UserNamespace; u != nil {
		for _, m := range cfg.Mounts {
			m.UidMappings, m.GidMappings = u.Uids, u.Gids
		}
	}
	cfg.Envs = env
	return cfg, nil
}

// stopSignals maps Kubernetes signal names to the CRI enum
// (signalNameToRuntimeEnum in pkg/kubelet/kuberuntime/helpers.go); an
// unknown name is SIGNAL_RUNTIME_DEFAULT (0).
var stopSignals = func() map[string]runtimeapi.Signal {
	m := map[string]runtimeapi.Signal{}
	for v, name := range runtimeapi.Signal_name {
		n := strings.TrimPrefix(name, "SIGNAL_")
		n = strings.Replace(n, "RTMINPLUS", "RTMIN+", 1)
		n = strings.Replace(n, "RTMAXMINUS", "RTMAX-", 1)
		if n != "RUNTIME_DEFAULT" {
			m[n] = runtimeapi.Signal(v)
		}
	}
	return m
}()

func isIPv6(s string) bool {
	a, err := netip.ParseAddr(s)
	return err == nil && a.Is6() && !a.Is4In6() && a.Zone() == ""
}
