package proxyrules

import (
	"bytes"
	"slices"
	"strconv"
	"strings"

	"sigs.k8s.io/knftables"
)

// nftOp is one operation of a generated transaction. The many small ones
// (chains, rules, elements) are kept as strings, which is what both the
// nft script and knftables objects are made of; the few others (table,
// base chains, sets, maps, counters) as knftables objects.
type nftOp struct {
	verb    nftVerb
	kind    nftKind
	obj     knftables.Object // kind nftObject
	name    string           // chain; the chain of a rule; the set or map of an element
	text    string           // rule; element key, its parts joined by " . "; an object's command, if written in advance
	value   string           // map element value
	comment string           // "" for none
}

type nftVerb uint8

const (
	nftAdd nftVerb = iota
	nftFlush
	nftDelete
)

var nftVerbs = [...]string{nftAdd: "add", nftFlush: "flush", nftDelete: "delete"}

type nftKind uint8

const (
	nftObject nftKind = iota
	nftChain
	nftRule
	nftSetElem
	nftMapElem
)

// nftOps is an ordered list of operations, with builders named like
// knftables' Transaction methods.
type nftOps []nftOp

func (o *nftOps) object(v nftVerb, obj knftables.Object) {
	*o = append(*o, nftOp{verb: v, kind: nftObject, obj: obj})
}

func (o *nftOps) chain(v nftVerb, name string) {
	*o = append(*o, nftOp{verb: v, kind: nftChain, name: name})
}

// ensureChain is kube-proxy's ensureChain: the chain exists and is empty.
func (o *nftOps) ensureChain(name string) {
	o.chain(nftAdd, name)
	o.chain(nftFlush, name)
}

func (o *nftOps) rule(chain, rule, comment string) {
	*o = append(*o, nftOp{verb: nftAdd, kind: nftRule, name: chain, text: rule, comment: comment})
}

func (o *nftOps) element(v nftVerb, e *nftElem) {
	kind := nftMapElem
	if nftContainers[e.c].set {
		kind = nftSetElem
	}
	op := nftOp{verb: v, kind: kind, name: nftContainers[e.c].name, text: e.key}
	if v == nftAdd {
		op.value, op.comment = e.value, e.comment
	}
	*o = append(*o, op)
}

// changedChains returns the operations of cur, a port's operations, but
// for those of chains whose operations are the same in old: a partial
// sync rewrites only the chains that change (kube-proxy rewrites every
// chain of a changed Service; the table ends up the same). Operations on
// anything but a chain or its rules are kept.
func changedChains(old, cur nftOps) nftOps {
	byChain := func(ops nftOps) map[string]nftOps {
		m := map[string]nftOps{}
		for _, op := range ops {
			if op.kind == nftChain || op.kind == nftRule {
				m[op.name] = append(m[op.name], op)
			}
		}
		return m
	}
	was, is := byChain(old), byChain(cur)
	kept := make(nftOps, 0, len(cur))
	for _, op := range cur {
		if (op.kind == nftChain || op.kind == nftRule) && slices.Equal(was[op.name], is[op.name]) {
			continue
		}
		kept = append(kept, op)
	}
	return kept
}

// knftables turns op into the knftables object it stands for.
func (op *nftOp) knftables() knftables.Object {
	switch op.kind {
	case nftChain:
		return &knftables.Chain{Name: op.name}
	case nftRule:
		r := &knftables.Rule{Chain: op.name, Rule: op.text}
		if op.comment != "" {
			r.Comment = &op.comment
		}
		return r
	case nftSetElem, nftMapElem:
		e := &knftables.Element{Key: strings.Split(op.text, " . ")}
		if op.kind == nftSetElem {
			e.Set = op.name
		} else {
			e.Map = op.name
		}
		if op.value != "" {
			e.Value = []string{op.value}
		}
		if op.comment != "" {
			e.Comment = &op.comment
		}
		return e
	}
	// A copy: a knftables.Interface may write into the objects it is given
	// (the Fake sets their Handle), and some ops are shared between syncs.
	switch o := op.obj.(type) {
	case *knftables.Table:
		return copyOf(o)
	case *knftables.Chain:
		return copyOf(o)
	case *knftables.Set:
		return copyOf(o)
	case *knftables.Map:
		return copyOf(o)
	case *knftables.Counter:
		return copyOf(o)
	}
	return op.obj
}

