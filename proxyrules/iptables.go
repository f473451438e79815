package proxyrules

import (
	"bytes"
	"reflect"
	"slices"
)

// largeClusterEndpoints is kube-proxy's largeClusterEndpointsThreshold:
// above it, per-endpoint rules carry no comments to keep the payload small.
const largeClusterEndpoints = 1000

// IPTables generates kube-proxy's iptables-restore payload
// (pkg/proxy/iptables/proxier.go syncProxyRules) from a Model and remembers
// what was applied, so that later syncs can be partial: the
// per-ServicePort chains (KUBE-SVC/SVL/EXT/FW/SEP) are written only when
// their content changed, and the top-level chains (KUBE-SERVICES,
// KUBE-NODEPORTS, the filter table's) only when a line in them did (see
// IPTablesSync.TopLevel); chains no longer used are deleted. The zero
// value is ready to use and starts with a full sync.
type IPTables struct {
	applied map[ServicePortName]*appliedPort
	// byState finds the committed record of a port by its PortState, which
	// is quicker than by name and tells at once that it did not change.
	byState  map[*PortState]*appliedPort
	settings generationSettings
	// adopted are service chains found in the kernel that no applied sync
	// wrote (a previous kube-proxy or process); the next full sync deletes
	// the unused ones.
	adopted []string
}

// appliedPort is what was generated for one ServicePort: reused as it is
// while its PortState (the same pointer, as a Tracker keeps it) and the
// settings stay the same.
type appliedPort struct {
	chains []string
	state  *PortState
	// Slices of the writer's buffers: see portWriter.
	filter, natTop, ownChains, ownRules []byte
}

// IPTablesSync is one generated payload, to be loaded with
// `iptables-restore --noflush` and then committed.
type IPTablesSync struct {
	// Payload is the iptables-restore input (filter and nat tables). The
	// generator keeps parts of it for later syncs: do not modify it.
	Payload []byte
	// Full is true when every chain was written.
	Full bool
	// TopLevel is true when the payload rewrites the top-level chains
	// (KUBE-SERVICES, KUBE-NODEPORTS, the filter table's, ...). kube-proxy
	// always does; a partial sync here leaves them out when no line in
	// them changed, as when only endpoints did (iptables-restore
	// --noflush leaves a chain the payload does not name as it is), which
	// keeps a one-Service change a few kilobytes at any cluster size.
	TopLevel bool
	// Written are the ServicePorts whose own chains are in the payload.
	Written []ServicePortName
	// Deleted are the chains the payload deletes.
	Deleted []string

	g *IPTables
	// changed and removed are what this sync changes in the generator's
	// record of the kernel (copy on write: only Commit applies them).
	changed  []*appliedPort
	removed  []ServicePortName
	settings generationSettings
}

// generationSettings is what, besides a port's PortState, shapes the rules
// written for it.
type generationSettings struct {
	cfg          Config
	largeCluster bool
}

// Commit records the sync as loaded, so the next partial sync is computed
// against it. A payload that failed to load is not committed: the next
// partial sync is then computed against the last committed state and so
// writes again everything the failed payload carried.
func (s *IPTablesSync) Commit() {
	g := s.g
	if g.applied == nil {
		g.applied = make(map[ServicePortName]*appliedPort, len(s.changed))
		g.byState = make(map[*PortState]*appliedPort, len(s.changed))
	}
	for _, rec := range s.changed {
		name := rec.state.Name
		if old := g.applied[name]; old != nil {
			delete(g.byState, old.state)
		}
		g.applied[name] = rec
		g.byState[rec.state] = rec
	}
	for _, name := range s.removed {
		if old := g.applied[name]; old != nil {
			delete(g.byState, old.state)
		}
		delete(g.applied, name)
	}
	g.settings = s.settings
	if s.Full {
		g.adopted = nil
	}
}

// Adopt tells the generator which nat chains exist in the kernel before its
// first sync (from `iptables-save -t nat`), so that the first full sync
// deletes stale per-ServicePort chains left by an earlier proxy.
func (g *IPTables) Adopt(natChains []string) {
	for _, c := range natChains {
		if isServiceChain(c) {
			g.adopted = append(g.adopted, c)
		}
	}
}

