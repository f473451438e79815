package proxyrules

import (
	"slices"
	"time"

	"sigs.k8s.io/knftables"
)

// The steps of NFTables.Sync. Ports are written in parallel; everything
// that depends on their order (endpoint-map keys, shared elements' owners,
// the transaction) is worked out in port order, so a sync's output does
// not depend on GOMAXPROCS.

// writeTop writes what a full sync writes before the ports: the table,
// base chains and shared sets and maps (w.setup), and the endpoint maps.
func (s *NFTablesSync) writeTop(w *nftWriter) {
	g := s.g
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
		// tcp's maps first: the kernel finds a map by name walking the
		// table's sets in the order they were created.
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
	// ops are what the sync takes of the port's operations (repeated, or
	// written; of a partial sync's, those of the chains that change);
	// sameChains: a partial sync's port whose chains stay as they are.
	ops        nftOps
	sameChains bool
	slotText   [2][]byte // written
}

// portSteps returns a step for each port of m to look at (all of them, or
// in an incremental sync those the Tracker did not hand over unchanged),
// with its committed record and, for those, the sums of its inputs and of
// the record's (taken here the first time a sync needs it, not when the
// record is written: a proxy's first sync needs none); and how many ports
// of m prev has.
func (w *nftWriter) portSteps(m *Model, prev *nftState, incremental bool) (steps []nftPortStep, seen int) {
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
	g := w.g
	g.seed()
	if len(prev.ports) == 0 {
		return steps, seen // (a first sync: no records)
	}
	writers := w.forWorkers(parallelWorkers(len(steps)))
	inParallel(len(steps), len(writers), func(k, from, to int) {
		w := writers[k]
		for i := from; i < to; i++ {
			st := &steps[i]
			if old := prev.ports[st.p.Name]; old != nil {
				st.old = old
				st.sum, w.buf = g.portSum(st.p, w.buf)
				if old.sum == 0 {
					old.sum, w.buf = g.portSum(old.port, w.buf)
				}
			}
		}
	})
	for _, st := range steps {
		if st.old != nil {
			seen++
		}
	}
	return steps, seen
}

// writeSteps decides, in port order, which ports a sync repeats and which
// it writes, with where their endpoints go, then writes those in parallel:
// their records, and their operations or, into a new table (s.fresh), the
// text of their chains (s.blocks). A committed record keeps no
// operations: they are written again from it when a full sync repeats
// them or a partial sync compares them.
func (s *NFTablesSync) writeSteps(w *nftWriter, steps []nftPortStep, prev *nftState) {
	full := s.Full
	writes := 0
	for i := range steps {
		st := &steps[i]
		switch old := st.old; {
		case full && old != nil && old.sum == st.sum && prev.config == w.next.config && !w.resetSlots:
			st.repeat = true
		case full || old == nil || old.sum != st.sum:
			st.write = true
			st.plan = w.planSlots(st.p, old)
			writes++
		}
	}
	if writes == 0 && !full {
		return
	}
	if s.fresh {
		s.blocks = make([]nftBlock, (len(steps)+parallelChunk-1)/parallelChunk)
		s.blockRecs, s.Written = make([]*nftPortRecord, len(steps)), make([]ServicePortName, len(steps))
		s.firstChanges = make([]nftRecChange, len(steps))
	}
	writers := w.forWorkers(parallelWorkers(len(steps)))
	inParallel(len(steps), len(writers), func(k, from, to int) {
		// The chunk's operations in one buffer, each port's a piece, and
		// its records in another.
		size, n, added := 0, 0, 0
		for _, st := range steps[from:to] {
			if st.write || st.repeat {
				size += estimatePortOps(st.p, w.layout)
			}
			if st.write {
				n++
				if st.old == nil {
					added++
				}
			}
		}
		w := writers[k]
		var ops nftOps
		var block *nftBlock
		if s.fresh {
			// written in the writer's block, then kept at its size
			block = &w.pending
			block.objects, block.text, block.ops = block.objects[:0], block.text[:0], 0
			defer func() { s.blocks[from/parallelChunk] = block.clone() }()
		} else {
			ops = make(nftOps, 0, size)
		}
		recs := make([]nftPortRecord, n)
		names := make([]ServicePortName, added)
		record := func(st *nftPortStep) {
			st.rec, recs = &recs[0], recs[1:]
			if st.old != nil {
				st.rec.name = st.old.name
			} else {
				names[0] = st.p.Name
				st.rec.name, names = &names[0], names[1:]
			}
		}
		for i := from; i < to; i++ {
			st := &steps[i]
			switch {
			case st.repeat:
				at := len(ops)
				w.rewrite(st.old, &ops)
				st.ops = ops[at:len(ops):len(ops)]
			case st.write && block != nil:
				w.scratch = w.scratch[:0]
				record(st)
				w.port(st.p, st.old, st.plan, &w.scratch, st.rec, &st.slotText)
				block.add(w, s.family, w.scratch)
				// Into a new table every port is new and written: it is
				// taken here, in parallel, as takeSteps would take it.
				st.rec.sum, st.rec.port = st.sum, st.p
				s.blockRecs[i], s.Written[i] = st.rec, st.p.Name
				s.firstChanges[i] = nftRecChange{st.rec.name, nil, st.rec, &st.slotText}
			case st.write:
				at := len(ops)
				record(st)
				w.port(st.p, st.old, st.plan, &ops, st.rec, &st.slotText)
				st.ops = ops[at:len(ops):len(ops)]
				if !full && st.old != nil {
					// A partial sync rewrites only the chains that change.
					w.scratch = w.scratch[:0]
					w.rewrite(st.old, &w.scratch)
					if slices.Equal(w.scratch, st.ops) {
						st.ops, st.sameChains = nil, true
					} else {
						st.ops = changedChains(w.scratch, st.ops)
					}
				}
			}
		}
	})
}

