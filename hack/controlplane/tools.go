//go:build tools

// Package controlplane pins the upstream commands the test bed builds:
// kube-apiserver and kube-controller-manager from k8s.io/kubernetes, whose
// go.mod replaces its staging modules, so `go install pkg@version` refuses it
// and this wrapper module carries the replaces instead (see go.mod).
package controlplane

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
)
