package proxyrules

import (
	"net/netip"
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
// takes about 90 ms through nft. Its transaction holds about 2.5 times the
// operations of kube-proxy's (a map element per endpoint); generating it
// takes about as long (a first sync's text is written by the workers that
// write the chains).
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
	eps      []*Endpoint // under the keys base, base+1, ...
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
	used, proto := w.slotsUsed(p)
	for i, use := range used {
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

// slotsUsed says which of a port's Cluster and Local chains keep their
// endpoints in an endpoint map, and the index of its protocol in
// nftSlotProtocols.
func (w *nftWriter) slotsUsed(p *PortState) (used [2]bool, proto int) {
	proto = slices.Index(nftSlotProtocols[:], protocolWord(p.Name.Protocol))
	if w.layout != NFTablesEndpointMaps || p.ClientIPAffinity || proto < 0 {
		return used, proto
	}
	pol := policyOf(p)
	return [2]bool{pol.UsesClusterChain, pol.UsesLocalChain}, proto
}

// endpointSlots writes a chain's endpoints in the endpoint-maps layout,
// where plan puts them: its rule, and its map elements (eps of the slots
// it returns; the map's values are the endpoints' "address . port"). A
// chain under new keys adds all its elements: their text, "key : value"
// joined by ", " as appendSlotScript writes them, is written here (on the
// sync's workers, while the endpoints are at hand) and returned.
func (w *nftWriter) endpointSlots(o *nftOps, proto string, chain string, eps []*Endpoint, plan nftSlotPlan) (nftSlots, []byte) {
	s := plan.slots
	if plan.keep {
		s.eps = refillSlots(s.eps, eps)
	} else {
		s.eps = eps // the model's, which nothing changes
	}
	if len(eps) == 0 {
		return s, nil
	}
	b := w.appendNumgenDNAT(w.buf[:0], proto, len(eps))
	b = append(b, " offset "...)
	b = strconv.AppendUint(b, uint64(s.base), 10)
	b = append(b, " map @"...)
	b = append(b, nftEndpointMapNames[int(s.proto)*nftEndpointMaps+int(s.shard)]...)
	o.rule(chain, string(b), "")
	w.buf = b
	if plan.keep {
		return s, nil
	}
	// The text goes in blocks shared with the chains written before it.
	size := 0
	for _, ep := range eps {
		size += len(ep.String()) + 16 // "key : address . port, "
	}
	if cap(w.arena)-len(w.arena) < size {
		w.arena = make([]byte, 0, max(64<<10, size))
	}
	start := len(w.arena)
	w.arena = appendSlotAdds(w.arena, s.base, s.eps)
	return s, w.arena[start:len(w.arena):len(w.arena)]
}

// appendSlotAdds appends the elements that put eps under the keys base,
// base+1, ..., as an add element command lists them.
func appendSlotAdds(b []byte, base uint32, eps []*Endpoint) []byte {
	for k, ep := range eps {
		if k > 0 {
			b = append(b, ", "...)
		}
		b = strconv.AppendUint(b, uint64(base)+uint64(k), 10)
		b = append(b, " : "...)
		b = appendSlotValue(b, ep)
	}
	return b
}

// appendSlotValue appends an endpoint as an endpoint map's value,
// "address . port": its String(), "address:port" or "[address]:port",
// rearranged.
func appendSlotValue(b []byte, ep *Endpoint) []byte {
	str := ep.String()
	colon := strings.LastIndexByte(str, ':')
	if str[0] == '[' {
		b = append(b, str[1:colon-1]...)
	} else {
		b = append(b, str[:colon]...)
	}
	b = append(b, " . "...)
	return append(b, str[colon+1:]...)
}

// nftSlotElem is an endpoint map element a sync deletes, or elements it
// adds under consecutive keys.
type nftSlotElem struct {
	m   uint16 // the map: proto*nftEndpointMaps+shard
	del bool
	key uint32 // the (first) key
	// eps are the values added under key, key+1, ...; text, when not
	// nil, is their appendSlotAdds.
	eps  []*Endpoint
	text []byte
}

// eachSlotElem calls f with the endpoint map elements that ch changes.
// Keys are the port's own, so unlike the shared sets' elements they need
// no owners. The elements of a chain under new keys are added together.
func eachSlotElem(ch *nftRecChange, f func(nftSlotElem)) {
	for i := range 2 {
		var o, c nftSlots
		if ch.old != nil {
			o = ch.old.slots[i]
		}
		if ch.cur != nil {
			c = ch.cur.slots[i]
		}
		same := o.proto == c.proto && o.shard == c.shard && o.base == c.base
		for k := range o.eps {
			if !same || k >= len(c.eps) || o.eps[k].Addr != c.eps[k].Addr {
				f(nftSlotElem{m: o.mapIndex(), del: true, key: o.base + uint32(k)})
			}
		}
		if !same && len(c.eps) > 0 {
			var text []byte
			if ch.slotText != nil {
				text = ch.slotText[i]
			}
			f(nftSlotElem{m: c.mapIndex(), key: c.base, eps: c.eps, text: text})
			continue
		}
		for k := range c.eps {
			if k >= len(o.eps) || o.eps[k].Addr != c.eps[k].Addr {
				f(nftSlotElem{m: c.mapIndex(), key: c.base + uint32(k), eps: c.eps[k : k+1]})
			}
		}
	}
}

// hasSlots: the record (nil: none) keeps endpoints in the endpoint maps.
func (r *nftPortRecord) hasSlots() bool {
	return r != nil && r.slots[0].capacity+r.slots[1].capacity > 0
}

// mapIndex is the slots' map, as nftSlotElem.m.
func (s *nftSlots) mapIndex() uint16 { return uint16(int(s.proto)*nftEndpointMaps + int(s.shard)) }

// slotElems returns the endpoint map elements that changes add and delete,
// ordered as a sync applies them: deletions first (a key may be deleted
// and added again), each map's together so that they batch, in port
// order otherwise. A counting sort by (deletion first, map): one pass
// counts, the next places.
func slotElems(changes []nftRecChange) []nftSlotElem {
	const maps = len(nftSlotProtocols) * nftEndpointMaps
	var at [2*maps + 1]int
	bucket := func(e *nftSlotElem) int {
		if e.del {
			return int(e.m)
		}
		return maps + int(e.m)
	}
	for i := range changes {
		if ch := &changes[i]; ch.old.hasSlots() || ch.cur.hasSlots() {
			eachSlotElem(ch, func(e nftSlotElem) { at[bucket(&e)+1]++ })
		}
	}
	for b := 1; b < len(at); b++ {
		at[b] += at[b-1]
	}
	if at[len(at)-1] == 0 {
		return nil
	}
	sorted := make([]nftSlotElem, at[len(at)-1])
	for i := range changes {
		if ch := &changes[i]; ch.old.hasSlots() || ch.cur.hasSlots() {
			eachSlotElem(ch, func(e nftSlotElem) {
				b := bucket(&e)
				sorted[at[b]] = e
				at[b]++
			})
		}
	}
	return sorted
}

// numSlotElems is the number of elements elems add or delete.
func numSlotElems(elems []nftSlotElem) int {
	n := 0
	for i := range elems {
		if elems[i].del {
			n++
		} else {
			n += len(elems[i].eps)
		}
	}
	return n
}

// appendSlotOps appends elems as operations, an element each.
func appendSlotOps(ops nftOps, elems []nftSlotElem) nftOps {
	for _, e := range elems {
		name := nftEndpointMapNames[e.m]
		if e.del {
			ops = append(ops, nftOp{verb: nftDelete, kind: nftMapElem, name: name, text: strconv.FormatUint(uint64(e.key), 10)})
			continue
		}
		for k, ep := range e.eps {
			ops = append(ops, nftOp{verb: nftAdd, kind: nftMapElem, name: name,
				text: strconv.FormatUint(uint64(e.key)+uint64(k), 10), value: string(appendSlotValue(nil, ep))})
		}
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
			switch el := &elems[i]; {
			case el.del:
				b = strconv.AppendUint(b, uint64(el.key), 10)
			case el.text != nil:
				b = append(b, el.text...)
			default:
				b = appendSlotAdds(b, el.key, el.eps)
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
		switch e := &elems[i]; {
		case e.del:
			n += 14
		case e.text != nil:
			n += len(e.text) + 2
		default:
			n += 40 * len(e.eps)
		}
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

// refillSlots puts eps in the slots old held: an endpoint that stays
// keeps its key, a new one takes the key of one that went, and keys left
// over are closed up by moving the last endpoints into them, so the keys
// in use stay contiguous from the base. Endpoints are the same when their
// addresses are; the slots hold eps' (old's may be of an older model).
func refillSlots(old, eps []*Endpoint) []*Endpoint {
	if slices.EqualFunc(old, eps, func(a, b *Endpoint) bool { return a.Addr == b.Addr }) {
		return eps
	}
	want := make(map[netip.AddrPort]*Endpoint, len(eps))
	for _, ep := range eps {
		want[ep.Addr] = ep
	}
	had := make(map[netip.AddrPort]bool, len(old))
	slots := make([]*Endpoint, len(old), max(len(old), len(eps)))
	for i, ep := range old {
		had[ep.Addr] = true
		slots[i] = want[ep.Addr]
	}
	var fresh []*Endpoint
	for _, ep := range eps {
		if !had[ep.Addr] {
			fresh = append(fresh, ep)
		}
	}
	for i := range slots {
		if slots[i] == nil && len(fresh) > 0 {
			slots[i], fresh = fresh[0], fresh[1:]
		}
	}
	slots = append(slots, fresh...)
	// Close the holes from the end.
	for i := 0; i < len(slots); i++ {
		if slots[i] != nil {
			continue
		}
		for len(slots) > i+1 && slots[len(slots)-1] == nil {
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
