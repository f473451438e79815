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
// NFTablesKubeProxy writes kube-proxy's rules exactly. The zero value is ready to use and starts with a full sync.
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
	port   *PortState
	sum    uint64 // of the port's inputs: when equal, the output is too
	names  NFTablesChains
	chains []string
	// chainsBuf and elemsBuf hold chains and elems when they fit.
	chainsBuf [3]string
	elemsBuf  [4]nftElem
	sets      []string // affinity sets
	elems     []nftElem
	slots     [2]nftSlots // endpoint-maps layout: Cluster and Local chains
	// ops are the port's own operations, which a full sync repeats
	// without writing them again when the port did not change.
	ops nftOps
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
	// own; ops[portAt:]; then the endpoint map elements, sorted.
	ops    nftOps
	portAt int
	ports  []nftOps
	slots  []nftSlotElem
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
	n := len(s.ops) + len(s.slots)
	for _, p := range s.ports {
		n += len(p)
	}
	return n
}

// operations returns the sync's operations as one list.
func (s *NFTablesSync) operations() nftOps {
	ops := make(nftOps, 0, s.NumOperations())
	ops = append(ops, s.ops[:s.portAt]...)
	for _, p := range s.ports {
		ops = append(ops, p...)
	}
	ops = append(ops, s.ops[s.portAt:]...)
	return appendSlotOps(ops, s.slots)
}

