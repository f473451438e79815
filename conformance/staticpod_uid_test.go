package conformance

import (
	"encoding/hex"
	"fmt"
	"hash/fnv"
	"testing"

	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/kubernetes/pkg/api/legacyscheme"
	api "k8s.io/kubernetes/pkg/apis/core"
	_ "k8s.io/kubernetes/pkg/apis/core/install"
	"k8s.io/kubernetes/pkg/util/hash"

	"github.com/kube-nodekit/nodekit/staticpod"
)

// spUpstreamFileUID computes the UID the kubelet gives a manifest file, with
// the steps of tryDecodeSinglePod and applyDefaults
// (pkg/kubelet/config/common.go): decode and default with the legacy
// scheme, then DeepHashObject plus host and file.
func spUpstreamFileUID(data []byte, node, path string) (string, error) {
	js, err := utilyaml.ToJSON(data)
	if err != nil {
		return "", err
	}
	obj, err := runtime.Decode(legacyscheme.Codecs.UniversalDecoder(), js)
	if err != nil {
		return "", err
	}
	pod, ok := obj.(*api.Pod)
	if !ok {
		return "", fmt.Errorf("not a pod: %T", obj)
	}
	if pod.UID != "" {
		return string(pod.UID), nil
	}
	h := fnv.New128a()
	hash.DeepHashObject(h, pod)
	fmt.Fprintf(h, "host:%s", node)
	fmt.Fprintf(h, "file:%s", path)
	return hex.EncodeToString(h.Sum(nil)), nil
}

// TestStaticPodUIDMatchesUpstream: for generated manifests that both
// accept, nodekit's UID (and so kubernetes.io/config.hash) is byte-equal to
// the kubelet's (applyDefaults in pkg/kubelet/config/common.go).
func TestStaticPodUIDMatchesUpstream(t *testing.T) {
	gen := newSPGen(1)
	compared := 0
	for i := range 1000 {
		m := gen.manifest(fmt.Sprintf("p%d", i))
		path := fmt.Sprintf("/etc/kubernetes/manifests/m%d.yaml", i)
		pod, err := staticpod.DecodeFile(m.data, "node-a", path)
		if err != nil {
			continue
		}
		want, err := spUpstreamFileUID(m.data, "node-a", path)
		if err != nil {
			t.Fatalf("%s: upstream cannot decode what nodekit accepted: %v\n%s", m.desc, err, m.data)
		}
		if string(pod.UID) != want {
			t.Fatalf("%s: UID = %s, upstream %s\n%s", m.desc, pod.UID, want, m.data)
		}
		compared++
	}
	t.Logf("%d manifests compared", compared)
	if compared < 250 {
		t.Fatalf("only %d manifests compared", compared)
	}
}
