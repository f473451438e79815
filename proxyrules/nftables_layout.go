package proxyrules

import (
	"slices"
	"strconv"
	"strings"
	"sync"

	"sigs.k8s.io/knftables"
)

// NFTablesLayout is how the per-ServicePort chains pick an endpoint. The
// rest of the table (base chains, verdict maps, firewall, masquerade,
// ClientIP affinity with its endpoint chains and sets) is kube-proxy's in
// every layout, and every layout picks among the same endpoints uniformly
// at random: the layouts send the same packets to the same endpoints with
// the same probabilities (conformance/ folds the other layouts back into
// kube-proxy's rule by rule; the real-packet tests and the tracer run for
// each). They differ in what the kernel does to load and change them.
//
// # Design notes
//
// Measured here (kernel 6.18, Debian 12's nft 1.0.6, 10,000 Services x 10
// endpoints, end to end unless said otherwise; BenchmarkNFTablesKernelLoad,
// BenchmarkNFTablesKernelChange, BenchmarkNFTablesKernelRewrite,
// BenchmarkNFTablesKernelValidation):
//
//   - Loading kube-proxy's layout into a new table takes about 13.5 s: the
//     kernel names each anonymous set (kube-proxy writes a numgen map per
//     chain) by scanning every set of the table, quadratic in Services.
//     One rule per endpoint (NFTablesEndpointRules) takes about 2 s.
//   - A one-Service change among them takes 75-95 ms in nft with
//     kube-proxy's layout, for two reasons. nft reads every chain and set
//     of the table before it applies anything (about 24 ms CPU, 37 ms wall
//     with its start). And any transaction that adds a rule with a DNAT
//     (its address is an immediate, and nat and immediate expressions have
//     a validate hook) or a goto in a verdict map makes the kernel
//     re-validate every chain reachable from the base chains at commit:
//     about 20 ms more. A batch that deletes anything (elements, or rules
//     by flushing a chain) takes about 13 ms more, at any table size.
//   - What avoids nft's part: NFTablesApplier sends an endpoint change of
//     the NFTablesEndpointMaps layout (map elements, and the one rule of a
//     chain whose number of endpoints changed) over netlink itself.
//
// Alternatives measured for where the endpoints go, loading 10,000 x 10
// (nft's wall time on a busy machine; the rule per endpoint took 2.1-2.5 s
// in the same runs): one named map per Service, about 7 s (the kernel finds
// a set by name walking the table's list of sets, for every rule); one map
// shared by all Services, over 70 s (each chain that binds a map walks all
// its elements, and each element added walks the map's bindings); 256
// shared maps, a chain's endpoints in one of them, 2.9-3 s with 10 rules
// per chain (1,024 maps the same; 4,096: 7 s), 4.8-5.3 s when elements were
// not batched into one command per map.
//
// Before this layout, NFTablesEndpointMaps wrote a ladder of rules per
// chain (`numgen random mod m` for m from n + n/8 down to n - n/8, each
// finding an endpoint with probability n/m and falling through otherwise:
// uniform as a whole), so that a change of the number of endpoints within
// that range was a change of elements only (about 7-15 ms end to end over
// netlink). It loaded in 1.9 s, but its text was 1.8 times kube-proxy's
// and its transaction three times the operations. One rule with the exact
// number loads in 1.2 s, its text is 0.8 times kube-proxy's (0.95 times
// at 1,000 Services), and a change of the number of endpoints takes about
// 22 ms end to end over netlink (52 ms through nft), well inside the 50 ms
// a proxy has; a change that keeps the number (an endpoint replaced, as in
// a rolling update) takes about 15 ms over netlink.
//
// NFTablesEndpointMaps is the default: it loads 10,000 x 10 in 1.2 s (0.15
// s for 1,000 x 10, where kube-proxy's layout is as fast), and applies an
// endpoint change among 10,000 Services in 14-22 ms over netlink
// (NFTablesApplier; 40-52 ms through nft) where kube-proxy's layout
// takes about 90 ms through nft. The price is in generation: its
// transaction holds about 2.5 times the operations of kube-proxy's (a map
// element per endpoint) and takes about 1.15 times as long to generate.
type NFTablesLayout uint8

