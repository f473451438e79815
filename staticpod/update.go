package staticpod

import corev1 "k8s.io/api/core/v1"

// Update is what a source reports after each read of its manifests.
type Update struct {
	// Source is the source's name: SourceFile or SourceHTTP unless the
	// source was configured with another.
	Source string
	// Pods is the source's complete desired set (a SET, in the kubelet's
	// words), in manifest order. Empty is a valid set: it removes every pod
	// of the source and still marks the source as seen.
	Pods []*corev1.Pod
	// Keep is true when the read produced no set: the consumer keeps what
	// it had from this source (nothing, and the source unseen, if no set
	// came before). Pods is then nil and Errors says why. This is how the
	// URL source reports an HTTP error or a bad body, and the file source an
	// invalid single-file path.
	Keep bool
	// Errors are the problems found by this read, each a *ManifestError
	// naming the file or URL. A set can come with errors: the manifests
	// listed in Errors were left out of it, or, for errors matching
	// ErrDuplicate or ErrExtraDocuments, were used as upstream uses them.
	Errors []error
}

// Op is what a PodUpdate does to the pods it carries. The values are
// upstream's (pkg/kubelet/types/pod_update.go).
type Op int

const (
	// OpAdd: pods new to their source.
	OpAdd Op = iota
	// OpDelete: pods gracefully deleted in their source (a deletion
	// timestamp appeared); the consumer stops them with a grace period.
	OpDelete
	// OpRemove: pods that left their source's set; the consumer stops them.
	OpRemove
	// OpUpdate: pods whose spec, labels, annotations or deletion fields
	// changed while their UID stayed.
	OpUpdate
	// OpReconcile: pods whose status alone differs from what the source
	// last sent; the consumer reconciles its status.
	OpReconcile
)

func (o Op) String() string {
	switch o {
	case OpAdd:
		return "ADD"
	case OpDelete:
		return "DELETE"
	case OpRemove:
		return "REMOVE"
	case OpUpdate:
		return "UPDATE"
	case OpReconcile:
		return "RECONCILE"
	}
	return "UNKNOWN"
}

// PodUpdate is one change in the merged stream of desired pods.
type PodUpdate struct {
	Op     Op
	Source string
	Pods   []*corev1.Pod // never nil
}

func emptyPods() []*corev1.Pod { return []*corev1.Pod{} }
