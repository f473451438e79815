package cri_test

import (
	"strconv"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/utils/ptr"

	"github.com/kube-nodekit/nodekit/cri"
)

// TestContainerConfig pins generateContainerConfig
// (pkg/kubelet/kuberuntime/kuberuntime_container.go) on a whole message.
func TestContainerConfig(t *testing.T) {
	cfg := clusterConfig()
	cfg.ContainerStopSignals = true
	pod := basePod()
	pod.Spec.TerminationGracePeriodSeconds = ptr.To[int64](30)
	pod.Spec.Volumes = []corev1.Volume{
		{Name: "data", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
		{Name: "conf", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{}}},
		{Name: "host", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/srv"}}},
	}
	c := &pod.Spec.Containers[0]
	c.Command = []string{"/bin/app", "--name=$(NAME)"}
	c.Args = []string{"$(MISSING)", "$$(NAME)"}
	c.WorkingDir = "/work"
	c.Env = []corev1.EnvVar{{Name: "NAME", Value: "web"}}
	c.Ports = []corev1.ContainerPort{{Name: "http", ContainerPort: 80, Protocol: corev1.ProtocolTCP}}
	c.Resources = limits("250m", "64Mi")
	c.VolumeMounts = []corev1.VolumeMount{
		{Name: "data", MountPath: "/data"},
		{Name: "conf", MountPath: "/etc/app", SubPath: "app.yaml"},
		{Name: "host", MountPath: "srv", ReadOnly: true, MountPropagation: ptr.To(corev1.MountPropagationHostToContainer)},
	}
	c.Stdin, c.TTY = true, true
	c.Lifecycle = &corev1.Lifecycle{StopSignal: ptr.To(corev1.SIGUSR1)}
	in := cri.ContainerInput{RestartCount: 3, ImageRef: "sha256:feed", PodIPs: []string{"10.244.0.7"}, TerminationMessagePath: "/var/lib/kubelet/pods/1234-abcd/containers/c/0a1b2c3d"}
	got, err := cfg.ContainerConfig(pod, c, in)
	if err != nil {
		t.Fatal(err)
	}
	podDir := "/var/lib/kubelet/pods/1234-abcd"
	want := &runtimeapi.ContainerConfig{
		Metadata:   &runtimeapi.ContainerMetadata{Name: "c", Attempt: 3},
		Image:      &runtimeapi.ImageSpec{Image: "sha256:feed", UserSpecifiedImage: "busybox:1.36"},
		Command:    []string{"/bin/app", "--name=web"},
		Args:       []string{"$(MISSING)", "$(NAME)"},
		WorkingDir: "/work",
		Envs:       []*runtimeapi.KeyValue{{Key: "NAME", Value: []byte("web")}},
		Mounts: []*runtimeapi.Mount{
			{ContainerPath: "/data", HostPath: podDir + "/volumes/kubernetes.io~empty-dir/data"},
			{ContainerPath: "/etc/app", HostPath: podDir + "/volumes/kubernetes.io~configmap/conf/app.yaml", Readonly: true},
			{ContainerPath: "/srv", HostPath: "/srv", Readonly: true, Propagation: runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER},
			{ContainerPath: "/etc/hosts", HostPath: podDir + "/etc-hosts"},
			{ContainerPath: "/dev/termination-log", HostPath: in.TerminationMessagePath},
		},
		Labels: map[string]string{cri.PodNameLabel: "web", cri.PodNamespaceLabel: "shop", cri.PodUIDLabel: "1234-abcd", cri.ContainerNameLabel: "c"},
		Annotations: map[string]string{
			cri.ContainerHashAnnotation:                     strconv.FormatUint(cri.HashContainer(c), 16),
			cri.ContainerRestartCountAnnotation:             "3",
			cri.ContainerTerminationMessagePathAnnotation:   "/dev/termination-log",
			cri.ContainerTerminationMessagePolicyAnnotation: "File",
			cri.PodTerminationGracePeriodAnnotation:         "30",
			cri.ContainerPortsAnnotation:                    `[{"name":"http","containerPort":80,"protocol":"TCP"}]`,
		},
		Devices:    []*runtimeapi.Device{},
		CDIDevices: []*runtimeapi.CDIDevice{},
		LogPath:    "c/3.log",
		Stdin:      true,
		Tty:        true,
		StopSignal: runtimeapi.Signal_SIGNAL_SIGUSR1,
		Linux: &runtimeapi.LinuxContainerConfig{
			Resources: &runtimeapi.LinuxContainerResources{CpuPeriod: 100000, CpuQuota: 25000, CpuShares: 256, MemoryLimitInBytes: 64 << 20, OomScoreAdj: -997},
			SecurityContext: &runtimeapi.LinuxContainerSecurityContext{
				NamespaceOptions: &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_POD, Pid: runtimeapi.NamespaceMode_CONTAINER, Ipc: runtimeapi.NamespaceMode_POD},
				Seccomp:          &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Unconfined},
				MaskedPaths: []string{"/proc/asound", "/proc/acpi", "/proc/interrupts", "/proc/kcore", "/proc/keys",
					"/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug",
					"/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap"},
				ReadonlyPaths: []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"},
			},
		},
	}
	if !proto.Equal(got, want) {
		t.Fatalf("ContainerConfig:\n got %v\nwant %v", got, want)
	}
}

