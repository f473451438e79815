package cri_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/kube-nodekit/nodekit/cri"
	"github.com/kube-nodekit/nodekit/internal/testenv"
)

// benchPod is a realistic pod: n containers with resources, ports, env
// with a field reference, an emptyDir and a configMap mount.
func benchPod(n int) *corev1.Pod {
	pod := basePod()
	pod.Spec.Volumes = []corev1.Volume{
		{Name: "data", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
		{Name: "conf", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{}}},
	}
	pod.Spec.Containers = nil
	for i := range n {
		pod.Spec.Containers = append(pod.Spec.Containers, corev1.Container{
			Name: fmt.Sprintf("c%d", i), Image: "registry.example/app:1.0",
			Command: []string{"/app", "--pod=$(POD_NAME)"},
			Env: []corev1.EnvVar{{Name: "MODE", Value: "prod"},
				{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.name"}}}},
			Ports:        []corev1.ContainerPort{{Name: "http", ContainerPort: int32(8080 + i), Protocol: corev1.ProtocolTCP}},
			VolumeMounts: []corev1.VolumeMount{{Name: "data", MountPath: "/data"}, {Name: "conf", MountPath: "/etc/app"}},
			Resources: corev1.ResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("64Mi")},
				Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m"), corev1.ResourceMemory: resource.MustParse("128Mi")},
			},
			TerminationMessagePath: corev1.TerminationMessagePathDefault, TerminationMessagePolicy: corev1.TerminationMessageReadFile,
		})
	}
	return pod
}

// BenchmarkTranslatePod: the sandbox config and every container config of
// a pod, what the kubelet builds to start it.
func BenchmarkTranslatePod(b *testing.B) {
	for _, n := range []int{1, 10} {
		b.Run(fmt.Sprintf("containers=%d", n), func(b *testing.B) {
			cfg := clusterConfig()
			pod := benchPod(n)
			in := cri.ContainerInput{ImageRef: "sha256:feed", PodIPs: []string{"10.244.1.7"}}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := cfg.SandboxConfig(pod, cri.SandboxOptions{}); err != nil {
					b.Fatal(err)
				}
				for i := range pod.Spec.Containers {
					if _, err := cfg.ContainerConfig(pod, &pod.Spec.Containers[i], in); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}

func BenchmarkParseLogLine(b *testing.B) {
	for _, size := range []int{80, 4096} {
		line := cri.AppendLogLine(nil, time.Now(), runtimeapi.Stdout, false, make([]byte, size))
		b.Run(fmt.Sprintf("bytes=%d", size), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(line)))
			for b.Loop() {
				if _, err := cri.ParseLogLine(line); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkReadLogs reads a whole log file of 10000 records.
func BenchmarkReadLogs(b *testing.B) {
	var buf []byte
	now := time.Now()
	for i := range 10000 {
		buf = cri.AppendLogLine(buf, now, runtimeapi.Stdout, i%10 == 0, []byte("GET /healthz 200 0.3ms user-agent=kube-probe/1.37"))
	}
	path := filepath.Join(b.TempDir(), "0.log")
	if err := os.WriteFile(path, buf, 0o644); err != nil {
		b.Fatal(err)
	}
	b.Run("lines=10000", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(buf)))
		for b.Loop() {
			if err := cri.ReadLogs(context.Background(), path, "", cri.LogOptions{Timestamps: true}, nil, discard{}, discard{}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

func BenchmarkNormalizeImage(b *testing.B) {
	for _, img := range []string{"busybox", "registry.k8s.io/kube-proxy:v1.37.2@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"} {
		b.Run(fmt.Sprintf("len=%d", len(img)), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := cri.NormalizeImage(img); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkListContainers is the round trip of a relist on the test bed's
// containerd with 100 running containers in one pod.
func BenchmarkListContainers(b *testing.B) {
	const n = 100
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	c := dial(b, testenv.CRIEndpoint(b))
	cfg := testConfig(b)
	pod := newTestPod(b, "bench")
	for i := range n {
		ctr := corev1.Container{Name: fmt.Sprintf("sleep-%d", i), Command: []string{"sleep", "3600"}}
		defaultContainer(&ctr)
		pod.Spec.Containers = append(pod.Spec.Containers, ctr)
	}
	p := startPod(ctx, b, c, cfg, pod)
	for i := range pod.Spec.Containers {
		p.start(ctx, &pod.Spec.Containers[i])
	}
	filter := &runtimeapi.ContainerFilter{LabelSelector: map[string]string{cri.PodUIDLabel: string(pod.UID)}}
	b.Run(fmt.Sprintf("containers=%d", n), func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			list, err := c.ListContainers(ctx, filter)
			if err != nil {
				b.Fatal(err)
			}
			if len(list) != n {
				b.Fatalf("listed %d containers, want %d", len(list), n)
			}
		}
	})
}
