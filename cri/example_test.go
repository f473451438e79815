package cri_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/kube-nodekit/nodekit/cri"
	"github.com/kube-nodekit/nodekit/cri/critest"
)

// A pod as the apiserver stores it, translated the way a v1.37 kubelet does.
func ExampleConfig_SandboxConfig() {
	links := false
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop", UID: "8d3c"},
		Spec: corev1.PodSpec{
			Containers:         []corev1.Container{{Name: "nginx", Image: "nginx:1.27", Ports: []corev1.ContainerPort{{ContainerPort: 80, HostPort: 8080, Protocol: corev1.ProtocolTCP}}}},
			DNSPolicy:          corev1.DNSClusterFirst,
			SecurityContext:    &corev1.PodSecurityContext{},
			EnableServiceLinks: &links,
		},
	}
	cfg := cri.DefaultConfig()
	cfg.ClusterDNS = []string{"10.96.0.10"}
	cfg.ClusterDomain = "cluster.local"

	sc, err := cfg.SandboxConfig(pod, cri.SandboxOptions{})
	if err != nil {
		panic(err)
	}
	fmt.Println("hostname:", sc.Hostname)
	fmt.Println("logs:", sc.LogDirectory)
	fmt.Println("cgroup parent:", sc.Linux.CgroupParent)
	fmt.Println("dns:", sc.DnsConfig.Servers, sc.DnsConfig.Searches)
	fmt.Println("ports:", sc.PortMappings[0].ContainerPort, "->", sc.PortMappings[0].HostPort)
	// Output:
	// hostname: web
	// logs: /var/log/pods/shop_web_8d3c
	// cgroup parent: /kubepods/besteffort/pod8d3c
	// dns: [10.96.0.10] [shop.svc.cluster.local svc.cluster.local cluster.local]
	// ports: 80 -> 8080
}

// Each container becomes a ContainerConfig; $(VAR) references in command
// and args expand against its environment.
func ExampleConfig_ContainerConfig() {
	links := false
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "job", Namespace: "batch", UID: "42"},
		Spec: corev1.PodSpec{
			Containers: []corev1.Container{{
				Name: "main", Image: "busybox:1.36",
				Command: []string{"sh", "-c", "echo $(GREETING) from $(POD)"},
				Env: []corev1.EnvVar{{Name: "GREETING", Value: "hello"},
					{Name: "POD", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.name"}}}},
			}},
			EnableServiceLinks: &links,
		},
	}
	cfg := cri.DefaultConfig()
	cc, err := cfg.ContainerConfig(pod, &pod.Spec.Containers[0], cri.ContainerInput{RestartCount: 1})
	if err != nil {
		panic(err)
	}
	fmt.Println(cc.Command)
	fmt.Println(cc.LogPath, cc.Annotations[cri.ContainerRestartCountAnnotation])
	fmt.Println(cc.Linux.Resources.CpuShares, cc.Linux.Resources.OomScoreAdj)
	// Output:
	// [sh -c echo hello from job]
	// main/1.log 1
	// 2 1000
}

func ExampleNormalizeImage() {
	for _, img := range []string{"busybox", "kube/proxy:v1", "localhost:5000/app", "registry.k8s.io/pause:3.10.2"} {
		n, _ := cri.NormalizeImage(img)
		fmt.Printf("%-28s %-40s %s\n", img, n, cri.DefaultPullPolicy(img))
	}
	// Output:
	// busybox                      docker.io/library/busybox:latest         Always
	// kube/proxy:v1                docker.io/kube/proxy:v1                  IfNotPresent
	// localhost:5000/app           localhost:5000/app:latest                Always
	// registry.k8s.io/pause:3.10.2 registry.k8s.io/pause:3.10.2             IfNotPresent
}

func ExampleParseLogLine() {
	l, err := cri.ParseLogLine([]byte("2024-05-01T10:00:00.000000001Z stderr P disk almost ful\n"))
	if err != nil {
		panic(err)
	}
	fmt.Printf("%s %s partial=%v %q\n", l.Time.Format(time.RFC3339Nano), l.Stream, l.Partial, l.Log)
	// Output:
	// 2024-05-01T10:00:00.000000001Z stderr partial=true "disk almost ful"
}

