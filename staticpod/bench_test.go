package staticpod

import (
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	testclock "k8s.io/utils/clock/testing"
	"time"
)

// manifestWith returns a manifest with n containers, each with ports,
// resources, env and a probe: what a control-plane manifest looks like.
func manifestWith(n int) []byte {
	var b strings.Builder
	b.WriteString("apiVersion: v1\nkind: Pod\nmetadata:\n  name: bench\n  namespace: kube-system\n  labels: {tier: control-plane}\nspec:\n  hostNetwork: true\n  priorityClassName: system-node-critical\n  containers:\n")
	for i := range n {
		fmt.Fprintf(&b, `  - name: c%d
    image: registry.k8s.io/kube-apiserver:v1.37.2
    command: [kube-apiserver, --advertise-address=10.0.0.1, --secure-port=6443]
    ports: [{containerPort: %d, name: https}]
    env: [{name: A, value: b}]
    resources: {requests: {cpu: 250m}, limits: {memory: 1Gi}}
    livenessProbe: {httpGet: {path: /livez, port: %d, scheme: HTTPS}, initialDelaySeconds: 10}
    volumeMounts: [{name: certs, mountPath: /etc/kubernetes/pki, readOnly: true}]
`, i, 6443+i, 6443+i)
	}
	b.WriteString("  volumes:\n  - {name: certs, hostPath: {path: /etc/kubernetes/pki, type: DirectoryOrCreate}}\n")
	return []byte(b.String())
}

// BenchmarkDecodeFile: decode, default, hash and validate one manifest.
func BenchmarkDecodeFile(b *testing.B) {
	for _, n := range []int{1, 10} {
		data := manifestWith(n)
		b.Run(fmt.Sprintf("containers=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				if _, err := DecodeFile(data, "node-1", "/etc/kubernetes/manifests/bench.yaml"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkMergerSet: a SET of N pods that changed nothing, the steady
// state of a resync.
func BenchmarkMergerSet(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		pods := make([]*corev1.Pod, n)
		for i := range pods {
			pods[i] = testPod(fmt.Sprintf("p%d", i), fmt.Sprintf("u%d", i), "img")
		}
		b.Run(fmt.Sprintf("pods=%d", n), func(b *testing.B) {
			m := NewMerger(MergerConfig{Clock: testclock.NewFakeClock(time.Unix(0, 0))})
			if _, err := m.Set(SourceFile, pods); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if up, _ := m.Set(SourceFile, pods); len(up) != 0 {
					b.Fatalf("unchanged set gave %d updates", len(up))
				}
			}
		})
	}
}