const (
	// NFTablesEndpointMaps, the default, writes kube-proxy's rule with its
	// endpoints moved out of the rule: `meta l4proto P dnat ip addr . port
	// to numgen random mod n offset B map @endpoints-P-XX`, the chain's n
	// endpoints under the keys B .. B+n-1 of the data map endpoints-P-XX
	// (one of 256 per protocol, by a hash of the ServicePort's name and
	// whether the chain is its Cluster or Local one). It picks as
	// kube-proxy's `numgen random mod n map { 0 : ep0, ... }` does: uniformly
	// among the n.
	//
	// A chain reserves the keys B .. B+C-1, C = n + ceil(n/8). A change of
	// endpoints that keeps their number is a change of map elements only (a
	// removed endpoint's key goes to a new one), which the kernel commits
	// without re-validating the table; a change of their number up to C
	// rewrites the chain's one rule, and keys are kept (a removed endpoint's
	// key takes the last key's endpoint, so the keys stay contiguous); past
	// C the chain takes new keys. The endpoint maps exist from the first
	// sync on (so that a partial sync never adds one). ServicePorts with
	// ClientIP affinity keep kube-proxy's endpoint chains, and protocols
	// other than TCP, UDP and SCTP kube-proxy's rule. nft 1.0.6 lists the
	// rule as `dnat ip to ... map @...`, leaving out "addr . port"; nft
	// reads that listing back as the same rule.
	NFTablesEndpointMaps NFTablesLayout = iota
	// NFTablesKubeProxy is kube-proxy's own layout, rule for rule: one rule
	// per chain, `dnat ... to numgen random mod n map { 0 : ep0, ... }`.
	// conformance/ checks it against kube-proxy byte for byte. Loading it
	// is quadratic in Services (see NFTablesLayout).
	NFTablesKubeProxy
	// NFTablesEndpointRules writes one rule per endpoint, the i-th of n
	// taken with probability 1/(n-i) (`numgen random mod (n-i) 0`, as
	// iptables' statistic rules do): uniform, no sets. It loads as fast as
	// NFTablesEndpointMaps; its endpoint changes rewrite the chain.
	NFTablesEndpointRules
)

// String names the layout as the benchmarks do.
func (l NFTablesLayout) String() string {
	switch l {
	case NFTablesKubeProxy:
		return "kube-proxy"
	case NFTablesEndpointRules:
		return "endpoint-rules"
	}
	return "endpoint-maps"
}

// nftEndpointMaps is the number of endpoint maps per protocol: enough
// that each holds few elements and is bound by few rules (the kernel walks
// a map's bindings for each element added, and its elements for each chain
// that binds it), few enough that finding one by name (a list walk) is
// cheap (see NFTablesLayout).
const nftEndpointMaps = 256

// The endpoint maps' values are typed by the protocol's dport: nft 1.0.6
// refuses a map typed "th dport" or "ct original proto-dst" once it reads
// it back from the kernel, and a "tcp dport" map from a udp rule, so each
// protocol has its maps.
var nftSlotProtocols = [...]string{"tcp", "udp", "sctp"}

const nftPrefixEndpointMap = "endpoints-"

// nftSlots is where a chain of the endpoint-maps layout keeps its
// endpoints: eps[i] under the key base+i of its map; the keys up to
// base+capacity-1 are the chain's.
type nftSlots struct {
	proto    uint8 // index in nftSlotProtocols
	shard    uint8
	base     uint32
	capacity int
	eps      []string // map values, "address . port"
}