// ReadLogs reads what the runtime wrote to a container's log file, here the
// fake runtime of package critest.
func ExampleReadLogs() {
	ctx := context.Background()
	rt := critest.New(nil)
	rt.AddImage("busybox:1.36", 1)
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	sb, _ := rt.RunPodSandbox(ctx, &runtimeapi.PodSandboxConfig{
		Metadata: &runtimeapi.PodSandboxMetadata{Name: "p", Namespace: "ns", Uid: "1"}, LogDirectory: dir}, "")
	id, _ := rt.CreateContainer(ctx, sb, &runtimeapi.ContainerConfig{Metadata: &runtimeapi.ContainerMetadata{Name: "c"},
		Image: &runtimeapi.ImageSpec{Image: "busybox:1.36"}, LogPath: cri.ContainerLogPath("c", 0)}, nil)
	rt.StartContainer(ctx, id)
	rt.Print(id, runtimeapi.Stdout, "starting\nready\n")
	rt.Print(id, runtimeapi.Stderr, "warning: low disk\n")

	var out strings.Builder
	tail := int64(2)
	err := cri.ReadLogs(ctx, filepath.Join(dir, "c", "0.log"), id, cri.LogOptions{TailLines: &tail}, rt, &out, &out)
	fmt.Print(out.String(), err)
	// Output:
	// ready
	// warning: low disk
	// <nil>
}

// WatchContainerEvents follows a runtime's container events and says when
// the stream broke, so the caller can relist.
func ExampleWatchContainerEvents() {
	ctx, cancel := context.WithCancel(context.Background())
	rt := critest.New(nil)
	rt.AddImage("busybox:1.36", 1)
	sb, _ := rt.RunPodSandbox(ctx, &runtimeapi.PodSandboxConfig{Metadata: &runtimeapi.PodSandboxMetadata{Name: "p", Namespace: "ns", Uid: "1"}}, "")
	id, _ := rt.CreateContainer(ctx, sb, &runtimeapi.ContainerConfig{Metadata: &runtimeapi.ContainerMetadata{Name: "c"}, Image: &runtimeapi.ImageSpec{Image: "busybox:1.36"}}, nil)
	rt.StartContainer(ctx, id)
	rt.Exit(id, 0)

	n := 0
	err := cri.WatchContainerEvents(ctx, rt, cri.WatchOptions{OnReconnect: func() { fmt.Println("relist") }},
		func(ev *runtimeapi.ContainerEventResponse) {
			fmt.Println(ev.ContainerEventType)
			if n++; n == 3 {
				cancel()
			}
		})
	fmt.Println("watch ended:", err)
	// Output:
	// CONTAINER_CREATED_EVENT
	// CONTAINER_STARTED_EVENT
	// CONTAINER_STOPPED_EVENT
	// watch ended: <nil>
}

// EnsureImage applies the pull policy: a present image with IfNotPresent is
// not pulled again; Never fails for an absent one.
func ExampleEnsureImage() {
	ctx := context.Background()
	rt := critest.New(nil)
	rt.AddImage("busybox:1.36", 1)
	_, err := cri.EnsureImage(ctx, rt, "busybox:1.36", corev1.PullIfNotPresent, cri.PullOptions{})
	fmt.Println(err, rt.Calls())
	_, err = cri.EnsureImage(ctx, rt, "nginx:1.27", corev1.PullNever, cri.PullOptions{})
	fmt.Println(err)
	// Output:
	// <nil> [ImageStatus]
	// cri: ErrImageNeverPull: container image "nginx:1.27" is not present with pull policy of Never
}

// Dial checks that the runtime speaks CRI v1 before returning.
func ExampleDial() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := cri.Dial(ctx, "unix:///run/containerd/containerd.sock", cri.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	v := c.RuntimeVersion()
	fmt.Println(v.RuntimeName, v.RuntimeVersion)
}