// TestHashContainer pins the kubelet's container hash: upstream's
// container_hash_test.go values (pkg/kubelet/container) for name+image.
func TestHashContainer(t *testing.T) {
	a := &corev1.Container{Name: "foo", Image: "bar"}
	b := &corev1.Container{Name: "foo", Image: "bar", Args: []string{"different"}, Resources: limits("1", "1Gi")}
	if cri.HashContainer(a) != cri.HashContainer(b) {
		t.Error("hash depends on fields other than name and image")
	}
	if cri.HashContainer(a) == cri.HashContainer(&corev1.Container{Name: "foo", Image: "baz"}) {
		t.Error("hash ignores the image")
	}
	// The value of upstream's TestHashContainer
	// (pkg/kubelet/container/helpers_test.go), "should not be changed".
	c := &corev1.Container{Name: "test_container", Image: "foo/image:v1", Args: []string{"/bin/sh", "-c", "echo abc"},
		Ports: []corev1.ContainerPort{{ContainerPort: 8001}}}
	if got := cri.HashContainer(c); got != 0x8e45cbd0 {
		t.Errorf("HashContainer = %#x, want 0x8e45cbd0", got)
	}
}

// TestContainerSecurityContext pins determineEffectiveSecurityContext and
// verifyRunAsNonRoot.
func TestContainerSecurityContext(t *testing.T) {
	cfg := clusterConfig()
	pod := basePod()
	pod.Spec.SecurityContext = &corev1.PodSecurityContext{
		RunAsUser: ptr.To[int64](1000), FSGroup: ptr.To[int64](2000), SupplementalGroups: []int64{3000},
		SeccompProfile:  &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeLocalhost, LocalhostProfile: ptr.To("audit.json")},
		AppArmorProfile: &corev1.AppArmorProfile{Type: corev1.AppArmorProfileTypeRuntimeDefault},
	}
	c := &pod.Spec.Containers[0]
	c.SecurityContext = &corev1.SecurityContext{
		RunAsGroup: ptr.To[int64](1), AllowPrivilegeEscalation: ptr.To(false), ReadOnlyRootFilesystem: ptr.To(true),
		Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"NET_ADMIN"}, Drop: []corev1.Capability{"ALL"}},
		ProcMount:    ptr.To(corev1.UnmaskedProcMount),
	}
	got, err := cfg.ContainerConfig(pod, c, cri.ContainerInput{ImageUID: ptr.To[int64](0)})
	if err != nil {
		t.Fatal(err)
	}
	want := &runtimeapi.LinuxContainerSecurityContext{
		Capabilities:       &runtimeapi.Capability{AddCapabilities: []string{"NET_ADMIN"}, DropCapabilities: []string{"ALL"}},
		NamespaceOptions:   &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_POD, Pid: runtimeapi.NamespaceMode_CONTAINER, Ipc: runtimeapi.NamespaceMode_POD},
		RunAsUser:          &runtimeapi.Int64Value{Value: 1000},
		RunAsGroup:         &runtimeapi.Int64Value{Value: 1},
		ReadonlyRootfs:     true,
		SupplementalGroups: []int64{2000, 3000},
		NoNewPrivs:         true,
		MaskedPaths:        []string{},
		ReadonlyPaths:      []string{},
		Seccomp:            &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Localhost, LocalhostRef: "/var/lib/kubelet/seccomp/audit.json"},
		Apparmor:           &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault},
		//lint:ignore SA1019 the kubelet still fills the deprecated field
		ApparmorProfile: "runtime/default",
	}
	if !proto.Equal(got.Linux.SecurityContext, want) {
		t.Fatalf("security context:\n got %v\nwant %v", got.Linux.SecurityContext, want)
	}

	// The image's user fills in when nothing sets runAsUser.
	pod = basePod()
	got, err = cfg.ContainerConfig(pod, &pod.Spec.Containers[0], cri.ContainerInput{ImageUsername: "nobody"})
	if err != nil || got.Linux.SecurityContext.RunAsUser != nil || got.Linux.SecurityContext.RunAsUsername != "nobody" {
		t.Fatalf("image user: %v, %v", got.GetLinux().GetSecurityContext(), err)
	}
	cfg.SeccompDefault = true
	got, _ = cfg.ContainerConfig(pod, &pod.Spec.Containers[0], cri.ContainerInput{})
	if got.Linux.SecurityContext.Seccomp.ProfileType != runtimeapi.SecurityProfile_RuntimeDefault {
		t.Errorf("--seccomp-default: seccomp = %v", got.Linux.SecurityContext.Seccomp)
	}
	pod.Annotations = map[string]string{corev1.DeprecatedAppArmorBetaContainerAnnotationKeyPrefix + "c": "localhost/k8s-nginx"}
	got, _ = cfg.ContainerConfig(pod, &pod.Spec.Containers[0], cri.ContainerInput{})
	//lint:ignore SA1019 the kubelet still fills the deprecated field
	if got.Linux.SecurityContext.ApparmorProfile != "localhost/k8s-nginx" || got.Linux.SecurityContext.Apparmor.LocalhostRef != "k8s-nginx" {
		t.Errorf("apparmor annotation: %v", got.Linux.SecurityContext)
	}
}

