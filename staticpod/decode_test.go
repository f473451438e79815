package staticpod

import (
	"errors"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"
)

const webManifest = `apiVersion: v1
kind: Pod
metadata:
  name: web
  annotations:
    kubernetes.io/config.hash: mine
    kubernetes.io/config.source: mine
spec:
  containers:
  - name: web
    image: nginx
    resources:
      limits: {cpu: "1", memory: 64Mi}
`

// TestDecodeFileDefaults pins applyDefaults (pkg/kubelet/config/common.go)
// and the API defaults (pkg/apis/core/v1/defaults.go).
func TestDecodeFileDefaults(t *testing.T) {
	pod, err := DecodeFile([]byte(webManifest), "node-a", "/etc/kubernetes/manifests/web.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c := pod.Spec.Containers[0]
	for _, tc := range []struct{ what, got, want string }{
		{"name is <name>-<lowercased node>", pod.Name, "web-node-a"},
		{"namespace defaults to default", pod.Namespace, "default"},
		{"nodeName is the node", pod.Spec.NodeName, "node-a"},
		{"config.hash is the UID, the user's overwritten", pod.Annotations[AnnotationHash], string(pod.UID)},
		{"config.source is file, the user's overwritten", pod.Annotations[AnnotationSource], SourceFile},
		{"phase Pending", string(pod.Status.Phase), "Pending"},
		{"untagged image pulls Always", string(c.ImagePullPolicy), "Always"},
		{"termination message path", c.TerminationMessagePath, "/dev/termination-log"},
		{"restartPolicy Always", string(pod.Spec.RestartPolicy), "Always"},
		{"dnsPolicy ClusterFirst", string(pod.Spec.DNSPolicy), "ClusterFirst"},
		{"schedulerName", pod.Spec.SchedulerName, "default-scheduler"},
		{"requests default to limits", c.Resources.Requests.Memory().String(), "64Mi"},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.what, tc.got, tc.want)
		}
	}
	if len(pod.UID) != 32 {
		t.Errorf("UID %q is not 128 bits of hex", pod.UID)
	}
	want := corev1.Toleration{Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute}
	if len(pod.Spec.Tolerations) != 1 || pod.Spec.Tolerations[0] != want {
		t.Errorf("tolerations = %+v, want only %+v", pod.Spec.Tolerations, want)
	}
	if pod.APIVersion != "" || pod.Kind != "" {
		t.Errorf("TypeMeta = %+v, want empty as upstream's converted pod", pod.TypeMeta)
	}
	if ptr.Deref(pod.Spec.TerminationGracePeriodSeconds, 0) != 30 {
		t.Errorf("terminationGracePeriodSeconds = %v, want 30", pod.Spec.TerminationGracePeriodSeconds)
	}
}

// TestUppercaseNodeName: the name suffix is lowercased, but spec.nodeName
// keeps the node name as given and must be a DNS subdomain
// (ValidatePodSpec), so no pod is valid on such a node, as upstream.
func TestUppercaseNodeName(t *testing.T) {
	_, err := DecodeFile([]byte(webManifest), "Node-A", "/m/web.yaml")
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "spec.nodeName") {
		t.Fatalf("err = %v, want invalid spec.nodeName", err)
	}
}

// TestUIDChangesWithContentNodeAndPath: the UID hashes the defaulted pod,
// the node and the path; formatting and explicit defaults do not count.
func TestUIDChangesWithContentNodeAndPath(t *testing.T) {
	uid := func(data, node, path string) string {
		t.Helper()
		p, err := DecodeFile([]byte(data), node, path)
		if err != nil {
			t.Fatal(err)
		}
		return string(p.UID)
	}
	base := uid(webManifest, "n", "/m/web.yaml")
	for _, tc := range []struct {
		name       string
		data, node string
		path       string
		same       bool
	}{
		{"same input", webManifest, "n", "/m/web.yaml", true},
		{"other node", webManifest, "m", "/m/web.yaml", false},
		{"other path", webManifest, "n", "/m/web2.yaml", false},
		{"comment and key order", "# hi\nkind: Pod\napiVersion: v1\n" + strings.SplitN(webManifest, "\n", 3)[2], "n", "/m/web.yaml", true},
		{"explicit default pull policy", strings.Replace(webManifest, "image: nginx", "image: nginx\n    imagePullPolicy: Always", 1), "n", "/m/web.yaml", true},
		{"other image", strings.Replace(webManifest, "image: nginx", "image: nginx:1.27", 1), "n", "/m/web.yaml", false},
		{"explicit namespace default", strings.Replace(webManifest, "name: web\n", "name: web\n  namespace: default\n", 1), "n", "/m/web.yaml", false},
		{"quantity written differently", strings.Replace(webManifest, `cpu: "1"`, `cpu: 1000m`, 1), "n", "/m/web.yaml", false},
	} {
		if got := uid(tc.data, tc.node, tc.path); (got == base) != tc.same {
			t.Errorf("%s: UID %s vs %s, want same=%v", tc.name, got, base, tc.same)
		}
	}
}

