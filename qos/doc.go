// Package qos answers, exactly as a Kubernetes v1.37 kubelet does, three
// questions about a pod on a Linux node: which QoS class it is in, what OOM
// score its containers get, and which cgroup values the kubelet writes for
// the pod and asks the runtime to write for each container. It is for
// authors of node agents, schedulers, simulators and runtimes who need the
// kubelet's answers without importing k8s.io/kubernetes; it depends only on
// k8s.io/api, k8s.io/apimachinery and the OCI runtime-spec.
//
// # Quality of service
//
// A container's requests are what the scheduler reserves for it; its limits
// are what the kernel enforces. When a node runs short, the two differ in
// what can be taken back: CPU is compressible (a container over its share is
// throttled and slows down), memory is not (the only way to take it back is
// to kill a process). The QoS class sorts pods by how much of a promise
// their requests are:
//
//   - Guaranteed: every container's cpu and memory requests equal their
//     limits. The pod never uses more than was reserved for it, so the node
//     can always honour it; it is killed last.
//   - Burstable: some request is set, but requests and limits differ (or
//     some are missing). The pod is promised its requests and may use more
//     while the node has it to spare.
//   - BestEffort: no cpu or memory request or limit at all. The pod lives
//     on whatever is left and is the first to go.
//
// Why requests == limits matters: only then can a pod never exceed what the
// scheduler set aside, which is what makes the promise unconditional.
//
// The class drives three mechanisms. The kernel's OOM killer picks the
// process with the highest oom_score (memory use in tenths of a percent of
// the node plus oom_score_adj); OOMScoreAdj sets -997 for Guaranteed, 1000
// for BestEffort and, for Burstable, a value that falls as the container's
// memory request grows, so a container using more than it requested is the
// likeliest victim. The kubelet's own eviction, which acts before the kernel
// does, ranks pods using more than their requests first, then by priority,
// then by usage over request. And the cgroup tree separates the classes:
// Guaranteed pods sit directly in kubepods, Burstable and BestEffort pods in
// kubepods/burstable and kubepods/besteffort, whose CPU shares and (with
// QoS reservations) memory limits the kubelet keeps in proportion to the
// requests of the pods inside.
//
// # What the package computes
//
//   - Class and ComputeClass: the class, with init and sidecar containers
//     and pod-level spec.resources.
//   - OOMScoreAdj, with Critical and NodeCritical: the container's OOM score
//     adjustment.
//   - CgroupParent: the pod's cgroup for the cgroupfs and systemd drivers.
//   - ContainerResources and PodResources: the cgroup values, as
//     runtime-spec LinuxResources.
//   - MilliCPUToShares, MilliCPUToQuota, SharesToMilliCPU, QuotaToMilliCPU,
//     and the cgroup v2 cpu.weight conversions SharesToWeightLinear (the
//     kubelet's), WeightToSharesLinear and SharesToWeightQuadratic (runc's).
//
// The package-level functions use DefaultConfig, the v1.37 kubelet's
// defaults; the methods of Config take other feature gates and node
// settings.
//
// # How the pod's totals count sidecars
//
// Where the pod cgroup needs the pod's total (PodResources, and the
// pod-level OOM rule), containers are counted as the scheduler counts them:
// regular containers and restartable init containers (sidecars) run
// together and add up; each plain init container runs alone beside the
// sidecars declared before it; the pod needs the larger of the init phase
// peak and the running total. Pod overhead is added on top.
//
// # Design notes
//
// Everything here is a pure function of its inputs: no I/O, no globals, no
// feature-gate registry. Where the kubelet consults a feature gate, Config
// has a field; where it consults the machine (memory capacity, huge page
// sizes, cgroup version), the caller passes the value. This keeps the
// package importable alone and makes it testable against upstream by
// differential tests (nodekit's conformance module runs thousands of random
// pods through both).
//
// Class and OOMScoreAdj are called for every container of every pod on every
// sync, so they do not allocate. They read the resource lists in place,
// compare quantities without converting them, and stop at the first
// Burstable container. Upstream's ComputePodQOS copies each container and
// walks a set for every one; GetContainerOOMScoreAdjust builds an error
// value whenever it checks a pod that is not static.
//
// Where upstream would panic (a zero memory capacity, a sidecar with no
// regular containers, a UID that cannot be a cgroup name, a zero CFS
// period), nodekit returns a value or an error instead; each such place is
// documented on the function. Where upstream depends on map iteration order
// (two resource names for one huge page size), nodekit picks a fixed answer.
//
// The cgroup values are runtime-spec LinuxResources because that is what
// runtimes apply. The kubelet sends containers' values through the CRI, in
// which 0 means "unset"; those zeros are nil here, which is what a CRI
// runtime makes of them. For the pod cgroup, which the kubelet writes
// itself, each pointer is set exactly where the kubelet sets a value.
package qos