// Sync generates the payload for m. It is full when full is true or nothing
// was committed yet; otherwise partial. The rules of ports that changed are
// written by as many goroutines as GOMAXPROCS allows.
func (g *IPTables) Sync(m *Model, full bool) *IPTablesSync {
	full = full || g.applied == nil
	settings := generationSettings{cfg: m.Config, largeCluster: largeCluster(m)}
	s := &IPTablesSync{Full: full, g: g, settings: settings}
	reuse := g.applied != nil && reflect.DeepEqual(g.settings, settings)

	// Ports unchanged since the committed sync keep their records; the
	// others are written anew.
	recs := make([]*appliedPort, len(m.Ports))
	prevs := make([]*appliedPort, len(m.Ports)) // the committed record of each port's name
	var todo []int
	known := 0 // ports of m that the committed state has
	for i, p := range m.Ports {
		if reuse {
			if rec := g.byState[p]; rec != nil {
				recs[i], prevs[i] = rec, rec
				known++
				continue
			}
		}
		if prevs[i] = g.applied[p.Name]; prevs[i] != nil {
			known++
		}
		todo = append(todo, i)
	}
	pooled := writePorts(m, settings, recs, todo)
	s.changed = make([]*appliedPort, 0, len(todo))
	if full {
		s.Written = make([]ServicePortName, 0, len(m.Ports))
	}

	// Which ports' own chains go into the payload: all on a full sync,
	// else those whose chains differ from the committed ones. The
	// top-level chains go in when what some port puts in them changed.
	written := make([]bool, len(m.Ports))
	s.TopLevel = full || !reuse
	var stale []string
	for i, p := range m.Ports {
		rec, prev := recs[i], prevs[i]
		if prev == rec {
			written[i] = full
		} else {
			if !full && prev != nil && bytes.Equal(prev.ownChains, rec.ownChains) && bytes.Equal(prev.ownRules, rec.ownRules) {
				rec.ownChains, rec.ownRules = prev.ownChains, prev.ownRules
			} else {
				written[i] = true
			}
			if prev == nil || !bytes.Equal(prev.filter, rec.filter) || !bytes.Equal(prev.natTop, rec.natTop) {
				s.TopLevel = true
			}
			s.changed = append(s.changed, rec)
			if prev != nil {
				stale = appendMissing(stale, prev.chains, rec.chains)
			}
		}
		if written[i] {
			s.Written = append(s.Written, p.Name)
		}
	}
	// Chains of ports that are gone, and (on a full sync) chains found in
	// the kernel that nothing uses any more.
	if known < len(g.applied) {
		current := make(map[ServicePortName]bool, len(m.Ports))
		for _, p := range m.Ports {
			current[p.Name] = true
		}
		for name, rec := range g.applied {
			if !current[name] {
				s.removed = append(s.removed, name)
				stale = append(stale, rec.chains...)
				s.TopLevel = true
			}
		}
	}
	if full && len(g.adopted) > 0 {
		active := make(map[string]bool, len(m.Ports)*4)
		for _, rec := range recs {
			for _, c := range rec.chains {
				active[c] = true
			}
		}
		for _, c := range g.adopted {
			if !active[c] {
				stale = append(stale, c)
			}
		}
	}
	slices.Sort(stale)
	s.Deleted = slices.Compact(stale)
	s.Payload = assemble(payloadParts{top: s.TopLevel, head: head(&m.Config), deletions: deletions(s.Deleted), tail: tail(&m.Config),
		recs: recs, written: written}, full)
	if full {
		pooled.release() // the records now point into the payload
	}
	return s
}

// largeCluster is kube-proxy's largeClusterMode: more endpoints than
// largeClusterEndpoints in all.
func largeCluster(m *Model) bool {
	total := 0
	for _, p := range m.Ports {
		total += len(p.Endpoints)
	}
	return total > largeClusterEndpoints
}

// writePorts writes the records of the ports todo indexes, on as many
// goroutines as GOMAXPROCS allows (inParallel).
func writePorts(m *Model, settings generationSettings, recs []*appliedPort, todo []int) blocks {
	var total portSize
	for _, i := range todo {
		total.add(estimate(m.Ports[i], settings.largeCluster))
	}
	workers := parallelWorkers(len(todo))
	block := total.block(workers)
	writers := make([]*portWriter, workers)
	for k := range writers {
		writers[k] = &portWriter{cfg: &m.Config, largeCluster: settings.largeCluster, block: block, recordBlock: min(parallelChunk, len(todo))}
	}
	inParallel(len(todo), workers, func(k, from, to int) {
		for _, i := range todo[from:to] {
			recs[i] = writers[k].port(m.Ports[i])
		}
	})
	taken := make([]blocks, workers)
	for k, w := range writers {
		taken[k] = w.blocks
	}
	return slices.Concat(taken...)
}

// appendMissing appends to dst the chains of old that are not in cur.
func appendMissing(dst, old, cur []string) []string {
	for _, c := range old {
		if !slices.Contains(cur, c) {
			dst = append(dst, c)
		}
	}
	return dst
}
