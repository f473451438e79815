// Package conformance holds nodekit's differential tests and side-by-side
// benchmarks: the same random inputs go through nodekit and through the real
// upstream code (k8s.io/kubernetes v1.37.2), and the outputs must agree.
//
// It is a module of its own so that the main module never imports
// k8s.io/kubernetes; its go.mod carries the replace directives that
// k8s.io/kubernetes needs for its staging modules.
package conformance