// nftEndpointShard is the endpoint map of a ServicePort's Cluster (i 0)
// or Local (i 1) chain: an FNV-1a hash of its name (as chain names write
// it) and i, known without the chain's name, so that keys are allocated
// before chains are written.
func nftEndpointShard(name ServicePortName, i int) uint8 {
	var buf [256]byte
	h := uint32(2166136261)
	for _, c := range append(appendNFTPortBase(buf[:0], name), byte(i)) {
		h = (h ^ uint32(c)) * 16777619
	}
	return uint8(h % nftEndpointMaps)
}

// nftEndpointMapName is "endpoints-<protocol>-<shard in hex>".
func nftEndpointMapName(proto, shard uint8) string {
	const hex = "0123456789abcdef"
	return nftPrefixEndpointMap + nftSlotProtocols[proto] + "-" + string([]byte{hex[shard>>4], hex[shard&15]})
}

// nftEndpointMapOps are the operations that add and flush an endpoint map
// (index proto*nftEndpointMaps+shard), with their commands written in
// advance: every full sync adds all of them (so that partial syncs never
// need to), and knftables takes a while to write a command.
func nftEndpointMapOps(family knftables.Family, index int) *[nftFlush + 1]nftOp {
	f := 0
	if family == knftables.IPv6Family {
		f = 1
	}
	nftEndpointMapOpsOnce[f].Do(func() {
		ip := string(family)
		ops := make([][nftFlush + 1]nftOp, len(nftSlotProtocols)*nftEndpointMaps)
		for i := range ops {
			m := &knftables.Map{Name: nftEndpointMapNames[i],
				TypeOf:  "numgen random mod 1 : " + ip + " daddr . " + nftSlotProtocols[i/nftEndpointMaps] + " dport",
				Comment: ptrTo("endpoints of service chains, by slot")}
			for _, v := range []nftVerb{nftAdd, nftFlush} {
				op := nftOp{verb: v, kind: nftObject, obj: m}
				op.text = strings.TrimSuffix(string(nftOps{op}.script(family, false)), "\n")
				ops[i][v] = op
			}
		}
		nftEndpointMapOpsCache[f] = ops
	})
	return &nftEndpointMapOpsCache[f][index]
}

var (
	nftEndpointMapOpsOnce  [2]sync.Once
	nftEndpointMapOpsCache [2][][nftFlush + 1]nftOp
)

// nftSlotPlan is where a chain's endpoints go in the endpoint-maps layout.
type nftSlotPlan struct {
	use bool // the chain keeps its endpoints in an endpoint map
	// keep: slots are the chain's keys so far, with the endpoints they
	// hold; otherwise new keys.
	keep  bool
	slots nftSlots
}

// planSlots says where the endpoints of a port's Cluster and Local chains
// go, allocating the keys of those that need new ones. Syncs plan ports
// in order, so keys do not depend on the order ports are written in.
func (w *nftWriter) planSlots(p *PortState, old *nftPortRecord) (plan [2]nftSlotPlan) {
	proto := slices.Index(nftSlotProtocols[:], protocolWord(p.Name.Protocol))
	if w.layout != NFTablesEndpointMaps || p.ClientIPAffinity || proto < 0 {
		return plan
	}
	pol := policyOf(p)
	for i, use := range [2]bool{pol.UsesClusterChain, pol.UsesLocalChain} {
		if !use {
			continue
		}
		n := len(p.Cluster)
		if i == 1 {
			n = len(p.Local)
		}
		plan[i].use = true
		if old != nil && old.slots[i].capacity > 0 && n <= old.slots[i].capacity && !w.resetSlots {
			plan[i].keep, plan[i].slots = true, old.slots[i]
			continue
		}
		s := nftSlots{proto: uint8(proto), shard: nftEndpointShard(p.Name, i), capacity: n + (n+7)/8}
		s.base = w.next.allocSlots(s.proto, s.shard, s.capacity)
		plan[i].slots = s
	}
	return plan
}

