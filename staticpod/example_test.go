package staticpod_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/kube-nodekit/nodekit/staticpod"
)

const manifest = `apiVersion: v1
kind: Pod
metadata:
  name: etcd
  namespace: kube-system
spec:
  hostNetwork: true
  priorityClassName: system-node-critical
  containers:
  - name: etcd
    image: registry.k8s.io/etcd:3.6.0-0
`

// A manifest becomes the pod the kubelet would run: named after the node,
// bound to it, with a UID that hashes the manifest, the node and the path.
func ExampleDecodeFile() {
	pod, err := staticpod.DecodeFile([]byte(manifest), "node-1", "/etc/kubernetes/manifests/etcd.yaml")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(pod.Namespace + "/" + pod.Name)
	fmt.Println(pod.Spec.NodeName, pod.Annotations[staticpod.AnnotationSource], pod.Annotations[staticpod.AnnotationHash] == string(pod.UID))
	fmt.Println(pod.Spec.Tolerations[0].Operator, pod.Spec.Tolerations[0].Effect)
	fmt.Println(staticpod.Critical(pod))
	// Output:
	// kube-system/etcd-node-1
	// node-1 file true
	// Exists NoExecute
	// true
}

// A static pod may not reference API objects: the node runs it before, and
// without, the apiserver.
func ExampleDecodeFile_apiReference() {
	m := manifest + "    envFrom: [{secretRef: {name: etcd-certs}}]\n"
	_, err := staticpod.DecodeFile([]byte(m), "node-1", "/etc/kubernetes/manifests/etcd.yaml")
	fmt.Println(err)
	// Output: static pods may not reference secrets
}

// The Merger turns complete sets from each source into the kubelet's
// ADD/UPDATE/DELETE/REMOVE/RECONCILE stream, and says when every source
// has been seen.
func ExampleMerger() {
	m := staticpod.NewMerger(staticpod.MergerConfig{Sources: []string{staticpod.SourceFile, staticpod.SourceAPI}})
	pod, _ := staticpod.DecodeFile([]byte(manifest), "node-1", "/etc/kubernetes/manifests/etcd.yaml")

	updates, _ := m.Set(staticpod.SourceFile, nil) // the directory was empty
	fmt.Println(updates[0].Op, len(updates[0].Pods), m.SeenAll())
	updates, _ = m.Set(staticpod.SourceFile, []*corev1.Pod{pod})
	fmt.Println(updates[0].Op, updates[0].Pods[0].Name)
	updates, _ = m.Set(staticpod.SourceAPI, nil)
	fmt.Println(updates[0].Op, len(updates[0].Pods), m.SeenAll())
	updates, _ = m.Set(staticpod.SourceFile, nil) // the manifest was removed
	fmt.Println(updates[0].Op, updates[0].Pods[0].Name)
	// Output:
	// ADD 0 false
	// ADD etcd-node-1
	// ADD 0 true
	// REMOVE etcd-node-1
}

// A Dir source watches a manifest directory and sends its complete set at
// start and after every change; feed the sets to a Merger.
func ExampleDir() {
	dir, _ := os.MkdirTemp("", "manifests")
	defer os.RemoveAll(dir)
	os.WriteFile(filepath.Join(dir, "etcd.yaml"), []byte(manifest), 0o600)
	os.WriteFile(filepath.Join(dir, "broken.yaml"), []byte("kind: Pod\n"), 0o600)

	src, _ := staticpod.NewDir(staticpod.DirConfig{Path: dir, NodeName: "node-1"})
	merger := staticpod.NewMerger(staticpod.MergerConfig{Sources: []string{staticpod.SourceFile}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	updates := make(chan staticpod.Update)
	go src.Run(ctx, updates)

	u := <-updates
	for _, err := range u.Errors {
		fmt.Println("not used:", filepath.Base(err.(*staticpod.ManifestError).Path))
	}
	changes, _ := merger.Apply(u)
	for _, c := range changes {
		fmt.Println(c.Op, c.Pods[0].Name)
	}
	// Output:
	// not used: broken.yaml
	// ADD etcd-node-1
}

// A Mirror keeps a mirror pod in the apiserver for each static pod. Here
// the apiserver is client-go's fake; a node agent passes a clientset that
// authenticates as the node.
func ExampleMirror() {
	client := fake.NewClientset(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-1", UID: "node-uid"}})
	mirror, _ := staticpod.NewMirror(staticpod.MirrorConfig{NodeName: "node-1", Client: client})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- mirror.Run(ctx) }()

	pod, _ := staticpod.DecodeFile([]byte(manifest), "node-1", "/etc/kubernetes/manifests/etcd.yaml")
	mirror.SetStaticPods([]*corev1.Pod{pod})
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		mp, err := client.CoreV1().Pods("kube-system").Get(ctx, "etcd-node-1", metav1.GetOptions{})
		if err == nil {
			fmt.Println(mp.Annotations[staticpod.AnnotationMirror] == string(pod.UID), mp.OwnerReferences[0].Kind, mp.OwnerReferences[0].Name)
			break
		}
	}
	cancel()
	<-done
	// Output: true Node node-1
}
