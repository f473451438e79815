package conformance

import (
	"encoding/hex"
	"fmt"
	"hash/fnv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/kubernetes/pkg/api/legacyscheme"
	podutil "k8s.io/kubernetes/pkg/api/pod"
	api "k8s.io/kubernetes/pkg/apis/core"
	"k8s.io/kubernetes/pkg/apis/core/helper"
	k8sv1 "k8s.io/kubernetes/pkg/apis/core/v1"
	"k8s.io/kubernetes/pkg/apis/core/validation"
	"k8s.io/kubernetes/pkg/util/hash"

	"github.com/kube-nodekit/nodekit/staticpod"
)

// spBenchManifest is a control-plane-like manifest with n containers.
func spBenchManifest(n int) []byte {
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

// spUpstreamDecodeFile is tryDecodeSinglePod + applyDefaults
// (pkg/kubelet/config/common.go) rebuilt from upstream's exported parts,
// for the side-by-side benchmark.
func spUpstreamDecodeFile(data []byte, node, path string) (*corev1.Pod, error) {
	js, err := utilyaml.ToJSON(data)
	if err != nil {
		return nil, err
	}
	obj, err := runtime.Decode(legacyscheme.Codecs.UniversalDecoder(), js)
	if err != nil {
		return nil, err
	}
	pod := obj.(*api.Pod)
	h := fnv.New128a()
	hash.DeepHashObject(h, pod)
	fmt.Fprintf(h, "host:%s", node)
	fmt.Fprintf(h, "file:%s", path)
	pod.UID = types.UID(hex.EncodeToString(h.Sum(nil)))
	pod.Name = pod.Name + "-" + strings.ToLower(node)
	pod.Spec.NodeName = node
	if pod.Annotations == nil {
		pod.Annotations = map[string]string{}
	}
	pod.Annotations["kubernetes.io/config.hash"] = string(pod.UID)
	helper.AddOrUpdateTolerationInPod(pod, &api.Toleration{Operator: "Exists", Effect: api.TaintEffectNoExecute})
	pod.Status.Phase = api.PodPending
	opts := podutil.GetValidationOptionsFromPodSpecAndMeta(&pod.Spec, nil, &pod.ObjectMeta, nil)
	if errs := validation.ValidatePodCreate(pod, opts); len(errs) > 0 {
		return nil, errs.ToAggregate()
	}
	out := &corev1.Pod{}
	if err := k8sv1.Convert_core_Pod_To_v1_Pod(pod, out, nil); err != nil {
		return nil, err
	}
	if _, res, err := podutil.HasAPIObjectReference(pod); err != nil || res != "" {
		return nil, fmt.Errorf("reference %s %v", res, err)
	}
	return out, nil
}

// BenchmarkStaticPodDecode: decode, default, hash and validate one
// manifest, nodekit against upstream's steps.
func BenchmarkStaticPodDecode(b *testing.B) {
	for _, n := range []int{1, 10} {
		data := spBenchManifest(n)
		for _, impl := range []struct {
			name string
			f    func([]byte, string, string) (*corev1.Pod, error)
		}{{"nodekit", staticpod.DecodeFile}, {"upstream", spUpstreamDecodeFile}} {
			b.Run(fmt.Sprintf("%s/containers=%d", impl.name, n), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if _, err := impl.f(data, "node-1", "/etc/kubernetes/manifests/bench.yaml"); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// TestStaticPodBenchPipelinesAgree: the two benchmarked pipelines give
// the same pod, so the benchmark compares like with like.
func TestStaticPodBenchPipelinesAgree(t *testing.T) {
	data := spBenchManifest(3)
	got, err := staticpod.DecodeFile(data, "node-1", "/m/b.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want, err := spUpstreamDecodeFile(data, "node-1", "/m/b.yaml")
	if err != nil {
		t.Fatal(err)
	}
	delete(got.Annotations, "kubernetes.io/config.source") // set by PodConfig upstream
	if got.UID != want.UID || got.Name != want.Name || len(got.Spec.Tolerations) != len(want.Spec.Tolerations) {
		t.Fatalf("pipelines disagree: %s %s vs %s %s", got.Name, got.UID, want.Name, want.UID)
	}
}