// endpointSlots writes a chain's endpoints in the endpoint-maps layout,
// where plan puts them: its rule, and its map elements (eps of the slots
// it returns).
func (w *nftWriter) endpointSlots(o *nftOps, proto string, chain string, eps []*Endpoint, plan nftSlotPlan) nftSlots {
	// One string holds the chain's values, each a substring of it.
	b := w.buf[:0]
	ends := w.ends[:0]
	if cap(ends) < len(eps) {
		ends = make([]int, len(eps))
	}
	ends = ends[:len(eps)]
	for i, ep := range eps {
		b = ep.Addr.Addr().AppendTo(b)
		b = append(b, " . "...)
		b = strconv.AppendUint(b, uint64(ep.Addr.Port()), 10)
		ends[i] = len(b)
	}
	all := string(b)
	values := make([]string, len(eps))
	for i, start := 0, 0; i < len(eps); i++ {
		values[i], start = all[start:ends[i]], ends[i]
	}
	s := plan.slots
	if plan.keep {
		s.eps = refillSlots(s.eps, values)
	} else {
		s.eps = values
	}
	w.ends = ends
	if len(values) == 0 {
		w.buf = b
		return s
	}
	b = w.appendNumgenDNAT(b[:0], proto, len(values))
	b = append(b, " offset "...)
	b = strconv.AppendUint(b, uint64(s.base), 10)
	b = append(b, " map @"...)
	b = append(b, nftEndpointMapNames[int(s.proto)*nftEndpointMaps+int(s.shard)]...)
	o.rule(chain, string(b), "")
	w.buf = b
	return s
}

// nftSlotElem is an endpoint map element a sync adds or deletes.
type nftSlotElem struct {
	m     uint16 // the map: proto*nftEndpointMaps+shard
	del   bool
	key   uint32
	value string // "address . port", when added
}

// appendSlotElems appends the endpoint map elements that change from old
// to cur (records of one port; either may be nil). Keys are the port's
// own, so unlike the shared sets' elements they need no owners.
func appendSlotElems(elems []nftSlotElem, old, cur *nftPortRecord) []nftSlotElem {
	for i := range 2 {
		var o, c nftSlots
		if old != nil {
			o = old.slots[i]
		}
		if cur != nil {
			c = cur.slots[i]
		}
		same := o.proto == c.proto && o.shard == c.shard && o.base == c.base
		for k := range max(len(o.eps), len(c.eps)) {
			var was, is string
			if k < len(o.eps) {
				was = o.eps[k]
			}
			if k < len(c.eps) {
				is = c.eps[k]
			}
			if same && was == is {
				continue
			}
			if was != "" {
				elems = append(elems, nftSlotElem{m: o.mapIndex(), del: true, key: o.base + uint32(k)})
			}
			if is != "" {
				elems = append(elems, nftSlotElem{m: c.mapIndex(), key: c.base + uint32(k), value: is})
			}
		}
	}
	return elems
}

// hasSlots: the record (nil: none) keeps endpoints in the endpoint maps.
func (r *nftPortRecord) hasSlots() bool {
	return r != nil && r.slots[0].capacity+r.slots[1].capacity > 0
}

// mapIndex is the slots' map, as nftSlotElem.m.
func (s *nftSlots) mapIndex() uint16 { return uint16(int(s.proto)*nftEndpointMaps + int(s.shard)) }

// sortSlotElems orders elems as a sync applies them: deletions first (a
// key may be deleted and added again), each map's together so that they
// batch, in their order otherwise.
func sortSlotElems(elems []nftSlotElem) []nftSlotElem {
	if len(elems) == 0 {
		return elems
	}
	// A counting sort by (deletion first, map).
	const maps = len(nftSlotProtocols) * nftEndpointMaps
	var at [2*maps + 1]int
	bucket := func(e *nftSlotElem) int {
		if e.del {
			return int(e.m)
		}
		return maps + int(e.m)
	}
	for i := range elems {
		at[bucket(&elems[i])+1]++
	}
	for b := 1; b < len(at); b++ {
		at[b] += at[b-1]
	}
	sorted := make([]nftSlotElem, len(elems))
	for i := range elems {
		b := bucket(&elems[i])
		sorted[at[b]] = elems[i]
		at[b]++
	}
	return sorted
}