// nftStale is what a sync leaves unused: chains to empty (and delete a
// second later), affinity sets to delete, and chains emptied before that
// are in use again.
type nftStale struct {
	chains, sets, revived []string
}

// takeSteps adds the ports' operations to the sync in port order, and
// returns the ports whose records change; it sets each step's rec to the
// port's record in the next state.
func (s *NFTablesSync) takeSteps(steps []nftPortStep, prev *nftState, incremental bool, stale *nftStale) []nftRecChange {
	changes := make([]nftRecChange, 0, len(steps))
	for i := range steps {
		st := &steps[i]
		p, old := st.p, st.old
		rec := old
		if st.repeat {
			s.ports = append(s.ports, st.ops)
			s.Written = append(s.Written, p.Name)
		} else if st.write {
			rec = st.rec
			rec.sum = st.sum
			if !st.sameChains { // (else only elements changed)
				s.ports = append(s.ports, st.ops)
			}
			s.Written = append(s.Written, p.Name)
			changes = append(changes, nftRecChange{rec.name, old, rec, &st.slotText})
			if old != nil {
				stale.chains = appendMissing(stale.chains, old.chains, rec.chains)
				stale.sets = appendMissing(stale.sets, old.sets, rec.sets)
			}
			if len(prev.stale) > 0 {
				// A chain emptied a moment ago may be in use again.
				for _, c := range rec.chains {
					if _, ok := prev.stale[c]; ok {
						stale.revived = append(stale.revived, c)
					}
				}
			}
		}
		if rec.port != p {
			if rec == old {
				rec = old.copyFor(p)
			} else {
				rec.port = p
			}
		}
		if old != nil && rec != old {
			s.replaced = append(s.replaced, old)
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
	return changes
}

// takeGone adds the committed ports m no longer has (seen of prev's are
// in m) to changes, in name order.
func (s *NFTablesSync) takeGone(m *Model, prev *nftState, seen int, incremental bool, changes []nftRecChange, stale *nftStale) []nftRecChange {
	if seen == len(prev.ports) {
		return changes
	}
	inModel := make(map[ServicePortName]bool, len(m.Ports))
	for _, p := range m.Ports {
		inModel[p.Name] = true
	}
	var gone []ServicePortName
	for name := range prev.ports {
		if !inModel[name] {
			gone = append(gone, name)
		}
	}
	slices.SortFunc(gone, comparePortNames)
	for _, name := range gone {
		old := prev.ports[name]
		if incremental {
			s.portChanges = append(s.portChanges, nftPortChange{name: name, replaced: old.port})
		}
		changes = append(changes, nftRecChange{name: old.name, old: old})
		s.replaced = append(s.replaced, old)
		stale.chains = append(stale.chains, old.chains...)
		stale.sets = append(stale.sets, old.sets...)
	}
	return changes
}

// applyChanges works out what changes do to the shared sets and maps and
// to the endpoint maps, and (a full sync) fills the next state's maps of
// ports: independent of each other, in parallel.
func (s *NFTablesSync) applyChanges(m *Model, prev, next *nftState, steps []nftPortStep, changes []nftRecChange, incremental bool) {
	tasks := []func(){
		func() { s.slots = slotElems(changes) },
	}
	for c := range nftContainers {
		tasks = append(tasks, func() { s.elems.dels[c], s.elems.adds[c] = s.containerOps(uint8(c), prev, changes) })
	}
	workers := parallelWorkers(len(changes))
	if !incremental {
		tasks = append(tasks, func() {
			next.ports = make(map[ServicePortName]*nftPortRecord, len(steps))
			for _, st := range steps {
				next.ports[st.p.Name] = st.rec
			}
		}, func() {
			next.byPort = make(map[*PortState]*nftPortRecord, len(steps))
			for _, st := range steps {
				next.byPort[st.p] = st.rec
			}
		})
		workers = parallelWorkers(len(m.Ports))
	}
	runTasks(tasks, workers)
}

// addAdopted adds to a full sync's stale chains and sets those an earlier
// proxy left in the table (Adopt) that next does not use.
func (st *nftStale) addAdopted(g *NFTables, next *nftState) {
	if len(g.adoptedChains) == 0 && len(g.adoptedSets) == 0 {
		return
	}
	active := activeChains(next)
	for _, rec := range next.ports {
		for _, set := range rec.sets {
			active[set] = true
		}
	}
	for _, c := range g.adoptedChains {
		if !active[c] {
			st.chains = append(st.chains, c)
		}
	}
	for _, set := range g.adoptedSets {
		if !active[set] {
			st.sets = append(st.sets, set)
		}
	}
}

// cleanUp empties the stale chains, deletes those emptied by an earlier
// sync at least a second ago (one in use again is no longer stale), and
// deletes the stale sets.
func (s *NFTablesSync) cleanUp(prev, next *nftState, now time.Time, stale *nftStale) {
	slices.Sort(stale.chains)
	for _, c := range slices.Compact(stale.chains) {
		if _, pending := prev.stale[c]; pending {
			continue
		}
		s.ops.chain(nftFlush, c)
		s.Flushed = append(s.Flushed, c)
		next.stale[c] = now
	}
	var deleteChains []string
	for c, since := range prev.stale {
		switch {
		case slices.Contains(stale.revived, c):
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
	slices.Sort(stale.sets)
	for _, set := range slices.Compact(stale.sets) {
		s.ops.object(nftDelete, &knftables.Set{Name: set})
		s.Deleted = append(s.Deleted, set)
	}
	s.Deleted = append(deleteChains, s.Deleted...)
}
