package staticpod

import (
	"errors"
	"testing"
)

// FuzzDecodeFile: arbitrary bytes never panic and always give a pod or an
// error (a pod with an error only for ErrExtraDocuments); an accepted pod
// is named, namespaced, bound, hashed and tolerated as upstream does.
// Seeds are in testdata/fuzz/FuzzDecodeFile.
func FuzzDecodeFile(f *testing.F) {
	f.Add([]byte(webManifest))
	f.Add([]byte(podYAML("a", "busybox")))
	f.Add([]byte(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"j"},"spec":{"containers":[{"name":"c","image":"i"}]}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		pod, err := DecodeFile(data, "node-1", "/etc/kubernetes/manifests/f.yaml")
		switch {
		case pod == nil && err == nil:
			t.Fatal("neither a pod nor an error")
		case pod != nil && err != nil && !errors.Is(err, ErrExtraDocuments):
			t.Fatalf("a pod and an error: %v", err)
		case pod == nil:
			return
		}
		if pod.UID == "" || pod.Annotations[AnnotationHash] != string(pod.UID) || pod.Spec.NodeName != "node-1" ||
			pod.Namespace == "" || pod.Annotations[AnnotationSource] != SourceFile {
			t.Fatalf("accepted pod without upstream's defaults: %+v", pod.ObjectMeta)
		}
		if len(validatePod(pod)) != 0 {
			t.Fatal("accepted pod fails validation")
		}
	})
}

// FuzzDecodeURL: the same for URL bodies (Pod or PodList).
func FuzzDecodeURL(f *testing.F) {
	f.Add([]byte(podListJSON))
	f.Add([]byte(webManifest))
	f.Fuzz(func(t *testing.T, data []byte) {
		pods, err := DecodeURL(data, "node-1", "http://example.invalid/pods")
		if (pods == nil) == (err == nil) {
			t.Fatalf("pods %v err %v: want exactly one", pods, err)
		}
		for _, p := range pods {
			if p.UID == "" || p.Spec.NodeName != "node-1" {
				t.Fatalf("accepted pod without defaults: %+v", p.ObjectMeta)
			}
		}
	})
}
