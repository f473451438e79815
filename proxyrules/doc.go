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
// kube-proxy's CategorizeEndpoints). A running proxy feeds a Tracker from
// its informers instead: like kube-proxy's change trackers it reads each
// Service and EndpointSlice as it arrives, rebuilds only the Services whose
// object or slices changed and keeps the others' PortStates, which lets a
// backend reuse what it generated for them. From a Model:
//
//   - IPTables.Sync writes kube-proxy's iptables-restore payload, with its
//     chain layout and names (KUBE-SERVICES, KUBE-SVC-<hash>, KUBE-SEP-<hash>,
//     KUBE-EXT-, KUBE-FW-, KUBE-NODEPORTS, ...). After the first, syncs are
//     partial: only the chains of ServicePorts whose rules changed are
//     written, as kube-proxy's minimize-iptables-restore does.
//   - IPTablesApplier.Apply loads a sync with `iptables-restore --noflush`
//     (so rules it does not own are untouched) with the node's iptables
//     backend (Backend: nft by default, or legacy; DetectIPTablesBackend
//     reads kubelet's KUBE-IPTABLES-HINT chain as kube-proxy's image
//     does), keeps the previous rules when the kernel refuses a payload,
//     and names the refused line. With iptables-nft a first load is
//     staged: per-Service chains first, the chains that jump to them
//     last, so traffic still sees the new rules at once.
//   - NFTables.Sync writes kube-proxy's nftables ruleset as operations on
//     the table "kube-proxy" (family ip or ip6), built with
//     sigs.k8s.io/knftables: base chains per hook, verdict maps for Service
//     IPs (service-ips) and NodePorts (service-nodeports), the cluster-ips
//     and hairpin-connections sets, no-endpoint and firewall maps, and
//     per-ServicePort chains (service-, local-, external-, firewall-,
//     endpoint- with affinity- sets for ClientIP affinity). By default a
//     per-ServicePort chain picks its endpoint as kube-proxy's numgen map
//     does, with the map's elements kept in shared data maps
//     (endpoints-<protocol>-<xx>, NFTablesEndpointMaps);
//     NFTablesKubeProxy writes kube-proxy's rules exactly. A sync can be
//     added to a knftables transaction (AddTo, Transaction) or written as
//     `nft -f` input (Script). After the first, syncs are incremental like
//     kube-proxy's: only the chains of changed ServicePorts are rewritten
//     (those of their chains whose rules changed, where kube-proxy writes
//     them all) and only changed set and map elements are added or
//     deleted; unused chains are emptied, then deleted a second later.
//   - NFTablesApplier.Apply loads a sync with one `nft -f` (one atomic
//     transaction), through an Exec that may enter a network namespace; a
//     refused transaction changes nothing, is not committed, and the error
//     quotes the refused command. When the applier knows the namespace
//     (NetNS, or nft run by this process), an endpoint change of
//     the default layout (endpoint-map and hairpin elements, and the
//     endpoint-map rules of the chains it rewrites) is sent over netlink
//     in one batch instead.
//   - Model.Trace is a packet tracer: for a packet (source, destination,
//     protocol, from or to the node) it says which endpoints the connection
//     can reach, through which chains, whether it is masqueraded, or that it
//     is rejected or dropped, and why. The kernel tests of this package
//     check that its answers match what real packets do.
//
// Run one Model per family for dual-stack, and one generator (or applier)
// per family. IPVS is not offered: kube-proxy deprecated it in 1.35 and
// many kernels, this test bed's included, lack it.
//
// # Fidelity
//
// The conformance module of this repository runs kube-proxy 1.37's own
// iptables proxier next to this package on a thousand random Service sets
// and requires the same chains and rules. Deliberate differences: kube-proxy
// adds nfacct counter matches for its metrics (they change no verdict and
// are left out); it orders Services by map iteration where this package
// sorts them, so its output is deterministic; and its partial syncs
// rewrite the top-level chains (KUBE-SERVICES, KUBE-NODEPORTS, the filter
// table's) every time, where this package leaves them out while no line in
// them changed (IPTablesSync.TopLevel), so an endpoint change is a few
// kilobytes; the kernel ends up holding the same rules. With iptables-nft
// a first load is staged (IPTablesApplier.Apply), where kube-proxy loads
// one payload.
//
// The same module runs kube-proxy 1.37's nftables proxier (its NewProxier,
// with knftables' Fake in place of the kernel) next to NFTables on random
// Service sets, runs both transactions and requires the same table: same
// chains, rules in the same order, same set and map elements; after full
// syncs, after each step of changing sets (partial syncs) (with
// NFTablesKubeProxy), and with the NFTablesEndpointMaps (default) and
// NFTablesEndpointRules layouts once their rules are folded back into
// kube-proxy's map rule (a deliberate difference: they load in time linear
// in Services and, for the default, make an endpoint change a change of
// map elements; see NFTablesLayout).
//
// Deliberate differences: the alpha KubeProxyNFTablesLocalhostNodePorts
// feature (off by default) is not offered, so localhost NodePorts are
// never served, as in kube-proxy's default (Config.LocalhostNodePorts is
// an iptables setting); when two ServicePorts claim
// the same IP, protocol and port (an invalid set), the first in name order
// wins, where kube-proxy lets map iteration decide; and on its first sync
// into an existing table NFTables empties the shared sets and maps and
// refills them in the same transaction, where kube-proxy lists their
// elements to compute a difference.
//
// # Design notes
//
// The Model is the pure core: no I/O, deterministic, shared by every
// backend. Change detection for partial syncs compares each ServicePort's
// generated chains with those last committed, so a caller need not say what
// changed; a payload that failed to load is simply not committed, and the
// next sync carries its changes again.
//
// The iptables generator keeps, for each ServicePort, the bytes it wrote
// (its lines in the top-level chains and its own chains). A partial sync
// reuses the bytes of ports whose PortState is the one it wrote them for
// (a Tracker keeps unchanged ports' PortStates) and writes only the
// others; of those, it includes the own chains only when their bytes
// changed, and the top-level chains only when some port's lines in them
// did. Changed ports are written by as many goroutines as
// GOMAXPROCS allows, each taking 64 ports at a time (a goroutine that
// loses its CPU to another process holds the sync up by 64 ports at most)
// into blocks of memory; the payload is then assembled from the ports'
// bytes in order, so it is the same whatever the number of goroutines.
// After a full sync the ports' bytes are the payload's own and the blocks
// go back to a pool. Models are built the same way, a chunk of Services
// at a time. Rules are appended word by word into those blocks, addresses
// and numbers formatted in place, chain-name hashes computed once per
// endpoint into one string per port: the model and payload of 10,000
// Services x 10 endpoints take about 190,000 allocations, kube-proxy's
// sync of the same 3.9 million.
//
// The nftables generator keeps, for each ServicePort, a record of what it
// put in the table (its chains, its elements of the shared sets and maps,
// the keys of its endpoints) and fingerprints its inputs (addresses,
// policies, categorized endpoints) when a later sync needs to compare
// them: a partial sync writes nothing for an unchanged port, and compares
// the operations of a changed one, written again from its record, with the
// new ones to rewrite only the chains that differ. Elements of the shared
// sets and maps are kept with the ports that want them, so an element two
// ports share (a hairpin entry for one endpoint behind two Services) goes
// only when the last of them does. Ports are written in parallel like the
// iptables generator's; into a new table (a proxy's first sync) each chunk
// of ports is written straight to the text of a table block, and the sync
// keeps the shared elements as the records' own.
//
// Loading into the kernel is where kube-proxy's nftables mode is slowest;
// NFTablesLayout's design notes give the measurements and the alternatives
// tried. In short: kube-proxy's anonymous per-Service maps load in
// quadratic time (13 s for 10,000 x 10), and any transaction adding a DNAT
// rule or a verdict-map goto makes the kernel re-validate the whole table
// (25-40 ms at 10,000 Services) after nft has read all of it (about 37 ms).
// The default layout keeps endpoints in data maps: it loads in 1.2 s, and
// an endpoint change is a few elements and at most a rule per chain, which
// the applier sends over netlink (14-22 ms end to end).
package proxyrules
