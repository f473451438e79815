// Package proxyrules is kube-proxy's Service routing as a library: it turns
// Services and EndpointSlices into the kernel packet-filter rules that make
// ClusterIPs, NodePorts, external IPs and load-balancer IPs reach their
// endpoints, exactly as kube-proxy 1.37 writes them, and loads them.
//
// # The concept
//
// A Service's virtual IPs belong to no machine. Every node holds rules that
// catch a new connection to a VIP and rewrite its destination (DNAT) to one
// endpoint, chosen at random (or by client IP, with sessionAffinity
// ClientIP); conntrack then rewrites the rest of that connection both ways.
// Traffic that may cross nodes, or come back to the pod that sent it, is
// marked for masquerade (SNAT) so replies return through the node. A port
// with no endpoint at all is answered with REJECT (connection refused), never
// dropped silently. With externalTrafficPolicy Local, external traffic goes
// only to the node's own endpoints and keeps the client's source IP; with
// internalTrafficPolicy Local the same holds for ClusterIP traffic. When no
// endpoint is ready, ready-to-serve terminating ones are used, so rolling
// updates do not drop connections; topology hints (trafficDistribution)
// keep traffic in the node's zone or on the node.
//
// # Using it
//
// NewModel computes, for one IP family and one node, every ServicePort with
// its endpoints sorted into cluster, local and reachable sets (Categorize is
// kube-proxy's CategorizeEndpoints). From a Model:
//
//   - IPTables.Sync writes kube-proxy's iptables-restore payload, with its
//     chain layout and names (KUBE-SERVICES, KUBE-SVC-<hash>, KUBE-SEP-<hash>,
//     KUBE-EXT-, KUBE-FW-, KUBE-NODEPORTS, ...). After the first, syncs are
//     partial: only the chains of ServicePorts whose rules changed are
//     written, as kube-proxy's minimize-iptables-restore does.
//   - IPTablesApplier.Apply loads a sync with `iptables-restore --noflush`
//     (so rules it does not own are untouched), keeps the previous rules
//     when the kernel refuses a payload, and names the refused line.
//   - Model.Trace is a packet tracer: for a packet (source, destination,
//     protocol, from or to the node) it says which endpoints the connection
//     can reach, through which chains, whether it is masqueraded, or that it
//     is rejected or dropped, and why. The kernel tests of this package
//     check that its answers match what real packets do.
//
// Run one Model per family for dual-stack. IPVS is not offered: kube-proxy
// deprecated it in 1.35 and many kernels, this test bed's included, lack it.
//
// # Fidelity
//
// The conformance module of this repository runs kube-proxy 1.37's own
// iptables proxier next to this package on a thousand random Service sets
// and requires the same chains and rules. Deliberate differences: kube-proxy
// adds nfacct counter matches for its metrics (they change no verdict and
// are left out), and it orders Services by map iteration where this package
// sorts them, so its output is deterministic.
//
// # Design notes
//
// The Model is the pure core: no I/O, deterministic, shared by every
// backend. Change detection for partial syncs compares each ServicePort's
// generated chains with those last committed, so a caller need not say what
// changed; a payload that failed to load is simply not committed, and the
// next sync carries its changes again.
package proxyrules
