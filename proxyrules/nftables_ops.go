package proxyrules

import (
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
	text    string           // rule; element key, its parts joined by " . "
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
	return op.obj
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
	size := 64
	for i := range o {
		size += len(o[i].name) + len(o[i].text) + len(o[i].value) + len(o[i].comment) + 48
	}
	b := make([]byte, 0, size)
	prefix := " " + string(family) + " " + NFTablesTable + " "
	for i := 0; i < len(o); i++ {
		op := &o[i]
		switch op.kind {
		case nftObject:
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
			b = append(b, op.text...)
			if op.comment != "" {
				b = append(b, " comment "...)
				b = strconv.AppendQuote(b, op.comment)
			}
			b = append(b, '\n')
		case nftSetElem, nftMapElem:
			b = append(b, nftVerbs[op.verb]...)
			b = append(b, " element"...)
			b = append(b, prefix...)
			b = append(b, op.name...)
			b = append(b, " { "...)
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