// AddTo appends the sync's operations to tx, a transaction of a
// knftables.Interface for the table NFTablesTable of the Model's family.
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
			// Nothing committed in it (a first sync): the sync's view
			// is the container's.
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
		s.ops = make(nftOps, 0, max(g.opsHint, estimateOps(m, w.layout)))
		s.ports = make([]nftOps, 0, len(m.Ports))
		s.Written = make([]ServicePortName, 0, len(m.Ports))
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
		if len(prev.elems[c]) == 0 && (c == cClusterIPs || c == cServiceIPs) {
			// a first sync: about one element per port
			s.touched[c] = make(map[string][]nftOwner, len(m.Ports))
		} else {
			s.touched[c] = map[string][]nftOwner{}
		}
	}

	if full {
		w.setup(&s.ops, !g.setUp)
		if g.committed == nil && !s.fresh {
			// What the shared sets and maps hold is unknown: start them
			// afresh, in the same transaction.
			for _, c := range nftContainers {
				if c.set {
					s.ops.object(nftFlush, &knftables.Set{Name: c.name})
				} else {
					s.ops.object(nftFlush, &knftables.Map{Name: c.name})
				}
			}
		}
		if w.layout == NFTablesEndpointMaps {
			// tcp's maps first: the kernel finds a map by name walking
			// the table's sets in the order they were created.
			for proto := range nftSlotProtocols {
				for shard := range nftEndpointMaps {
					ops := nftEndpointMapOps(s.family, proto*nftEndpointMaps+shard)
					s.ops = append(s.ops, ops[nftAdd])
					if g.committed == nil && !s.fresh {
						s.ops = append(s.ops, ops[nftFlush])
					}
				}
			}
		}
	}

	s.portAt = len(s.ops)
	// A partial sync starts from the committed ports and patches them: a
	// Tracker hands unchanged ports over as the same PortStates, which
	// are skipped without hashing their inputs or names.
	incremental := !full && prev.byPort != nil
	if incremental {
		next.ports, next.byPort = prev.ports, prev.byPort // changed on Commit
	} else {
		next.ports = make(map[ServicePortName]*nftPortRecord, len(m.Ports))
		next.byPort = make(map[*PortState]*nftPortRecord, len(m.Ports))
	}
	var slots []nftSlotElem
	if full && w.layout == NFTablesEndpointMaps && g.committed == nil {
		e := 0
		for _, p := range m.Ports {
			e += len(p.Cluster) + len(p.Local)
		}
		slots = make([]nftSlotElem, 0, e)
	}
	// The ports to look at: all of m's, or in an incremental sync those the
	// Tracker did not hand over unchanged. Their sums first (in parallel),
	// then in port order which to write and where their endpoints go, then
	// the writing (in parallel), then, in port order again, the sync's
	// operations.
	seen := 0 // ports of m that prev has
	var steps []nftPortStep
	if incremental {
		for _, p := range m.Ports {
			if prev.byPort[p] != nil {
				seen++
			} else {
				steps = append(steps, nftPortStep{p: p})
			}
		}
	} else {
		steps = make([]nftPortStep, len(m.Ports))
		for i, p := range m.Ports {
			steps[i].p = p
		}
	}
	g.seed()
	workers := parallelWorkers(len(steps))
	writers := w.forWorkers(workers)
	inParallel(len(steps), workers, func(k, from, to int) {
		w := writers[k]
		for i := from; i < to; i++ {
			st := &steps[i]
			if old := prev.ports[st.p.Name]; old != nil {
				// (a new port's sum is taken as it is written)
				st.old = old
				st.sum, w.buf = g.portSum(st.p, w.buf)
			}
		}
	})
	writes := 0
	for i := range steps {
		st := &steps[i]
		old := st.old
		if old != nil {
			seen++
		}
		switch {
		case full && old != nil && old.sum == st.sum && prev.config == cfgSum && !w.resetSlots:
			st.repeat = true
		case full || old == nil || old.sum != st.sum:
			st.write = true
			st.plan = w.planSlots(st.p, old)
			writes++
		}
	}
	if writes > 0 {
		inParallel(len(steps), workers, func(k, from, to int) {
			// The chunk's operations in one buffer, each port's a piece.
			size := 0
			for _, st := range steps[from:to] {
				if st.write {
					size += estimatePortOps(st.p, w.layout)
				}
			}
			ops := make(nftOps, 0, size)
			for i := from; i < to; i++ {
				if st := &steps[i]; st.write {
					if st.old == nil {
						st.sum, writers[k].buf = g.portSum(st.p, writers[k].buf)
					}
					at := len(ops)
					st.rec = writers[k].port(st.p, st.old, st.plan, &ops)
					st.ops = ops[at:len(ops):len(ops)]
				}
			}
		})
	}
	var staleChains, staleSets, revived []string
	changes := make([]nftRecChange, 0, writes) // written and gone ports
	for i := range steps {
		st := &steps[i]
		p, old := st.p, st.old
		rec := old
		if st.repeat {
			s.ports = append(s.ports, old.ops)
			s.Written = append(s.Written, p.Name)
		} else if st.write {
			rec = st.rec
			rec.sum = st.sum
			rec.ops = st.ops
			switch {
			case full || old == nil:
				s.ports = append(s.ports, rec.ops)
			case slices.Equal(old.ops, rec.ops):
				// Only elements changed: the chains stay as they are.
				rec.ops = old.ops
			default:
				s.ports = append(s.ports, changedChains(old.ops, rec.ops))
			}
			s.Written = append(s.Written, p.Name)
			changes = append(changes, nftRecChange{p.Name, old, rec})
			if old != nil {
				staleChains = appendMissing(staleChains, old.chains, rec.chains)
				staleSets = appendMissing(staleSets, old.sets, rec.sets)
			}
			if len(prev.stale) > 0 {
				// A chain emptied a moment ago may be in use again.
				for _, c := range rec.chains {
					if _, ok := prev.stale[c]; ok {
						revived = append(revived, c)
					}
				}
			}
		}
		if rec.port != p {
			if rec == old {
				copied := *old
				rec = &copied
			}
			rec.port = p
		}
		if incremental {
			change := nftPortChange{name: p.Name, rec: rec}
			if old != nil {
				change.replaced = old.port
			}
			s.portChanges = append(s.portChanges, change)
		}
		st.rec = rec
	}
	var gone []ServicePortName
	if seen < len(prev.ports) {
		inModel := make(map[ServicePortName]bool, len(m.Ports))
		for _, p := range m.Ports {
			inModel[p.Name] = true
		}
		for name := range prev.ports {
			if !inModel[name] {
				gone = append(gone, name)
			}
		}
	}
	slices.SortFunc(gone, comparePortNames)
	for _, name := range gone {
		old := prev.ports[name]
		if incremental {
			s.portChanges = append(s.portChanges, nftPortChange{name: name, replaced: old.port})
		}
		changes = append(changes, nftRecChange{name, old, nil})
		staleChains = append(staleChains, old.chains...)
		staleSets = append(staleSets, old.sets...)
	}
	// What the changes do to the shared sets and maps, to the endpoint
	// maps and to the state's maps of ports are independent of each other.
	var dels, adds [len(nftContainers)]nftOps
	tasks := []func(){
		func() {
			for _, ch := range changes {
				if ch.old.hasSlots() || ch.cur.hasSlots() {
					slots = appendSlotElems(slots, ch.old, ch.cur)
				}
			}
			s.slots = sortSlotElems(slots)
		},
	}
	for c := range nftContainers {
		tasks = append(tasks, func() { dels[c], adds[c] = s.containerOps(uint8(c), prev, changes) })
	}
	if !incremental {
		tasks = append(tasks, func() {
			for _, st := range steps {
				next.ports[st.p.Name] = st.rec
			}
		}, func() {
			for _, st := range steps {
				next.byPort[st.p] = st.rec
			}
		})
	}
	if incremental {
		runTasks(tasks, parallelWorkers(len(changes)))
	} else {
		runTasks(tasks, parallelWorkers(len(m.Ports)))
	}
	for _, ops := range dels {
		s.ops = append(s.ops, ops...)
	}
	for _, ops := range adds {
		s.ops = append(s.ops, ops...)
	}

	if full && (len(g.adoptedChains) > 0 || len(g.adoptedSets) > 0) {
		active := activeChains(next)
		for _, rec := range next.ports {
			for _, set := range rec.sets {
				active[set] = true
			}
		}
		for _, c := range g.adoptedChains {
			if !active[c] {
				staleChains = append(staleChains, c)
			}
		}
		for _, set := range g.adoptedSets {
			if !active[set] {
				staleSets = append(staleSets, set)
			}
		}
	}

	slices.Sort(staleChains)
	staleChains = slices.Compact(staleChains)
	for _, c := range staleChains {
		if _, pending := prev.stale[c]; pending {
			continue
		}
		s.ops.chain(nftFlush, c)
		s.Flushed = append(s.Flushed, c)
		next.stale[c] = now
	}
	// Chains emptied by an earlier sync at least a second ago are
	// deleted; one in use again is no longer stale.
	var deleteChains []string
	for c, since := range prev.stale {
		switch {
		case slices.Contains(revived, c):
		case now.Sub(since) < time.Second:
			next.stale[c] = since
		default:
			deleteChains = append(deleteChains, c)
		}
	}
	slices.Sort(deleteChains)
	for _, c := range deleteChains {
		s.ops.chain(nftDelete, c)
	}
	slices.Sort(staleSets)
	for _, set := range slices.Compact(staleSets) {
		s.ops.object(nftDelete, &knftables.Set{Name: set})
		s.Deleted = append(s.Deleted, set)
	}
	s.Deleted = append(deleteChains, s.Deleted...)
	s.next = next
	g.opsHint = len(s.ops)
	return s
}

// estimateOps is about the number of operations of a full sync but the
// ports' own, so that the first one is allocated once.
func estimateOps(m *Model, layout NFTablesLayout) int {
	n := 160 + 4*len(m.Ports) // about 4 shared elements per port
	if layout == NFTablesEndpointMaps {
		n += 2 * len(nftSlotProtocols) * nftEndpointMaps
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

// nftPortStep is what a sync does with one port of the model.
type nftPortStep struct {
	p   *PortState
	old *nftPortRecord
	sum uint64
	// repeat: a full sync repeats the unchanged port's operations; write:
	// the port is written.
	repeat, write bool
	plan          [2]nftSlotPlan
	rec           *nftPortRecord // written
	ops           nftOps         // written
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