func TestDecodeFileKeepsGivenUID(t *testing.T) {
	m := strings.Replace(webManifest, "name: web\n", "name: web\n  uid: my-uid\n", 1)
	pod, err := DecodeFile([]byte(m), "n", "/m/web.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if pod.UID != "my-uid" || pod.Annotations[AnnotationHash] != "my-uid" {
		t.Fatalf("UID %q hash %q, want the manifest's my-uid in both", pod.UID, pod.Annotations[AnnotationHash])
	}
}

// TestTolerationReplacesMatching: AddOrUpdateTolerationInPod replaces a
// toleration with the same key/operator/value/effect, dropping its
// tolerationSeconds.
func TestTolerationReplacesMatching(t *testing.T) {
	m := webManifest + "  tolerations:\n  - {operator: Exists, effect: NoExecute, tolerationSeconds: 300}\n  - {key: k, operator: Exists}\n"
	pod, err := DecodeFile([]byte(m), "n", "/m/web.yaml")
	if err != nil {
		t.Fatal(err)
	}
	ts := pod.Spec.Tolerations
	if len(ts) != 2 || ts[0].TolerationSeconds != nil || ts[0].Effect != corev1.TaintEffectNoExecute || ts[1].Key != "k" {
		t.Fatalf("tolerations = %+v", ts)
	}
}

func TestDecodeFileRefuses(t *testing.T) {
	for _, tc := range []struct {
		name string
		data string
		want error
	}{
		{"PodList in a file", "apiVersion: v1\nkind: PodList\nitems: []\n", ErrNotPod},
		{"other kind", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n", ErrNotPod},
		{"no kind", "apiVersion: v1\nmetadata: {name: x}\n", ErrNotPod},
		{"garbage", "{{{ not yaml", ErrNotPod},
		{"empty", "", ErrNotPod},
		{"no name", "apiVersion: v1\nkind: Pod\nspec: {containers: [{name: c, image: i}]}\n", ErrNoName},
		{"invalid", strings.Replace(webManifest, "name: web\n", "name: Web\n", 1), ErrInvalid},
		{"secret env", webManifest + "    envFrom: [{secretRef: {name: s}}]\n", ErrAPIReference},
		{"too large", strings.Repeat("#", MaxManifestSize), ErrTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pod, err := DecodeFile([]byte(tc.data), "n", "/m/x.yaml")
			if !errors.Is(err, tc.want) || pod != nil {
				t.Fatalf("DecodeFile = %v, %v; want nil, %v", pod, err, tc.want)
			}
		})
	}
}

// TestSecondDocumentIgnoredAndReported: upstream's ToJSON reads the first
// YAML document only; nodekit does the same and says so.
func TestSecondDocumentIgnoredAndReported(t *testing.T) {
	m := webManifest + "---\napiVersion: v1\nkind: Pod\nmetadata: {name: other}\n"
	pod, err := DecodeFile([]byte(m), "n", "/m/x.yaml")
	if !errors.Is(err, ErrExtraDocuments) || pod == nil || pod.Name != "web-n" {
		t.Fatalf("DecodeFile = %v, %v; want pod web-n and ErrExtraDocuments", pod, err)
	}
	if _, err := DecodeFile([]byte("---\n"+webManifest+"---\n# only a comment\n"), "n", "/m/x.yaml"); err != nil {
		t.Fatalf("a leading separator and a trailing comment are one document: %v", err)
	}
}

func TestDecodeURL(t *testing.T) {
	list := `{"apiVersion":"v1","kind":"PodList","items":[
 {"metadata":{"name":"a"},"spec":{"containers":[{"name":"c","image":"i"}]}},
 {"metadata":{"name":"b"},"spec":{"containers":[{"name":"c","image":"i"}]}}]}`
	pods, err := DecodeURL([]byte(list), "n", "http://x/pods")
	if err != nil || len(pods) != 2 || pods[1].Name != "b-n" {
		t.Fatalf("DecodeURL(list) = %v, %v", pods, err)
	}
	if len(pods[0].Spec.Tolerations) != 0 {
		t.Errorf("URL pods get no toleration (applyDefaults isFile=false): %+v", pods[0].Spec.Tolerations)
	}
	if pods[0].Annotations[AnnotationSource] != SourceHTTP {
		t.Errorf("source = %q", pods[0].Annotations[AnnotationSource])
	}
	bad := strings.Replace(list, `"name":"b"`, `"name":"B"`, 1)
	if pods, err := DecodeURL([]byte(bad), "n", "http://x/pods"); !errors.Is(err, ErrInvalid) || pods != nil {
		t.Fatalf("one invalid pod must reject the list: %v, %v", pods, err)
	}
	if _, err := DecodeURL([]byte("hello"), "n", "http://x/pods"); !errors.Is(err, ErrNotPod) {
		t.Fatalf("garbage: %v", err)
	}
}
