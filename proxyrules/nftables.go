package proxyrules

import (
	"hash/maphash"
	"maps"
	"net/netip"
	"slices"
	"time"

	"k8s.io/utils/clock"
	"sigs.k8s.io/knftables"
)

// NFTables generates kube-proxy 1.37's nftables ruleset
// (pkg/proxy/nftables/proxier.go syncProxyRules) from a Model, as
// operations on the table "kube-proxy" of family ip or ip6, and remembers
// what was committed so that later syncs are partial: only the chains
// whose rules changed are rewritten and only the set and map elements that
// changed are added or deleted, as kube-proxy's incremental transactions
// do. By default its per-ServicePort chains keep their endpoints in shared
// data maps (NFTablesEndpointMaps), a deliberate difference from
// kube-proxy that loads about 11x faster at 10,000 Services and makes an
// endpoint change a change of map elements and at most a rule per chain;
// NFTablesKubeProxy writes kube-proxy's rules exactly. The zero value is
// ready to use and starts with a full sync.
type NFTables struct {
	// ServiceCIDRs are the cluster's Service CIDRs of this family
	// (kube-proxy learns them from ServiceCIDR objects); traffic to an
	// unallocated address in them is dropped. Empty: no such rule.
	ServiceCIDRs []netip.Prefix
	// Layout is how per-ServicePort chains pick an endpoint; the zero value
	// is NFTablesEndpointMaps, which differs from kube-proxy's layout
	// (NFTablesKubeProxy) for load and change time and picks the same way.
	// See NFTablesLayout.
	Layout NFTablesLayout
	// Clock dates stale chains, which are deleted one second after they
	// were emptied (as kube-proxy does: kernels before 6.2 may still count
	// a reference from a just-deleted map element). Nil is the real clock.
	Clock clock.PassiveClock

	committed *nftState
	// setUp is set once the first full sync, which also recreates the base
	// chains (so a change of priority applies), was committed.
	setUp bool
	// adopted are chains and sets found in the kernel table before the
	// first sync; the first full sync removes the unused ones.
	adoptedChains, adoptedSets []string
	// tableAbsent: Adopt found no table.
	tableAbsent bool
	opsHint     int // operations in the last sync, to size the next
	hashSeed    maphash.Seed
}

// nftState is what the kernel holds after the last committed sync.
type nftState struct {
	config uint64
	ports  map[ServicePortName]*nftPortRecord
	byPort map[*PortState]*nftPortRecord // the same records, by the PortState they were written for
	// elems holds, for each shared set and map, every key with the ports
	// that want it; the first of them (in port order) gives its value.
	elems [len(nftContainers)]map[string][]nftOwner
	// slotNext is, per endpoint map, the first key not yet allocated.
	slotNext [len(nftSlotProtocols) * nftEndpointMaps]uint32
	// stale are chains emptied by a sync, with the time they became
	// unused, waiting to be deleted.
	stale map[string]time.Time
}

// nftPortRecord is what one ServicePort put in the table.
type nftPortRecord struct {
	port *PortState
	// name is port's name, one copy for the port's successive records,
	// which its shared elements' owners point to.
	name   *ServicePortName
	sum    uint64 // portSum(port), 0 until a sync needs it
	names  NFTablesChains
	chains []string
	// chainsBuf and elemsBuf hold chains and elems when they fit.
	chainsBuf [3]string
	elemsBuf  [4]nftElem
	sets      []string // affinity sets
	elems     []nftElem
	slots     [2]nftSlots // endpoint-maps layout: Cluster and Local chains
}

// NFTablesSync is one generated transaction. Load it (NFTablesApplier, or
// AddTo a knftables transaction and Run it), then Commit it.
type NFTablesSync struct {
	// Full is true when the whole table was written.
	Full bool
	// Written are the ServicePorts whose own chains the sync writes.
	Written []ServicePortName
	// Flushed are chains the sync empties because nothing uses them any
	// more; a sync at least a second later deletes them.
	Flushed []string
	// Deleted are chains and sets the sync deletes.
	Deleted []string

	family knftables.Family
	// The operations, in order: ops[:portAt]; the ports', each port's
	// own; the shared sets' and maps' elements; ops[portAt:]; then the
	// endpoint map elements, sorted. Into a new table (fresh) the ports'
	// are written as text (blocks, of the records blockRecs, each chunk
	// of ports' chains and their objects) and not kept; w writes them
	// again when they are asked for.
	ops       nftOps
	portAt    int
	ports     []nftOps
	blocks    []nftBlock
	blockRecs []*nftPortRecord
	w         *nftWriter
	// firstChanges are a first sync's record changes, taken as written.
	firstChanges []nftRecChange
	elems        nftElemChanges
	slots        []nftSlotElem
	// fresh: the table did not exist before this sync, so its chains
	// need no flushing.
	fresh bool
	g     *NFTables
	next  *nftState
	// touched are the container keys whose owners this sync changes,
	// with their new owners, and the keys in the order first touched.
	touched     [len(nftContainers)]map[string][]nftOwner
	touchedKeys [len(nftContainers)][]string
	ownerBlocks [len(nftContainers)][]nftOwner // newOwner's
	// portChanges are, for a partial sync, its changes to the committed
	// ports, which Commit applies in place (next shares prev's maps).
	portChanges []nftPortChange
	// replaced are the committed records the sync replaces.
	replaced []*nftPortRecord
}

