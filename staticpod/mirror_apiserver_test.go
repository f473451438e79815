package staticpod

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/kube-nodekit/nodekit/internal/testenv"
)

// TestMirrorAgainstAPIServer runs the Mirror as a kubelet would, with the
// node's own identity (so NodeRestriction applies), against the test bed's
// real kube-apiserver: create, kubectl-delete -> recreated, manifest edit
// -> new mirror with the new hash, orphan removed, manifest removed ->
// mirror gone.
func TestMirrorAgainstAPIServer(t *testing.T) {
	admin := testenv.Clientset(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	b := make([]byte, 4)
	rand.Read(b)
	nodeName := "sp-" + hex.EncodeToString(b)
	node, err := admin.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: nodeName}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create Node: %v", err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		pods, _ := admin.CoreV1().Pods("").List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=" + nodeName})
		for _, p := range pods.Items {
			_ = admin.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: new(int64)})
		}
		_ = admin.CoreV1().Nodes().Delete(ctx, nodeName, metav1.DeleteOptions{})
	})

	kubelet := kubernetes.NewForConfigOrDie(testenv.NodeRESTConfig(t, nodeName))
	var mu sync.Mutex
	var errs []error
	m, err := NewMirror(MirrorConfig{NodeName: nodeName, Client: kubelet, OnError: func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- m.Run(runCtx) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()

	static := func(image string) *corev1.Pod {
		manifest := podYAML("web", image) + "  priorityClassName: system-node-critical\n"
		pod, err := DecodeFile([]byte(manifest), nodeName, "/etc/kubernetes/manifests/web.yaml")
		if err != nil {
			t.Fatal(err)
		}
		return pod
	}
	name := "web-" + nodeName
	get := func() (*corev1.Pod, error) {
		return admin.CoreV1().Pods("default").Get(ctx, name, metav1.GetOptions{})
	}
	waitFor := func(what string, ok func(*corev1.Pod, error) bool) *corev1.Pod {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for {
			p, err := get()
			if ok(p, err) {
				return p
			}
			if time.Now().After(deadline) {
				mu.Lock()
				defer mu.Unlock()
				t.Fatalf("%s: not within 15s; last %v %v; mirror errors %v", what, p.GetAnnotations(), err, errs)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	v1 := static("busybox:1")
	m.SetStaticPods([]*corev1.Pod{v1})
	first := waitFor("mirror created", func(p *corev1.Pod, err error) bool { return err == nil })
	if first.Annotations[AnnotationMirror] != string(v1.UID) {
		t.Errorf("mirror annotation %q, want the hash %s", first.Annotations[AnnotationMirror], v1.UID)
	}
	if first.UID == v1.UID {
		t.Error("the apiserver gives a mirror pod a UID of its own")
	}
	if o := first.OwnerReferences; len(o) != 1 || o[0].Kind != "Node" || o[0].UID != node.UID || o[0].Controller == nil || !*o[0].Controller {
		t.Errorf("owner references %+v, want the Node as controller", o)
	}
	if first.Spec.NodeName != nodeName || !Critical(first) {
		t.Errorf("nodeName %q critical %v", first.Spec.NodeName, Critical(first))
	}

	// kubectl delete: a graceful deletion, which the Mirror completes and
	// then undoes.
	if err := admin.CoreV1().Pods("default").Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor("mirror recreated after kubectl delete", func(p *corev1.Pod, err error) bool {
		return err == nil && p.UID != first.UID && p.DeletionTimestamp == nil
	})

	v2 := static("busybox:2")
	m.SetStaticPods([]*corev1.Pod{v2})
	second := waitFor("mirror replaced after a manifest edit", func(p *corev1.Pod, err error) bool {
		return err == nil && p.Annotations[AnnotationMirror] == string(v2.UID) && p.DeletionTimestamp == nil
	})
	if second.Spec.Containers[0].Image != "busybox:2" {
		t.Errorf("mirror image %q", second.Spec.Containers[0].Image)
	}

	// A mirror pod of a static pod this node does not have is removed.
	orphan := mirrorPod(static("busybox:1"), node)
	orphan.Name = "orphan-" + nodeName
	if _, err := kubelet.CoreV1().Pods("default").Create(ctx, orphan, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create orphan mirror as the node: %v", err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		_, err := admin.CoreV1().Pods("default").Get(ctx, orphan.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("orphan mirror not removed within 15s: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}

	m.SetStaticPods(nil)
	waitFor("mirror removed with its manifest", func(_ *corev1.Pod, err error) bool { return apierrors.IsNotFound(err) })

	// NodeRestriction: another node's identity may not mirror pods here.
	other := kubernetes.NewForConfigOrDie(testenv.NodeRESTConfig(t, nodeName+"-other"))
	_, err = other.CoreV1().Pods("default").Create(ctx, mirrorPod(v2, node), metav1.CreateOptions{})
	if err == nil || !(apierrors.IsForbidden(err) || strings.Contains(err.Error(), "forbidden")) {
		t.Errorf("another node creating this node's mirror pod: %v, want Forbidden", err)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, err := range errs {
		t.Logf("reconcile error on the way (retried): %v", err)
	}
}