// appendSlotOps appends elems as operations.
func appendSlotOps(ops nftOps, elems []nftSlotElem) nftOps {
	for _, e := range elems {
		op := nftOp{verb: nftAdd, kind: nftMapElem, name: nftEndpointMapNames[e.m], text: strconv.FormatUint(uint64(e.key), 10), value: e.value}
		if e.del {
			op.verb, op.value = nftDelete, ""
		}
		ops = append(ops, op)
	}
	return ops
}

// appendSlotScript writes sorted elems as nft commands, one per run of
// elements of one map with the same verb.
func appendSlotScript(b []byte, family knftables.Family, elems []nftSlotElem) []byte {
	for i := 0; i < len(elems); {
		e := &elems[i]
		if e.del {
			b = append(b, "delete element "...)
		} else {
			b = append(b, "add element "...)
		}
		b = append(b, family...)
		b = append(b, " "+NFTablesTable+" "...)
		b = append(b, nftEndpointMapNames[e.m]...)
		b = append(b, " { "...)
		for start := i; i < len(elems) && elems[i].m == e.m && elems[i].del == e.del; i++ {
			if i > start {
				b = append(b, ", "...)
			}
			b = strconv.AppendUint(b, uint64(elems[i].key), 10)
			if !e.del {
				b = append(b, " : "...)
				b = append(b, elems[i].value...)
			}
		}
		b = append(b, " }\n"...)
	}
	return b
}

// slotScriptSize is about the length of appendSlotScript's text.
func slotScriptSize(elems []nftSlotElem) int {
	n := 0
	for i := range elems {
		n += len(elems[i].value) + 14
	}
	return n
}

// nftEndpointMapNames are the maps' names by proto*nftEndpointMaps+shard.
var nftEndpointMapNames = func() []string {
	names := make([]string, len(nftSlotProtocols)*nftEndpointMaps)
	for i := range names {
		names[i] = nftEndpointMapName(uint8(i/nftEndpointMaps), uint8(i%nftEndpointMaps))
	}
	return names
}()

// refillSlots puts values in the slots old held: an endpoint that stays
// keeps its key, a new one takes the key of one that went, and keys left
// over are closed up by moving the last endpoints into them, so the keys
// in use stay contiguous from the base.
func refillSlots(old, values []string) []string {
	want := make(map[string]bool, len(values))
	for _, v := range values {
		want[v] = true
	}
	had := make(map[string]bool, len(old))
	slots := make([]string, len(old), max(len(old), len(values)))
	for i, v := range old {
		had[v] = true
		if want[v] {
			slots[i] = v
		}
	}
	var fresh []string
	for _, v := range values {
		if !had[v] {
			fresh = append(fresh, v)
		}
	}
	for i := range slots {
		if slots[i] == "" && len(fresh) > 0 {
			slots[i], fresh = fresh[0], fresh[1:]
		}
	}
	slots = append(slots, fresh...)
	// Close the holes from the end.
	for i := 0; i < len(slots); i++ {
		if slots[i] != "" {
			continue
		}
		for len(slots) > i+1 && slots[len(slots)-1] == "" {
			slots = slots[:len(slots)-1]
		}
		last := len(slots) - 1
		if last > i {
			slots[i] = slots[last]
		}
		slots = slots[:last]
	}
	return slices.Clip(slots)
}

// allocSlots reserves capacity keys in a shard's map.
func (st *nftState) allocSlots(proto, shard uint8, capacity int) uint32 {
	next := &st.slotNext[int(proto)*nftEndpointMaps+int(shard)]
	base := *next
	*next += uint32(capacity)
	return base
}
