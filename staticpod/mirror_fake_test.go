package staticpod

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

// errorLog collects a Mirror's errors for a test.
type errorLog struct {
	mu   sync.Mutex
	errs []string
}

func (l *errorLog) add(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.errs = append(l.errs, err.Error())
}

func (l *errorLog) has(sub string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range l.errs {
		if strings.Contains(e, sub) {
			return true
		}
	}
	return false
}

func eventually(t *testing.T, what string, within time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, within)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestMirrorWaitsForNode: no mirror pod before the Node exists (the
// kubelet needs its UID for the owner reference); the error is reported,
// and the mirror appears once the Node does.
func TestMirrorWaitsForNode(t *testing.T) {
	client := fake.NewClientset()
	var log errorLog
	m, err := NewMirror(MirrorConfig{NodeName: "n1", Client: client, OnError: log.add})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	pod, err := DecodeFile([]byte(podYAML("web", "v1")), "n1", "/m/web.yaml")
	if err != nil {
		t.Fatal(err)
	}
	m.SetStaticPods([]*corev1.Pod{pod})
	eventually(t, "node-not-found error (informers start first)", 5*time.Second, func() bool { return log.has(`node "n1" not found`) })

	if _, err := client.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1", UID: "uid-n1"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "mirror after the node appears", time.Second, func() bool {
		p, err := client.CoreV1().Pods("default").Get(ctx, "web-n1", metav1.GetOptions{})
		return err == nil && p.OwnerReferences[0].UID == "uid-n1"
	})
}

// TestMirrorNameTakenByRegularPod: a regular pod holding the static pod's
// name is left alone, and the failure to mirror is reported.
func TestMirrorNameTakenByRegularPod(t *testing.T) {
	regular := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-n1", Namespace: "default"}, Spec: corev1.PodSpec{NodeName: "n1"}}
	client := fake.NewClientset(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1", UID: "u"}}, regular)
	var log errorLog
	m, _ := NewMirror(MirrorConfig{NodeName: "n1", Client: client, OnError: log.add})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	defer func() { cancel(); <-done }()
	pod, _ := DecodeFile([]byte(podYAML("web", "v1")), "n1", "/m/web.yaml")
	m.SetStaticPods([]*corev1.Pod{pod})
	eventually(t, "already-exists error (informers start first)", 5*time.Second, func() bool { return log.has("already exists") })
	p, err := client.CoreV1().Pods("default").Get(ctx, "web-n1", metav1.GetOptions{})
	if err != nil || IsMirror(p) {
		t.Fatalf("the regular pod was replaced: %v %v", p.Annotations, err)
	}
}