func copyOf[T any](o *T) *T {
	c := *o
	return &c
}

// addTo appends the operations to a knftables transaction.
func (o nftOps) addTo(tx *knftables.Transaction) {
	for i := range o {
		obj := o[i].knftables()
		switch o[i].verb {
		case nftAdd:
			tx.Add(obj)
		case nftFlush:
			tx.Flush(obj)
		case nftDelete:
			tx.Delete(obj)
		}
	}
}

// script writes the operations as nft commands for `nft -f`, in the syntax
// knftables writes. With batch, consecutive operations on elements of one
// set or map with the same verb become one command listing them all, which
// nft parses and the kernel applies in one message instead of one each.
func (o nftOps) script(family knftables.Family, batch bool) []byte {
	return o.appendScript(make([]byte, 0, o.size()), family, batch)
}

// size is about the length of the script.
func (o nftOps) size() int {
	size := 0
	for i := range o {
		size += len(o[i].name) + len(o[i].text) + len(o[i].value) + len(o[i].comment) + 48
	}
	return size
}

// script writes the sync as nft commands (see nftOps.script).
func (s *NFTablesSync) script(batch bool) []byte {
	size := 64 + s.ops.size() + s.elems.size() + slotScriptSize(s.slots)
	ports := s.portOps()
	for _, p := range ports {
		size += p.size()
	}
	b := make([]byte, 0, size)
	b = s.ops[:s.portAt].appendScript(b, s.family, batch)
	for _, p := range ports {
		b = p.appendScript(b, s.family, batch)
	}
	b = s.elems.appendScript(b, s.family, batch)
	b = s.ops[s.portAt:].appendScript(b, s.family, batch)
	return appendSlotScript(b, s.family, s.slots)
}

func (o nftOps) appendScript(b []byte, family knftables.Family, batch bool) []byte {
	prefix := " " + string(family) + " " + NFTablesTable + " "
	for i := 0; i < len(o); i++ {
		op := &o[i]
		switch op.kind {
		case nftObject:
			if op.text != "" { // written in advance
				b = append(b, op.text...)
				b = append(b, '\n')
				continue
			}
			// The few top-level objects are written by knftables itself.
			one := nftOps{*op}
			tx := knftables.NewFake(family, NFTablesTable).NewTransaction()
			one.addTo(tx)
			b = append(b, tx.String()...)
		case nftChain:
			b = append(b, nftVerbs[op.verb]...)
			b = append(b, " chain"...)
			b = append(b, prefix...)
			b = append(b, op.name...)
			b = append(b, '\n')
		case nftRule:
			b = append(b, "add rule"...)
			b = append(b, prefix...)
			b = append(b, op.name...)
			b = append(b, ' ')
			b = appendRule(b, op)
			b = append(b, '\n')
		case nftSetElem, nftMapElem:
			b = appendElementHead(b, family, op)
			b = appendElement(b, op)
			for batch && i+1 < len(o) && o[i+1].kind == op.kind && o[i+1].verb == op.verb && o[i+1].name == op.name {
				i++
				b = append(b, ", "...)
				b = appendElement(b, &o[i])
			}
			b = append(b, " }\n"...)
		}
	}
	return b
}

// appendElementHead starts an element command, "add element ip
// kube-proxy NAME { ": its elements and " }" follow.
func appendElementHead(b []byte, family knftables.Family, op *nftOp) []byte {
	b = append(b, nftVerbs[op.verb]...)
	b = append(b, " element "...)
	b = append(b, family...)
	b = append(b, " "+NFTablesTable+" "...)
	b = append(b, op.name...)
	return append(b, " { "...)
}

func appendRule(b []byte, op *nftOp) []byte {
	b = append(b, op.text...)
	if op.comment != "" {
		b = append(b, " comment "...)
		b = strconv.AppendQuote(b, op.comment)
	}
	return b
}

func appendElement(b []byte, op *nftOp) []byte {
	b = append(b, op.text...)
	if op.verb == nftAdd {
		if op.comment != "" {
			b = append(b, " comment "...)
			b = strconv.AppendQuote(b, op.comment)
		}
		if op.value != "" {
			b = append(b, " : "...)
			b = append(b, op.value...)
		}
	}
	return b
}

