package cri_test

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/utils/ptr"

	"github.com/kube-nodekit/nodekit/cri"
)

type envObjects struct {
	cms     map[string]*corev1.ConfigMap
	secrets map[string]*corev1.Secret
}

func (e envObjects) ConfigMap(ns, name string) (*corev1.ConfigMap, error) {
	if cm, ok := e.cms[name]; ok {
		return cm, nil
	}
	return nil, apierrors.NewNotFound(schema.GroupResource{Resource: "configmaps"}, name)
}

func (e envObjects) Secret(ns, name string) (*corev1.Secret, error) {
	if s, ok := e.secrets[name]; ok {
		return s, nil
	}
	return nil, apierrors.NewNotFound(schema.GroupResource{Resource: "secrets"}, name)
}

// TestEnv pins makeEnvironmentVariables (pkg/kubelet/kubelet_pods.go):
// envFrom then env, expansion against earlier variables and service
// links, every valueFrom kind, optional references.
func TestEnv(t *testing.T) {
	cfg := clusterConfig()
	cfg.NodeAllocatable = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("4"), corev1.ResourceMemory: resource.MustParse("8Gi")}
	cfg.EnvSource = envObjects{
		cms:     map[string]*corev1.ConfigMap{"cm": {Data: map[string]string{"B": "from-cm", "A": "a"}}},
		secrets: map[string]*corev1.Secret{"s": {Data: map[string][]byte{"TOKEN": []byte("t0k")}}},
	}
	pod := basePod()
	pod.Spec.NodeName, pod.Spec.ServiceAccountName = "node-1", "sa"
	c := &pod.Spec.Containers[0]
	c.Resources = corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("64Mi")}}
	c.EnvFrom = []corev1.EnvFromSource{
		{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cm"}}, Prefix: "CM_"},
		{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "absent"}, Optional: ptr.To(true)}},
	}
	field := func(p string) *corev1.EnvVarSource {
		return &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: p}}
	}
	res := func(r, div string) *corev1.EnvVarSource {
		s := &corev1.ResourceFieldSelector{Resource: r}
		if div != "" {
			s.Divisor = resource.MustParse(div)
		}
		return &corev1.EnvVarSource{ResourceFieldRef: s}
	}
	c.Env = []corev1.EnvVar{
		{Name: "GREETING", Value: "hello $(CM_B) $(SVC_HOST) $(LATER)"},
		{Name: "CM_B", Value: "overridden"},
		{Name: "POD", ValueFrom: field("metadata.name")},
		{Name: "NODE", ValueFrom: field("spec.nodeName")},
		{Name: "SA", ValueFrom: field("spec.serviceAccountName")},
		{Name: "IP", ValueFrom: field("status.podIP")},
		{Name: "IPS", ValueFrom: field("status.podIPs")},
		{Name: "HOST", ValueFrom: field("status.hostIP")},
		{Name: "LABEL", ValueFrom: field("metadata.labels['app']")},
		{Name: "LABELS", ValueFrom: field("metadata.labels")},
		{Name: "CPU_LIMIT", ValueFrom: res("limits.cpu", "")},
		{Name: "CPU_LIMIT_M", ValueFrom: res("limits.cpu", "1m")},
		{Name: "MEM_REQ_MI", ValueFrom: res("requests.memory", "1Mi")},
		{Name: "TOKEN", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "s"}, Key: "TOKEN"}}},
		{Name: "OPT", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "cm"}, Key: "nope", Optional: ptr.To(true)}}},
		{Name: "LATER", Value: "late"},
	}
	in := &cri.ContainerInput{PodIPs: []string{"10.0.0.7", "fd00::7"}, HostIPs: []string{"192.168.1.5"},
		ServiceEnv: map[string]string{"SVC_HOST": "10.96.0.1", "KUBERNETES_PORT": "443", "NODE": "from-service"}}
	got, err := cfg.Env(pod, c, in)
	if err != nil {
		t.Fatal(err)
	}
	want := [][2]string{
		{"CM_A", "a"}, {"CM_B", "overridden"},
		{"GREETING", "hello from-cm 10.96.0.1 $(LATER)"},
		{"POD", "web"}, {"NODE", "node-1"}, {"SA", "sa"},
		{"IP", "10.0.0.7"}, {"IPS", "10.0.0.7,fd00::7"}, {"HOST", "192.168.1.5"},
		{"LABEL", "web"}, {"LABELS", `app="web"`},
		{"CPU_LIMIT", "4"}, {"CPU_LIMIT_M", "4000"}, {"MEM_REQ_MI", "64"},
		{"TOKEN", "t0k"}, {"LATER", "late"},
		{"KUBERNETES_PORT", "443"}, {"SVC_HOST", "10.96.0.1"},
	}
	if len(got) != len(want) {
		t.Fatalf("env = %v, want %v", got, want)
	}
	for i, kv := range got {
		if kv.Key != want[i][0] || string(kv.Value) != want[i][1] {
			t.Errorf("env[%d] = %s=%q, want %s=%q", i, kv.Key, kv.Value, want[i][0], want[i][1])
		}
	}
}

func TestEnvErrors(t *testing.T) {
	cfg := clusterConfig()
	for _, tc := range []struct {
		name string
		pod  func(*corev1.Pod)
		err  string
	}{
		{"no enableServiceLinks", func(p *corev1.Pod) { p.Spec.EnableServiceLinks = nil }, "enableServiceLinks"},
		{"configmap without a source", func(p *corev1.Pod) {
			p.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "X", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "cm"}, Key: "k"}}}}
		}, "no EnvSource"},
		{"unsupported field", func(p *corev1.Pod) {
			p.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "X", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "status.phase"}}}}
		}, "unsupported fieldPath"},
		{"bad subscript", func(p *corev1.Pod) {
			p.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "X", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.name['x']"}}}}
		}, "does not support subscript"},
		{"missing required key", func(p *corev1.Pod) {
			p.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "X", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "s"}, Key: "nope"}}}}
		}, "couldn't find key nope"},
		{"missing required secret", func(p *corev1.Pod) {
			p.Spec.Containers[0].EnvFrom = []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "absent"}}}}
		}, "not found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := cfg
			if tc.name != "configmap without a source" {
				cfg.EnvSource = envObjects{secrets: map[string]*corev1.Secret{"s": {}}}
			}
			pod := basePod()
			tc.pod(pod)
			_, err := cfg.ContainerConfig(pod, &pod.Spec.Containers[0], cri.ContainerInput{})
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("err = %v, want %q", err, tc.err)
			}
		})
	}
}
