package staticpod

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

// MaxManifestSize bounds a manifest, file or URL body: the kubelet reads at
// most this many bytes and refuses a manifest that reaches it
// (maxConfigLength in pkg/kubelet/config/common.go, read with
// k8s.io/utils/io.ReadAtMost).
const MaxManifestSize = 10 << 20

// deserializer decodes the wire forms the apiserver's codecs accept (JSON,
// YAML) into k8s.io/api types: the same decoding code as the kubelet's,
// without its internal types. It is immutable once built.
var deserializer = sync.OnceValue(func() runtime.Decoder {
	scheme := runtime.NewScheme()
	if err := corev1.AddToScheme(scheme); err != nil {
		panic(err) // registering a fixed set of types cannot fail
	}
	return serializer.NewCodecFactory(scheme).UniversalDeserializer()
})

// DecodeFile turns the contents of a manifest file into the static pod the
// kubelet would run on node nodeName, or says why it would not.
//
// The manifest is YAML or JSON holding one v1 Pod; a PodList or another
// kind is refused (ErrNotPod). As upstream, only the first YAML document is
// read: the pod is returned together with an error matching
// ErrExtraDocuments when more follow, so callers that only test err != nil
// must check for that case (see the Dir source, which keeps such pods).
//
// The pod gets upstream's defaults: the API defaults, then UID (a hash of
// the manifest, nodeName and path, unless metadata.uid is set), name
// "<name>-<lowercased nodeName>", namespace "default" when empty,
// spec.nodeName, the kubernetes.io/config.hash annotation, the NoExecute
// "Exists" toleration, status.phase Pending, and the
// kubernetes.io/config.source annotation "file". It is then validated and
// checked for references to API objects.
func DecodeFile(data []byte, nodeName, path string) (*corev1.Pod, error) {
	if len(data) >= MaxManifestSize {
		return nil, ErrTooLarge
	}
	isPod, pod, err := decodePod(data, true, nodeName, path)
	if err != nil {
		if !isPod {
			return nil, fmt.Errorf("%w: %w", ErrNotPod, err)
		}
		return nil, err
	}
	if extra := extraDocuments(data); extra > 0 {
		return pod, fmt.Errorf("%w (%d more)", ErrExtraDocuments, extra)
	}
	return pod, nil
}

// DecodeURL turns a body read from a manifest URL into pods: a single Pod
// or a PodList, with the defaults DecodeFile applies except the toleration
// (the kubelet adds it to file pods only) and with a UID hashed from the
// manifest and the URL alone. The source annotation is "http". As
// upstream, one bad pod in a list rejects the whole list.
func DecodeURL(data []byte, nodeName, url string) ([]*corev1.Pod, error) {
	if len(data) >= MaxManifestSize {
		return nil, ErrTooLarge
	}
	isPod, pod, podErr := decodePod(data, false, nodeName, url)
	if isPod {
		if podErr != nil {
			return nil, podErr
		}
		return []*corev1.Pod{pod}, nil
	}
	isList, pods, listErr := decodePodList(data, nodeName, url)
	if isList {
		return pods, listErr
	}
	return nil, fmt.Errorf("%w: not a Pod (%v) nor a PodList (%v)", ErrNotPod, podErr, listErr)
}

// decodePod follows tryDecodeSinglePod (pkg/kubelet/config/common.go).
// isPod is true when the data decoded to a Pod, valid or not.
func decodePod(data []byte, fromFile bool, nodeName, path string) (isPod bool, _ *corev1.Pod, _ error) {
	// JSON is YAML; ToJSON leaves JSON alone and converts the first YAML
	// document.
	js, err := utilyaml.ToJSON(data)
	if err != nil {
		return false, nil, err
	}
	obj, _, err := deserializer().Decode(js, nil, nil)
	if err != nil {
		return false, nil, err
	}
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return false, nil, fmt.Errorf("decoded a %T", obj)
	}
	if pod.Name == "" {
		return true, nil, ErrNoName
	}
	if err := finish(pod, fromFile, nodeName, path); err != nil {
		return true, nil, err
	}
	return true, pod, nil
}