// blockScript is the script of a sync into a new table: the per-port
// chains and their rules as one `table { chain { rules } }` block (a new
// chain needs no flush), after the ports' sets, which rules refer to.
func (s *NFTablesSync) blockScript(batch bool) []byte {
	blocks := s.blocks
	if blocks == nil {
		// written as operations: the same text, from them
		var w nftWriter
		block := nftBlock{text: []byte{}}
		for _, p := range s.ports {
			block.add(&w, s.family, p)
		}
		blocks = []nftBlock{block}
	}
	before, after := s.ops[:s.portAt], s.ops[s.portAt:]
	size := 64 + before.size() + s.elems.size() + after.size() + slotScriptSize(s.slots)
	for i := range blocks {
		size += len(blocks[i].objects) + len(blocks[i].text)
	}
	b := make([]byte, 0, size)
	b = before.appendScript(b, s.family, batch)
	for i := range blocks {
		b = append(b, blocks[i].objects...)
	}
	b = append(b, "table "...)
	b = append(b, s.family...)
	b = append(b, " "+NFTablesTable+" {\n"...)
	for i := range blocks {
		b = append(b, blocks[i].text...)
	}
	b = append(b, "}\n"...)
	b = s.elems.appendScript(b, s.family, batch)
	b = after.appendScript(b, s.family, batch)
	return appendSlotScript(b, s.family, s.slots)
}

// nftBlock is the text of some ports' operations in a table block: their
// objects' commands, which go before the block, and their chains, with
// how many operations that is.
type nftBlock struct {
	objects, text []byte
	ops           int
}

// clone is a copy of the block, no larger than it needs to be.
func (b *nftBlock) clone() nftBlock {
	return nftBlock{objects: bytes.Clone(b.objects), text: bytes.Clone(b.text), ops: b.ops}
}

// add writes a port's operations p to the block, with w's scratch space.
func (b *nftBlock) add(w *nftWriter, family knftables.Family, p nftOps) {
	for i := range p {
		if p[i].kind == nftObject {
			b.objects = p[i:i+1].appendScript(b.objects, family, false)
		}
	}
	b.text = w.block.appendChains(b.text, p)
	b.ops += len(p)
}

// portBlock writes a port's chains in a table block, with scratch space
// kept from one port to the next.
type portBlock struct {
	chains      []string
	index       map[string]int // of chains, when there are many
	first, last []int          // a chain's first and last rule
	next        []int          // a rule's next rule in its chain
}

// appendChains writes p's chains in the order they were added (as the
// commands would create them), each with its rules; a port's rules are
// for its own chains.
func (pb *portBlock) appendChains(b []byte, p nftOps) []byte {
	pb.chains, pb.first, pb.last = pb.chains[:0], pb.first[:0], pb.last[:0]
	pb.next = slices.Grow(pb.next[:0], len(p))[:len(p)]
	clear(pb.index)
	indexOf := func(name string) int {
		if len(pb.chains) <= 8 {
			return slices.Index(pb.chains, name)
		}
		if pb.index == nil {
			pb.index = map[string]int{}
		}
		for i := len(pb.index); i < len(pb.chains); i++ { // chains are unique
			pb.index[pb.chains[i]] = i
		}
		if i, ok := pb.index[name]; ok {
			return i
		}
		return -1
	}
	for i := range p {
		op := &p[i]
		if !(op.kind == nftChain && op.verb == nftAdd) && op.kind != nftRule {
			continue
		}
		c := indexOf(op.name)
		if c < 0 {
			c = len(pb.chains)
			pb.chains = append(pb.chains, op.name)
			pb.first, pb.last = append(pb.first, -1), append(pb.last, -1)
		}
		if op.kind != nftRule {
			continue
		}
		pb.next[i] = -1
		if pb.last[c] < 0 {
			pb.first[c] = i
		} else {
			pb.next[pb.last[c]] = i
		}
		pb.last[c] = i
	}
	for c, name := range pb.chains {
		b = append(b, "chain "...)
		b = append(b, name...)
		b = append(b, " {\n"...)
		for i := pb.first[c]; i >= 0; i = pb.next[i] {
			b = appendRule(b, &p[i])
			b = append(b, '\n')
		}
		b = append(b, "}\n"...)
	}
	return b
}