// copyFor is a copy of the record for p, a PortState with the same inputs
// as its own (an unchanged port of a newer model): with buffers of its own
// and p's endpoints in its slots, so that it keeps neither the record nor
// the older model reachable.
func (r *nftPortRecord) copyFor(p *PortState) *nftPortRecord {
	c := *r
	c.port = p
	if len(r.chains) <= len(c.chainsBuf) {
		c.chains = append(c.chainsBuf[:0], r.chains...)
	}
	if len(r.elems) <= len(c.elemsBuf) {
		c.elems = append(c.elemsBuf[:0], r.elems...)
	}
	for i, eps := range [2][]*Endpoint{p.Cluster, p.Local} {
		if r.slots[i].eps != nil {
			c.slots[i].eps = refillSlots(r.slots[i].eps, eps)
		}
	}
	return &c
}

// nftPortChange replaces a port's record (rec nil: the port is gone);
// replaced is the PortState of the record it replaces, if any.
type nftPortChange struct {
	name     ServicePortName
	rec      *nftPortRecord
	replaced *PortState
}

// NumOperations is the number of operations in the transaction.
func (s *NFTablesSync) NumOperations() int {
	n := len(s.ops) + s.elems.len() + numSlotElems(s.slots)
	for _, p := range s.ports {
		n += len(p)
	}
	for i := range s.blocks {
		n += s.blocks[i].ops
	}
	return n
}

// portOps returns the ports' own operations, each port's in a list.
func (s *NFTablesSync) portOps() []nftOps {
	if !s.fresh {
		return s.ports
	}
	ports := make([]nftOps, len(s.blockRecs))
	for i, rec := range s.blockRecs {
		s.w.rewrite(rec, &ports[i])
	}
	return ports
}

// operations returns the sync's operations as one list.
func (s *NFTablesSync) operations() nftOps {
	ops := make(nftOps, 0, s.NumOperations())
	ops = append(ops, s.ops[:s.portAt]...)
	for _, p := range s.portOps() {
		ops = append(ops, p...)
	}
	ops = s.elems.appendOps(ops)
	ops = append(ops, s.ops[s.portAt:]...)
	return appendSlotOps(ops, s.slots)
}

// AddTo appends the sync's operations to tx, a transaction of a
// knftables.Interface for the table NFTablesTable of the Model's family.
// Take them (or Transaction, or Script) before a later sync is committed:
// the generator lets go of what that sync replaces.
func (s *NFTablesSync) AddTo(tx *knftables.Transaction) { s.operations().addTo(tx) }

// Transaction returns the sync as a new knftables transaction for the
// table NFTablesTable of the Model's family.
func (s *NFTablesSync) Transaction() *knftables.Transaction {
	tx := knftables.NewFake(s.family, NFTablesTable).NewTransaction()
	s.AddTo(tx)
	return tx
}

// Script returns the sync as `nft -f` input: the commands knftables would
// write. Into a table that does not exist yet (Adopt was told of no
// chains), the per-ServicePort chains are written as one table block,
// which nft parses faster than a command per rule.
func (s *NFTablesSync) Script() []byte {
	if !s.fresh {
		return s.script(false)
	}
	return s.blockScript(false)
}

// Commit records the sync as loaded. A sync that failed to load is not
// committed, so the next one is computed against what the kernel still
// holds and carries the failed one's changes again.
func (s *NFTablesSync) Commit() {
	g := s.g
	for c, touched := range s.touched {
		if len(s.next.elems[c]) == 0 {
			// Nothing committed in it (as in a first sync): the
			// sync's view is the container's.
			maps.DeleteFunc(touched, func(_ string, owners []nftOwner) bool { return len(owners) == 0 })
			s.next.elems[c] = touched
			continue
		}
		for key, owners := range touched {
			if len(owners) == 0 {
				delete(s.next.elems[c], key)
			} else {
				s.next.elems[c][key] = owners
			}
		}
	}
	for _, c := range s.portChanges {
		if c.replaced != nil {
			delete(s.next.byPort, c.replaced)
		}
		if c.rec == nil {
			delete(s.next.ports, c.name)
			continue
		}
		s.next.ports[c.name] = c.rec
		s.next.byPort[c.rec.port] = c.rec
	}
	// A replaced record may share its block of memory with records still
	// in use: it lets go of what it points to (its PortState, endpoints,
	// elements), which the block would otherwise keep.
	for _, r := range s.replaced {
		*r = nftPortRecord{}
	}
	g.committed = s.next
	if s.Full {
		g.setUp = true
		g.adoptedChains, g.adoptedSets = nil, nil
	}
	g.tableAbsent = false
}