// decodePodList follows tryDecodePodList: the raw data (YAML or JSON) as a
// v1 PodList.
func decodePodList(data []byte, nodeName, url string) (isList bool, _ []*corev1.Pod, _ error) {
	obj, _, err := deserializer().Decode(data, nil, nil)
	if err != nil {
		return false, nil, err
	}
	list, ok := obj.(*corev1.PodList)
	if !ok {
		return false, nil, fmt.Errorf("decoded a %T", obj)
	}
	pods := make([]*corev1.Pod, 0, len(list.Items))
	for i := range list.Items {
		pod := &list.Items[i]
		if pod.Name == "" {
			return true, nil, ErrNoName
		}
		if err := finish(pod, false, nodeName, url); err != nil {
			return true, nil, err
		}
		pods = append(pods, pod)
	}
	return true, pods, nil
}

// finish defaults, names, validates and checks one decoded pod, in
// upstream's order (the UID hashes the pod as it is after API defaulting).
func finish(pod *corev1.Pod, fromFile bool, nodeName, path string) error {
	setAPIDefaults(pod)
	// The kubelet hashes its internal type, which carries no TypeMeta.
	pod.TypeMeta = metav1.TypeMeta{}
	applyStaticDefaults(pod, fromFile, nodeName, path)
	if errs := validatePod(pod); len(errs) > 0 {
		return &ValidationError{Errs: errs}
	}
	if resource, err := apiReference(pod); err != nil {
		return err
	} else if resource != "" {
		return &ReferenceError{Resource: resource}
	}
	src := SourceHTTP
	if fromFile {
		src = SourceFile
	}
	pod.Annotations[AnnotationSource] = src
	return nil
}

// applyStaticDefaults is applyDefaults in pkg/kubelet/config/common.go.
func applyStaticDefaults(pod *corev1.Pod, fromFile bool, nodeName, path string) {
	if pod.UID == "" {
		pod.UID = podUID(pod, fromFile, nodeName, path)
	}
	pod.Name = pod.Name + "-" + strings.ToLower(nodeName)
	if pod.Namespace == "" {
		pod.Namespace = metav1.NamespaceDefault
	}
	pod.Spec.NodeName = nodeName
	if pod.Annotations == nil {
		pod.Annotations = map[string]string{}
	}
	pod.Annotations[AnnotationHash] = string(pod.UID)
	if fromFile {
		tolerateNoExecute(pod)
	}
	pod.Status.Phase = corev1.PodPending
}

// tolerateNoExecute adds the toleration that keeps static pods on a node
// with NoExecute taints (such as not-ready or unreachable). A toleration
// with the same key, operator, value and effect is replaced by it, so its
// tolerationSeconds is dropped (AddOrUpdateTolerationInPod in
// pkg/apis/core/helper).
func tolerateNoExecute(pod *corev1.Pod) {
	add := corev1.Toleration{Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute}
	var out []corev1.Toleration
	replaced := false
	for _, t := range pod.Spec.Tolerations {
		if t.Key == add.Key && t.Effect == add.Effect && t.Operator == add.Operator && t.Value == add.Value {
			out = append(out, add)
			replaced = true
			continue
		}
		out = append(out, t)
	}
	if !replaced {
		out = append(out, add)
	}
	pod.Spec.Tolerations = out
}

// extraDocuments counts the YAML documents after the first that hold
// anything but comments and blank lines. JSON input has none.
func extraDocuments(data []byte) int {
	if utilyaml.IsJSONBuffer(data) || !bytes.Contains(data, []byte("---")) {
		return 0
	}
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	n := 0
	for {
		doc, err := r.Read()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				return 0
			}
			break
		}
		if hasContent(doc) {
			n++
		}
	}
	if n <= 1 {
		return 0
	}
	return n - 1
}

func hasContent(doc []byte) bool {
	for line := range bytes.Lines(doc) {
		l := bytes.TrimSpace(line)
		if len(l) > 0 && l[0] != '#' && !bytes.Equal(l, []byte("---")) {
			return true
		}
	}
	return false
}
