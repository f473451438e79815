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

// changeElems replaces the shared-container elements of port from old to
// cur (either may be nil) in the sync's view of the containers.
func (s *NFTablesSync) changeElems(prev *nftState, port ServicePortName, old, cur *nftPortRecord) {
	owners := func(c uint8, key string) []nftOwner {
		if o, ok := s.touched[c][key]; ok {
			return o
		}
		s.touchedKeys[c] = append(s.touchedKeys[c], key)
		return slices.Clone(prev.elems[c][key])
	}
	if old != nil {
		for _, e := range old.elems {
			o := owners(e.c, e.key)
			s.touched[e.c][e.key] = slices.DeleteFunc(o, func(w nftOwner) bool { return w.port == port })
		}
	}
	if cur != nil {
		for _, e := range cur.elems {
			if len(prev.elems[e.c]) == 0 && old == nil {
				// Nothing to clone (a first sync): one map access for
				// a key no port wanted yet.
				t := s.touched[e.c]
				if _, seen := t[e.key]; !seen {
					s.touchedKeys[e.c] = append(s.touchedKeys[e.c], e.key)
					t[e.key] = s.newOwner(nftOwner{port: port, value: e.value, comment: e.comment})
					continue
				}
			}
			o := owners(e.c, e.key)
			if slices.ContainsFunc(o, func(w nftOwner) bool { return w.port == port }) {
				s.touched[e.c][e.key] = o
				continue // a port wants an element once
			}
			i, _ := slices.BinarySearchFunc(o, port, func(w nftOwner, p ServicePortName) int { return comparePortNames(w.port, p) })
			s.touched[e.c][e.key] = slices.Insert(o, i, nftOwner{port: port, value: e.value, comment: e.comment})
		}
	}
}

// newOwner returns a one-owner list, carved from a block shared with the
// lists before it (a first sync makes one for nearly every element).
func (s *NFTablesSync) newOwner(o nftOwner) []nftOwner {
	if len(s.ownerBlock) == cap(s.ownerBlock) {
		s.ownerBlock = make([]nftOwner, 0, 1024)
	}
	s.ownerBlock = append(s.ownerBlock, o)
	n := len(s.ownerBlock)
	return s.ownerBlock[n-1 : n : n]
}

// elementOps writes the element changes: deletions first (so a changed
// value is deleted and added again, as kube-proxy does), then additions,
// each grouped by container, in port order.
func (s *NFTablesSync) elementOps(prev *nftState) {
	for c, keys := range s.touchedKeys {
		for _, k := range keys {
			if old := prev.elems[c][k]; len(old) > 0 {
				if cur := s.touched[c][k]; len(cur) == 0 || cur[0].value != old[0].value {
					s.ops.element(nftDelete, &nftElem{c: uint8(c), key: k})
				}
			}
		}
	}
	for c, keys := range s.touchedKeys {
		for _, k := range keys {
			cur := s.touched[c][k]
			if len(cur) == 0 {
				continue
			}
			if old := prev.elems[c][k]; len(old) > 0 && old[0].value == cur[0].value {
				continue
			}
			s.ops.element(nftAdd, &nftElem{c: uint8(c), key: k, value: cur[0].value, comment: cur[0].comment})
		}
	}
}