// Adopt tells the generator which chains and sets the kernel table holds
// before its first sync (`nft list chains` / `nft list sets`), so that the
// first full sync removes per-ServicePort chains and affinity sets an
// earlier proxy left. No chains at all means there is no table yet.
func (g *NFTables) Adopt(chains, sets []string) {
	g.tableAbsent = len(chains) == 0
	g.adoptedChains, g.adoptedSets = nil, nil
	for _, c := range chains {
		if isNFTServiceChain(c) {
			g.adoptedChains = append(g.adoptedChains, c)
		}
	}
	for _, s := range sets {
		if isNFTAffinitySet(s) {
			g.adoptedSets = append(g.adoptedSets, s)
		}
	}
}

// Sync generates the transaction for m. It is full when full is true,
// nothing was committed yet, or the configuration changed; otherwise
// partial.
func (g *NFTables) Sync(m *Model, full bool) *NFTablesSync {
	now := g.now()
	cfgSum := g.configSum(m)
	prev := g.committed
	full = full || prev == nil || prev.config != cfgSum
	w := newNFTWriter(g, m)
	s := &NFTablesSync{Full: full, family: nftFamily(m.Config.Family), g: g, fresh: g.committed == nil && g.tableAbsent}
	if full {
		s.ops = make(nftOps, 0, max(g.opsHint, estimateOps(w.layout, g.committed == nil && !s.fresh)))
		if s.fresh {
			s.w = w // (writeSteps makes Written)
		} else {
			s.ports = make([]nftOps, 0, len(m.Ports))
			s.Written = make([]ServicePortName, 0, len(m.Ports))
		}
	}
	next := &nftState{config: cfgSum, stale: map[string]time.Time{}}
	if prev == nil {
		prev = &nftState{}
		for c := range next.elems {
			prev.elems[c] = map[string][]nftOwner{}
		}
	}
	next.elems = prev.elems // updated in place on Commit, through touched
	next.slotNext = prev.slotNext
	w.next = next
	if full && slices.Max(next.slotNext[:]) > 1<<31 {
		// Keys are never reused between full syncs; before they could
		// wrap, a full sync allocates them afresh.
		w.resetSlots = true
		next.slotNext = [len(nftSlotProtocols) * nftEndpointMaps]uint32{}
	}
	for c := range s.touched {
		s.touched[c] = map[string][]nftOwner{} // (firstElems makes larger ones)
	}
	if full {
		s.writeTop(w)
	}
	s.portAt = len(s.ops)

	// A partial sync starts from the committed ports and patches them: a
	// Tracker hands unchanged ports over as the same PortStates, which
	// are skipped without hashing their inputs or names.
	incremental := !full && prev.byPort != nil
	if incremental { // (else applyChanges makes them)
		next.ports, next.byPort = prev.ports, prev.byPort // changed on Commit
	}
	steps, seen := w.portSteps(m, prev, incremental)
	s.writeSteps(w, steps, prev)
	var stale nftStale
	changes := s.firstChanges // (taken as written)
	if !s.fresh {
		changes = s.takeSteps(steps, prev, incremental, &stale)
	}
	changes = s.takeGone(m, prev, seen, incremental, changes, &stale)
	s.applyChanges(m, prev, next, steps, changes, incremental)
	if full {
		stale.addAdopted(g, next)
	}
	s.cleanUp(prev, next, now, &stale)
	s.next = next
	g.opsHint = len(s.ops)
	return s
}

// estimateOps is about the number of operations of a full sync but the
// ports' own and the shared sets' and maps' elements, so that the first
// one is allocated once.
func estimateOps(layout NFTablesLayout, flushMaps bool) int {
	n := 160
	if layout == NFTablesEndpointMaps {
		n += len(nftSlotProtocols) * nftEndpointMaps
		if flushMaps {
			n += len(nftSlotProtocols) * nftEndpointMaps
		}
	}
	return n
}

// estimatePortOps is about the number of a port's own operations.
func estimatePortOps(p *PortState, layout NFTablesLayout) int {
	n := 3 // a chain added, flushed and its rule
	if p.InternalPolicyLocal || p.ExternalPolicyLocal {
		n += 3
	}
	if p.ExternallyAccessible() {
		n += 6
	}
	if layout == NFTablesEndpointRules || p.ClientIPAffinity {
		n += len(p.Cluster) + len(p.Local)
		if p.ClientIPAffinity {
			n += 5 * len(p.Reachable)
		}
	}
	return n
}

func activeChains(st *nftState) map[string]bool {
	active := make(map[string]bool, 2*len(st.ports))
	for _, rec := range st.ports {
		for _, c := range rec.chains {
			active[c] = true
		}
	}
	return active
}

func (g *NFTables) now() time.Time {
	if g.Clock == nil {
		return time.Now()
	}
	return g.Clock.Now()
}

func (g *NFTables) seed() maphash.Seed {
	if g.hashSeed == (maphash.Seed{}) {
		g.hashSeed = maphash.MakeSeed()
	}
	return g.hashSeed
}
