package testenv

import (
	"context"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
)

// TestAPIServerNodeAndLease is the test bed's smoke test for the control
// plane: a Node and its Lease in kube-node-lease are created and read back
// through the real kube-apiserver, the Lease by the node's own identity.
func TestAPIServerNodeAndLease(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	admin := Clientset(t)
	name := "smoke-" + randomHex(t, 4)

	if _, err := admin.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create Node: %v", err)
	}
	t.Cleanup(func() {
		_ = admin.CoreV1().Nodes().Delete(context.Background(), name, metav1.DeleteOptions{})
		_ = admin.CoordinationV1().Leases(corev1.NamespaceNodeLease).Delete(context.Background(), name, metav1.DeleteOptions{})
	})
	node, err := admin.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get Node: %v", err)
	}
	if node.UID == "" {
		t.Fatal("Node read back without a UID")
	}

	// As the node's kubelet would: its own identity may write its own Lease.
	kubelet := kubernetes.NewForConfigOrDie(NodeRESTConfig(t, name))
	lease := &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: corev1.NamespaceNodeLease},
		Spec: coordinationv1.LeaseSpec{
			HolderIdentity:       ptr.To(name),
			LeaseDurationSeconds: ptr.To[int32](40),
			RenewTime:            &metav1.MicroTime{Time: time.Now()},
		},
	}
	if _, err := kubelet.CoordinationV1().Leases(corev1.NamespaceNodeLease).Create(ctx, lease, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create Lease as system:node:%s: %v", name, err)
	}
	got, err := admin.CoordinationV1().Leases(corev1.NamespaceNodeLease).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get Lease: %v", err)
	}
	if ptr.Deref(got.Spec.HolderIdentity, "") != name || ptr.Deref(got.Spec.LeaseDurationSeconds, 0) != 40 {
		t.Fatalf("Lease read back as holder=%v duration=%v", got.Spec.HolderIdentity, got.Spec.LeaseDurationSeconds)
	}

	// NodeRestriction: a node may not touch another node's Lease.
	other := kubernetes.NewForConfigOrDie(NodeRESTConfig(t, name+"-other"))
	_, err = other.CoordinationV1().Leases(corev1.NamespaceNodeLease).Update(ctx, got, metav1.UpdateOptions{})
	if !apierrors.IsForbidden(err) {
		t.Fatalf("another node updating this node's Lease: err = %v, want Forbidden", err)
	}
}
