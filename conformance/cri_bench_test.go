package conformance

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	dockerref "github.com/distribution/reference"
	v1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	upstreamlogs "k8s.io/cri-client/pkg/logs"

	"github.com/kube-nodekit/nodekit/cri"
)

// criBenchPod is a pod of n random containers, the same for both sides.
func criBenchPod(n int) *v1.Pod {
	g := &criGen{r: rand.New(rand.NewPCG(1, 2))}
	for {
		pod := g.pod(0)
		if pod.Spec.SecurityContext == nil || pod.Spec.Hostname == "Bad_Name" || pod.Spec.SecurityContext.SupplementalGroupsPolicy != nil ||
			pod.Spec.SecurityContext.SeccompProfile != nil || pod.Spec.SecurityContext.RunAsNonRoot != nil {
			continue
		}
		pod.Spec.InitContainers = nil
		pod.Spec.Containers = nil
		for i := range n {
			c := g.container(fmt.Sprintf("c%d", i), false)
			c.SecurityContext = nil
			pod.Spec.Containers = append(pod.Spec.Containers, c)
		}
		return pod
	}
}

// BenchmarkCriTranslatePod: the sandbox config and every container config
// of a pod, nodekit beside the kubelet's generatePodSandboxConfig and
// generateContainerConfig.
func BenchmarkCriTranslatePod(b *testing.B) {
	p := newCRIPair(b)
	ctx := context.Background()
	ips := []string{"10.244.3.7"}
	for _, n := range []int{1, 10} {
		pod := criBenchPod(n)
		b.Run(fmt.Sprintf("nodekit/containers=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := p.cfg.SandboxConfig(pod, cri.SandboxOptions{}); err != nil {
					b.Fatal(err)
				}
				for i := range pod.Spec.Containers {
					if _, err := p.cfg.ContainerConfig(pod, &pod.Spec.Containers[i], cri.ContainerInput{ImageRef: "sha256:feed", PodIPs: ips, ImageUID: new(int64)}); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
		b.Run(fmt.Sprintf("upstream/containers=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := criUpstreamSandboxConfig(p.upstream, ctx, pod, 0); err != nil {
					b.Fatal(err)
				}
				for i := range pod.Spec.Containers {
					if _, _, err := criUpstreamContainerConfig(p.upstream, ctx, &pod.Spec.Containers[i], pod, 0, ips[0], "sha256:feed", ips, nil, nil); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}

func BenchmarkCriNormalizeImage(b *testing.B) {
	for _, img := range []string{"busybox", "registry.k8s.io/kube-proxy:v1.37.2@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"} {
		b.Run(fmt.Sprintf("nodekit/len=%d", len(img)), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := cri.NormalizeImage(img); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("upstream/len=%d", len(img)), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				named, err := dockerref.ParseDockerRef(img)
				if err != nil {
					b.Fatal(err)
				}
				_ = named.String()
			}
		})
	}
}

type criDiscard struct{}

func (criDiscard) Write(p []byte) (int, error) { return len(p), nil }

// BenchmarkCriReadLogs reads a 10000-record log with timestamps.
func BenchmarkCriReadLogs(b *testing.B) {
	var buf []byte
	now := time.Now()
	for i := range 10000 {
		buf = cri.AppendLogLine(buf, now, runtimeapi.Stdout, i%10 == 0, []byte("GET /healthz 200 0.3ms user-agent=kube-probe/1.37"))
	}
	path := filepath.Join(b.TempDir(), "0.log")
	if err := os.WriteFile(path, buf, 0o644); err != nil {
		b.Fatal(err)
	}
	b.Run("nodekit/lines=10000", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(buf)))
		for b.Loop() {
			if err := cri.ReadLogs(context.Background(), path, "", cri.LogOptions{Timestamps: true}, nil, criDiscard{}, criDiscard{}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("upstream/lines=10000", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(buf)))
		for b.Loop() {
			if err := upstreamlogs.ReadLogs(context.Background(), path, "", &upstreamlogs.LogOptions{Timestamp: true}, nil, criDiscard{}, criDiscard{}); err != nil {
				b.Fatal(err)
			}
		}
	})
}
