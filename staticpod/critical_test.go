package staticpod

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// TestCritical pins IsStaticPod, IsMirrorPod and IsCriticalPod of
// pkg/kubelet/types/pod_update.go.
func TestCritical(t *testing.T) {
	pod := func(ann map[string]string, prio *int32) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Annotations: ann}, Spec: corev1.PodSpec{Priority: prio}}
	}
	for _, tc := range []struct {
		name                     string
		pod                      *corev1.Pod
		static, mirror, critical bool
	}{
		{"nil", nil, false, false, false},
		{"plain", pod(nil, nil), false, false, false},
		{"file source", pod(map[string]string{AnnotationSource: "file"}, nil), true, false, true},
		{"empty source counts as static", pod(map[string]string{AnnotationSource: ""}, nil), true, false, true},
		{"api source", pod(map[string]string{AnnotationSource: "api"}, nil), false, false, false},
		{"mirror", pod(map[string]string{AnnotationMirror: "h", AnnotationSource: "api"}, nil), false, true, true},
		{"priority at the threshold", pod(nil, ptr.To(SystemCriticalPriority)), false, false, true},
		{"priority below", pod(nil, ptr.To(SystemCriticalPriority-1)), false, false, false},
	} {
		if IsStatic(tc.pod) != tc.static || IsMirror(tc.pod) != tc.mirror || Critical(tc.pod) != tc.critical {
			t.Errorf("%s: static %v mirror %v critical %v", tc.name, IsStatic(tc.pod), IsMirror(tc.pod), Critical(tc.pod))
		}
	}
}