func TestRunAsNonRoot(t *testing.T) {
	cfg := clusterConfig()
	for _, tc := range []struct {
		name     string
		runAs    *int64
		uid      *int64
		username string
		err      string
	}{
		{"image root", nil, ptr.To[int64](0), "", "image will run as root"},
		{"no image user is root", nil, nil, "", ""},
		{"image named user", nil, nil, "app", "non-numeric user (app)"},
		{"image uid 1000", nil, ptr.To[int64](1000), "", ""},
		{"image uid negative", nil, ptr.To[int64](-1), "", "invalid user id"},
		{"runAsUser 0", ptr.To[int64](0), nil, "", "breaks non-root policy"},
		{"runAsUser 5", ptr.To[int64](5), ptr.To[int64](0), "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pod := basePod()
			pod.Spec.SecurityContext.RunAsNonRoot = ptr.To(true)
			pod.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{RunAsUser: tc.runAs}
			_, err := cfg.ContainerConfig(pod, &pod.Spec.Containers[0], cri.ContainerInput{ImageUID: tc.uid, ImageUsername: tc.username})
			if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
				t.Fatalf("err = %v, want %q", err, tc.err)
			}
		})
	}
}

func TestMounts(t *testing.T) {
	cfg := clusterConfig()
	pod := basePod()
	pod.Spec.Volumes = []corev1.Volume{{Name: "v", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
		{Name: "pvc", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "c"}}}}
	c := &pod.Spec.Containers[0]
	env := []*runtimeapi.KeyValue{{Key: "POD", Value: []byte("web")}, {Key: "EMPTY"}}
	for _, tc := range []struct {
		name  string
		mount corev1.VolumeMount
		in    cri.ContainerInput
		want  string // host path, or error
	}{
		{"subPathExpr", corev1.VolumeMount{Name: "v", MountPath: "/x", SubPathExpr: "logs/$(POD)"}, cri.ContainerInput{}, "/var/lib/kubelet/pods/1234-abcd/volumes/kubernetes.io~empty-dir/v/logs/web"},
		{"subPathExpr with an empty variable", corev1.VolumeMount{Name: "v", MountPath: "/x", SubPathExpr: "$(EMPTY)/$(NOPE)"}, cri.ContainerInput{}, "missing value for EMPTY, NOPE"},
		{"absolute subPath", corev1.VolumeMount{Name: "v", MountPath: "/x", SubPath: "/etc"}, cri.ContainerInput{}, "must not be an absolute path"},
		{"subPath with ..", corev1.VolumeMount{Name: "v", MountPath: "/x", SubPath: "a/../../etc"}, cri.ContainerInput{}, "must not contain '..'"},
		{"unknown volume", corev1.VolumeMount{Name: "nope", MountPath: "/x"}, cri.ContainerInput{}, `cannot find volume "nope"`},
		{"pvc needs a path", corev1.VolumeMount{Name: "pvc", MountPath: "/x"}, cri.ContainerInput{}, `cannot find volume "pvc"`},
		{"pvc with a path", corev1.VolumeMount{Name: "pvc", MountPath: "/x"}, cri.ContainerInput{VolumePaths: map[string]string{"pvc": "/mnt/pvc"}}, "/mnt/pvc"},
		{"bad propagation", corev1.VolumeMount{Name: "v", MountPath: "/x", MountPropagation: ptr.To(corev1.MountPropagationMode("Sideways"))}, cri.ContainerInput{}, "invalid MountPropagation"},
		{"recursive read-only needs read-only", corev1.VolumeMount{Name: "v", MountPath: "/x", RecursiveReadOnly: ptr.To(corev1.RecursiveReadOnlyEnabled)}, cri.ContainerInput{}, "is not read-only"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c.VolumeMounts = []corev1.VolumeMount{tc.mount}
			mounts, err := cfg.Mounts(pod, c, &tc.in, env)
			if strings.HasPrefix(tc.want, "/") {
				if err != nil || len(mounts) != 1 || mounts[0].HostPath != tc.want {
					t.Fatalf("mounts = %v, %v; want host path %s", mounts, err, tc.want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
	// A container that mounts something at /etc/hosts gets no managed one.
	c.VolumeMounts = []corev1.VolumeMount{{Name: "v", MountPath: "/etc/hosts"}}
	mounts, err := cfg.Mounts(pod, c, &cri.ContainerInput{PodIPs: []string{"10.0.0.1"}}, nil)
	if err != nil || len(mounts) != 1 {
		t.Fatalf("mounts = %v, %v", mounts, err)
	}
}

func TestHostsFile(t *testing.T) {
	pod := basePod()
	pod.Spec.HostAliases = []corev1.HostAlias{{IP: "10.1.1.1", Hostnames: []string{"a", "b"}}}
	got := string(cri.HostsFile(pod, []string{"10.0.0.7"}, "web", "svc.shop.svc.cluster.local"))
	want := "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n" +
		"fe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n" +
		"10.0.0.7\tweb.svc.shop.svc.cluster.local\tweb\n\n# Entries added by HostAliases.\n10.1.1.1\ta\tb\n"
	if got != want {
		t.Fatalf("HostsFile =\n%s\nwant\n%s", got, want)
	}
}

func TestContainerAnnotations(t *testing.T) {
	pod := basePod()
	pod.DeletionGracePeriodSeconds = ptr.To[int64](5)
	c := &pod.Spec.Containers[0]
	c.Lifecycle = &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: []string{"stop"}}}}
	a := cri.ContainerAnnotations(pod, c, 1, map[string]string{"device": "gpu0", cri.ContainerRestartCountAnnotation: "99"})
	if a["device"] != "gpu0" || a[cri.ContainerRestartCountAnnotation] != "1" || a[cri.PodDeletionGracePeriodAnnotation] != "5" ||
		a[cri.ContainerPreStopHandlerAnnotation] != `{"exec":{"command":["stop"]}}` {
		t.Fatalf("annotations = %v", a)
	}
	if _, ok := a[cri.PodTerminationGracePeriodAnnotation]; ok {
		t.Error("terminationGracePeriod annotation without spec.terminationGracePeriodSeconds")
	}
}

func TestContainerResourcesCgroupV2(t *testing.T) {
	cfg := clusterConfig()
	cfg.CgroupV2, cfg.SwapControllerAvailable = true, true
	pod := basePod()
	pod.Spec.Containers[0].Resources = corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("1Gi")}}
	r := cfg.ContainerResources(pod, &pod.Spec.Containers[0])
	want := map[string]string{"memory.oom.group": "1", "memory.high": "max", "memory.swap.max": "0"}
	if len(r.Unified) != 3 || r.Unified["memory.oom.group"] != "1" || r.Unified["memory.high"] != "max" || r.Unified["memory.swap.max"] != "0" {
		t.Fatalf("unified = %v, want %v", r.Unified, want)
	}
	if r.OomScoreAdj != 750 { // 1000 - 1000*1Gi/4Gi
		t.Errorf("OomScoreAdj = %d, want 750", r.OomScoreAdj)
	}
	cfg.CgroupV2 = false
	pod.Spec.Containers[0].Resources.Limits = corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("2Gi")}
	r = cfg.ContainerResources(pod, &pod.Spec.Containers[0])
	if r.MemorySwapLimitInBytes != 2<<30 || r.Unified != nil {
		t.Fatalf("cgroup v1 no-swap: %v", r)
	}
}

