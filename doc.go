// Package nodekit is a Go SDK of composable Kubernetes worker-node primitives:
// the logic of the kubelet and kube-proxy as small packages that can be
// imported one at a time, behave exactly like Kubernetes v1.37, and take
// upstream types (k8s.io/api, k8s.io/cri-api, runtime-spec) in and out.
//
// It is for people who write their own node agents, edge agents, operators,
// node simulators, schedulers and CNIs, and today would have to import
// k8s.io/kubernetes, which was never meant to be a library.
//
// # The packages
//
//   - qos: a pod's QoS class, its containers' OOM score adjustment, and the
//     cgroup values the kubelet writes for pods and containers.
//   - eviction: node-pressure eviction: signals, thresholds, observations,
//     pressure conditions, ranking and the eviction loop.
//   - allocatable: node capacity, reservations, Allocatable, and the cgroups
//     that enforce them.
//   - pleg: the pod lifecycle event generator (relisting and CRI-event based)
//     and the pod status cache.
//   - lease: the node Lease heartbeat, and the control plane's view of node
//     lifecycle (Ready=Unknown, NoExecute taints, eviction deadlines).
//   - staticpod: static pods from a manifest directory or URL, merged pod
//     sources, and mirror pods.
//   - cri: a CRI client and the kubelet's translation of a Pod into CRI
//     requests.
//   - proxyrules: kube-proxy's Service rules for iptables and nftables, an
//     atomic applier and a packet tracer.
//
// A package appears in this module when it is built; see the README for the
// ones present in this version.
//
// # How they compose
//
// Each package is a deterministic core (functions or state machines with an
// injected clock) plus thin adapters for I/O behind small interfaces, so it can
// be embedded alone. Dependencies between packages go one way, only where the
// concept depends (cri uses qos for cgroup values; eviction uses qos to rank).
// examples/agent wires them into a complete node:
//
//	staticpod sources + apiserver pods -> agent sync loop -> cri -> containerd
//	                      pleg <- CRI relist/events <------'
//	lease heartbeats; eviction, allocatable and qos decide; proxyrules routes Services.
//
// # Kubernetes version
//
// nodekit tracks Kubernetes v1.37 (k8s.io/* modules v0.37.x). Where upstream
// behaviour depends on a feature gate, packages take an explicit option whose
// default is the v1.37 default, never a global. Fidelity is checked by
// differential tests against k8s.io/kubernetes v1.37.2 in the conformance
// module of this repository.
package nodekit
