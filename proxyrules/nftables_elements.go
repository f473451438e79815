package proxyrules

import "slices"

// The elements of the shared sets and maps (cluster-ips, service-ips, ...)
// belong to no single ServicePort: two ports may want the same one. They
// are kept with their owners, and a sync adds or deletes only the elements
// whose first owner's value changed.

type nftOwner struct {
	port           ServicePortName
	value, comment string
}

// nftElem is an element a ServicePort puts in a shared set or map.
type nftElem struct {
	c                   uint8 // index in nftContainers
	key, value, comment string
}

// The shared sets and maps whose elements are synced incrementally.
var nftContainers = [...]struct {
	name string
	set  bool
}{
	{nftClusterIPs, true},
	{nftServiceIPs, false},
	{nftFirewallIPs, false},
	{nftNoEndpointServices, false},
	{nftNoEndpointNodePort, false},
	{nftServiceNodePorts, false},
	{nftHairpin, true},
}

const (
	cClusterIPs = iota
	cServiceIPs
	cFirewallIPs
	cNoEndpointServices
	cNoEndpointNodePorts
	cServiceNodePorts
	cHairpin
)

// nftRecChange is a port whose record a sync replaces (old or cur nil: the
// port comes or goes).
type nftRecChange struct {
	name     ServicePortName
	old, cur *nftPortRecord
	slotText [2][]byte // the writer's, for cur (see endpointSlots)
}

// containerOps applies changes, in port order, to the sync's view of
// container c and returns the operations that bring the kernel's container
// in line: deletions, then additions. Containers are independent: a sync
// works on them in parallel.
func (s *NFTablesSync) containerOps(c uint8, prev *nftState, changes []nftRecChange) (dels, adds nftOps) {
	for _, ch := range changes {
		if ch.old == nil || ch.cur == nil || !slices.Equal(ch.old.elems, ch.cur.elems) {
			s.changeElems(c, prev, ch.name, ch.old, ch.cur)
		}
	}
	return s.elementOps(c, prev)
}

// changeElems replaces port's elements of container c from old to cur
// (either may be nil) in the sync's view of the container.
func (s *NFTablesSync) changeElems(c uint8, prev *nftState, port ServicePortName, old, cur *nftPortRecord) {
	touched, committed := s.touched[c], prev.elems[c]
	owners := func(key string) []nftOwner {
		if o, ok := touched[key]; ok {
			return o
		}
		s.touchedKeys[c] = append(s.touchedKeys[c], key)
		return slices.Clone(committed[key])
	}
	if old != nil {
		for _, e := range old.elems {
			if e.c == c {
				touched[e.key] = slices.DeleteFunc(owners(e.key), func(w nftOwner) bool { return w.port == port })
			}
		}
	}
	if cur == nil {
		return
	}
	for _, e := range cur.elems {
		if e.c != c {
			continue
		}
		if len(committed) == 0 && old == nil {
			// Nothing to clone (a first sync): one map access for a key
			// no port wanted yet.
			if _, seen := touched[e.key]; !seen {
				s.touchedKeys[c] = append(s.touchedKeys[c], e.key)
				touched[e.key] = s.newOwner(c, nftOwner{port: port, value: e.value, comment: e.comment})
				continue
			}
		}
		o := owners(e.key)
		if slices.ContainsFunc(o, func(w nftOwner) bool { return w.port == port }) {
			touched[e.key] = o
			continue // a port wants an element once
		}
		i, _ := slices.BinarySearchFunc(o, port, func(w nftOwner, p ServicePortName) int { return comparePortNames(w.port, p) })
		touched[e.key] = slices.Insert(o, i, nftOwner{port: port, value: e.value, comment: e.comment})
	}
}

// newOwner returns a one-owner list for container c, carved from a block
// shared with the lists before it (a first sync makes one for nearly every
// element).
func (s *NFTablesSync) newOwner(c uint8, o nftOwner) []nftOwner {
	block := &s.ownerBlocks[c]
	if len(*block) == cap(*block) {
		// blocks of 16, 32, ... up to 1024 owners
		*block = make([]nftOwner, 0, min(1024, max(16, 2*cap(*block))))
	}
	*block = append(*block, o)
	n := len(*block)
	return (*block)[n-1 : n : n]
}

// elementOps writes the changes of container c: deletions (so a changed
// value is deleted and added again, as kube-proxy does) and additions, in
// port order.
func (s *NFTablesSync) elementOps(c uint8, prev *nftState) (dels, adds nftOps) {
	touched, committed := s.touched[c], prev.elems[c]
	if len(committed) == 0 {
		adds = make(nftOps, 0, len(s.touchedKeys[c]))
	}
	for _, k := range s.touchedKeys[c] {
		old, cur := committed[k], touched[k]
		if len(old) > 0 && (len(cur) == 0 || cur[0].value != old[0].value) {
			dels.element(nftDelete, &nftElem{c: c, key: k})
		}
		if len(cur) > 0 && (len(old) == 0 || old[0].value != cur[0].value) {
			adds.element(nftAdd, &nftElem{c: c, key: k, value: cur[0].value, comment: cur[0].comment})
		}
	}
	return dels, adds
}
