package proxyrules

import (
	"slices"

	"sigs.k8s.io/knftables"
)

// The elements of the shared sets and maps (cluster-ips, service-ips, ...)
// belong to no single ServicePort: two ports may want the same one. They
// are kept with their owners, and a sync adds or deletes only the elements
// whose first owner's value changed.

type nftOwner struct {
	port           *ServicePortName // its record's name
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
	name     *ServicePortName
	old, cur *nftPortRecord
	slotText *[2][]byte // the writer's, for cur (see endpointSlots)
}

// containerOps applies changes, in port order, to the sync's view of
// container c and returns what brings the kernel's container in line: the
// keys to delete, then the elements to add. Containers are independent: a
// sync works on them in parallel.
func (s *NFTablesSync) containerOps(c uint8, prev *nftState, changes []nftRecChange) (dels []string, adds []*nftElem) {
	if len(prev.elems[c]) == 0 {
		return nil, s.firstElems(c, changes)
	}
	for _, ch := range changes {
		if ch.old == nil || ch.cur == nil || !slices.Equal(ch.old.elems, ch.cur.elems) {
			s.changeElems(c, prev, ch.name, ch.old, ch.cur)
		}
	}
	return s.elementOps(c, prev)
}

// firstElems is containerOps for a container that holds nothing yet (as
// in a first sync): no port had elements in it, so nothing is deleted, and
// as changes come in port order a key's value is that of the first port
// that wants it: each key is added when first seen (and set right at the
// end if the ports were not in order after all).
func (s *NFTablesSync) firstElems(c uint8, changes []nftRecChange) (adds []*nftElem) {
	if c == cClusterIPs || c == cServiceIPs {
		// about an element a port
		s.touched[c] = make(map[string][]nftOwner, len(changes))
		adds = make([]*nftElem, 0, len(changes))
	}
	touched := s.touched[c]
	reordered := false // a port took a key from one before it in changes
	for _, ch := range changes {
		if ch.cur == nil {
			continue
		}
		for i := range ch.cur.elems {
			e := &ch.cur.elems[i]
			if e.c != c {
				continue
			}
			o, seen := touched[e.key]
			if !seen {
				touched[e.key] = s.newOwner(c, nftOwner{port: ch.name, value: e.value, comment: e.comment})
				adds = append(adds, e)
				continue
			}
			at, found := slices.BinarySearchFunc(o, ch.name, compareOwner)
			if !found { // (a port wants an element once)
				touched[e.key] = slices.Insert(o, at, nftOwner{port: ch.name, value: e.value, comment: e.comment})
				reordered = reordered || at == 0
			}
		}
	}
	if reordered {
		// A Model's ports out of name order (one built by hand): the
		// value is the first owner's, as elementOps writes it.
		for i, e := range adds {
			if first := touched[e.key][0]; first.value != e.value || first.comment != e.comment {
				adds[i] = &nftElem{c: c, key: e.key, value: first.value, comment: first.comment}
			}
		}
	}
	return adds
}

// changeElems replaces port's elements of container c from old to cur
// (either may be nil) in the sync's view of the container.
func (s *NFTablesSync) changeElems(c uint8, prev *nftState, port *ServicePortName, old, cur *nftPortRecord) {
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
				touched[e.key] = slices.DeleteFunc(owners(e.key), func(w nftOwner) bool { return *w.port == *port })
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
		o := owners(e.key)
		i, found := slices.BinarySearchFunc(o, port, compareOwner)
		if !found { // (a port wants an element once)
			o = slices.Insert(o, i, nftOwner{port: port, value: e.value, comment: e.comment})
		}
		touched[e.key] = o
	}
}

// compareOwner orders owners by port name.
func compareOwner(w nftOwner, port *ServicePortName) int { return comparePortNames(*w.port, *port) }

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

// elementOps works out the changes of container c: deletions (so a changed
// value is deleted and added again, as kube-proxy does) and additions, in
// port order.
func (s *NFTablesSync) elementOps(c uint8, prev *nftState) (dels []string, adds []*nftElem) {
	touched, committed := s.touched[c], prev.elems[c]
	for _, k := range s.touchedKeys[c] {
		old, cur := committed[k], touched[k]
		if len(old) > 0 && (len(cur) == 0 || cur[0].value != old[0].value) {
			dels = append(dels, k)
		}
		if len(cur) > 0 && (len(old) == 0 || old[0].value != cur[0].value) {
			adds = append(adds, &nftElem{c: c, key: k, value: cur[0].value, comment: cur[0].comment})
		}
	}
	return dels, adds
}

// nftElemChanges are a sync's changes to the shared sets and maps:
// deletions (keys), then additions, container by container. A first sync
// adds an element for nearly every key, kept here as the records' own.
type nftElemChanges struct {
	dels [len(nftContainers)][]string
	adds [len(nftContainers)][]*nftElem
}

// len is the number of changes.
func (e *nftElemChanges) len() int {
	n := 0
	for c := range nftContainers {
		n += len(e.dels[c]) + len(e.adds[c])
	}
	return n
}

// appendOps appends the changes as operations, in order.
func (e *nftElemChanges) appendOps(ops nftOps) nftOps {
	ops = slices.Grow(ops, e.len())
	for c, keys := range e.dels {
		for _, k := range keys {
			ops.element(nftDelete, &nftElem{c: uint8(c), key: k})
		}
	}
	for _, elems := range e.adds {
		for _, el := range elems {
			ops.element(nftAdd, el)
		}
	}
	return ops
}

// appendScript writes the changes as nftOps.appendScript writes them as
// operations: with batch, consecutive ones of a container as one command.
func (e *nftElemChanges) appendScript(b []byte, family knftables.Family, batch bool) []byte {
	var op nftOp
	write := func(first bool) {
		if first || !batch {
			b = appendElementHead(b, family, &op)
		} else {
			b = append(b, ", "...)
		}
		b = appendElement(b, &op)
		if !batch {
			b = append(b, " }\n"...)
		}
	}
	end := func(n int) {
		if batch && n > 0 {
			b = append(b, " }\n"...)
		}
	}
	for c, keys := range e.dels {
		op = nftOp{verb: nftDelete, name: nftContainers[c].name}
		for i, k := range keys {
			op.text = k
			write(i == 0)
		}
		end(len(keys))
	}
	for c, elems := range e.adds {
		op = nftOp{verb: nftAdd, name: nftContainers[c].name}
		for i, el := range elems {
			op.text, op.value, op.comment = el.key, el.value, el.comment
			write(i == 0)
		}
		end(len(elems))
	}
	return b
}

// size is about the length of the changes' script.
func (e *nftElemChanges) size() int {
	n := 0
	for c, keys := range e.dels {
		for _, k := range keys {
			n += len(nftContainers[c].name) + len(k) + 48
		}
	}
	for c, elems := range e.adds {
		for _, el := range elems {
			n += len(nftContainers[c].name) + len(el.key) + len(el.value) + len(el.comment) + 48
		}
	}
	return n
}