func TestContainerConfigErrors(t *testing.T) {
	cfg := clusterConfig()
	if _, err := cfg.ContainerConfig(nil, nil, cri.ContainerInput{}); err == nil {
		t.Error("nil pod: no error")
	}
	pod := basePod()
	pod.Spec.SecurityContext.SeccompProfile = &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeLocalhost}
	if _, err := cfg.ContainerConfig(pod, &pod.Spec.Containers[0], cri.ContainerInput{}); err == nil || !strings.Contains(err.Error(), "localhostProfile") {
		t.Errorf("Localhost seccomp without a profile: err = %v", err)
	}
	pod = basePod()
	pod.Spec.SecurityContext.SupplementalGroupsPolicy = ptr.To(corev1.SupplementalGroupsPolicy("Loose"))
	if _, err := cfg.ContainerConfig(pod, &pod.Spec.Containers[0], cri.ContainerInput{}); err == nil {
		t.Error("unknown supplementalGroupsPolicy: no error")
	}
}

func TestEphemeralTarget(t *testing.T) {
	cfg := clusterConfig()
	pod := basePod()
	got, err := cfg.ContainerConfig(pod, &pod.Spec.Containers[0], cri.ContainerInput{TargetContainerID: "abc"})
	if err != nil {
		t.Fatal(err)
	}
	ns := got.Linux.SecurityContext.NamespaceOptions
	if ns.Pid != runtimeapi.NamespaceMode_TARGET || ns.TargetId != "abc" {
		t.Fatalf("namespaces = %v", ns)
	}
}
