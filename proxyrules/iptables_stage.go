package proxyrules

import (
	"bytes"
	"strings"
)

// defaultStageLines keeps each iptables-nft-restore of a staged load short
// enough that its chain list stays small, and long enough that starting
// the tool (a few ms) does not dominate: 1,000 Services x 10 endpoints
// load in 23 restores, 10,000 in 211 (1,000 and 4,000 lines measured
// within noise of it at 10,000 Services; 8,000 was a third slower).
const defaultStageLines = 2000

// stagePayload cuts a full payload into inputs for several
// iptables-restore --noflush runs that together load the same rules.
//
// Why: for each command of its input, iptables-nft-restore (1.8.9 here,
// Debian 12's) inserts the chain the command names and the chain it jumps
// to into a sorted linked list, walking the list from its start
// (cache_chain_list_insert in iptables/nft-cache.c: the chains whose cache
// it will fetch); perf shows 85% of a load there. A load is thus
// quadratic in the chains of one input: 1,000 Services x 10 endpoints
// (11k chains) take about 5 s, 3,000 about 3 minutes, and 10,000 did not
// finish in 5 minutes (nor did kube-proxy's own payload in 15). No order
// of the lines avoids it, since finding a name already listed costs as
// much as inserting it; fewer chains per input does.
//
// The stages:
//
//  1. the nat chains that per-ServicePort chains jump to (KUBE-MARK-MASQ);
//  2. the per-ServicePort chains (KUBE-SVC/SVL/EXT/FW/SEP), the chains of
//     one ServicePort always in the same stage, about perStage lines each;
//  3. the other tables, the other nat chains (KUBE-SERVICES,
//     KUBE-NODEPORTS, KUBE-POSTROUTING) and the deletions of stale chains.
//
// Nothing jumps to a chain of stage 2 until stage 3 commits, so when
// nothing jumped to Service chains before, traffic sees the new rules at
// once, as with one restore. Over rules in use it would not, and Apply
// does not stage then. A payload that fits one stage 2 is returned whole.
func stagePayload(payload []byte, perStage int) [][]byte {
	type chain struct {
		decl  []byte
		rules [][]byte
	}
	var (
		others bytes.Buffer // tables other than nat, whole
		nat    = map[string]*chain{}
		order  []string // nat chains as first seen
		tail   [][]byte // deletions of stale chains, and anything else
		inNAT  bool
	)
	get := func(name string) *chain {
		c := nat[name]
		if c == nil {
			c = &chain{}
			nat[name] = c
			order = append(order, name)
		}
		return c
	}
	for line := range bytes.Lines(payload) {
		if line[0] == '*' {
			inNAT = string(bytes.TrimSpace(line)) == "*nat"
		}
		if !inNAT {
			others.Write(line)
			continue
		}
		f := bytes.Fields(line)
		switch {
		case len(f) == 0 || line[0] == '*' || string(f[0]) == "COMMIT":
		case line[0] == ':':
			get(string(f[0][1:])).decl = line
		case len(f) > 1 && string(f[0]) == "-A":
			c := get(string(f[1]))
			c.rules = append(c.rules, line)
		default:
			tail = append(tail, line)
		}
	}

	// The chains of one ServicePort are those its chains jump among.
	group := map[string]string{}
	var root func(string) string
	root = func(n string) string {
		if g, ok := group[n]; ok && g != n {
			group[n] = root(g)
			return group[n]
		}
		group[n] = n
		return n
	}
	jumpedTo := map[string]bool{}
	for _, name := range order {
		if !perPortChain(name) {
			continue
		}
		root(name)
		for _, r := range nat[name].rules {
			switch t := jumpTarget(r); {
			case perPortChain(t):
				group[root(t)] = root(name)
			case nat[t] != nil:
				jumpedTo[t] = true
			}
		}
	}
	var first, last, roots []string
	members := map[string][]string{}
	for _, name := range order {
		switch {
		case perPortChain(name):
			r := root(name)
			if members[r] == nil {
				roots = append(roots, r)
			}
			members[r] = append(members[r], name)
		case jumpedTo[name]:
			first = append(first, name)
		default:
			last = append(last, name)
		}
	}
	var stages [][]byte
	natStage := func(pre []byte, names []string, post [][]byte) {
		var buf bytes.Buffer
		buf.Write(pre)
		buf.WriteString("*nat\n")
		for _, n := range names {
			buf.Write(nat[n].decl)
		}
		for _, n := range names {
			for _, r := range nat[n].rules {
				buf.Write(r)
			}
		}
		for _, l := range post {
			buf.Write(l)
		}
		buf.WriteString("COMMIT\n")
		stages = append(stages, buf.Bytes())
	}
	if len(first) > 0 {
		natStage(nil, first, nil)
	}
	perPort := 0
	for ; len(roots) > 0; perPort++ {
		var names []string
		// Declarations count too: a stale chain is declared (flushed) and
		// has no rules, and a restart may bring many.
		for lines := 0; len(roots) > 0 && lines < perStage; roots = roots[1:] {
			for _, n := range members[roots[0]] {
				names = append(names, n)
				lines += 1 + len(nat[n].rules)
			}
		}
		natStage(nil, names, nil)
	}
	if perPort <= 1 {
		return [][]byte{payload}
	}
	natStage(others.Bytes(), last, tail)
	return stages
}

// perPortChain says whether a nat chain belongs to one ServicePort.
func perPortChain(name string) bool {
	for _, p := range []string{prefixSVC, prefixSVL, prefixEXT, prefixFW, prefixSEP} {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// jumpTarget is the chain or target a rule jumps to ("" if none).
func jumpTarget(rule []byte) string {
	_, after, ok := bytes.Cut(rule, []byte(" -j "))
	if !ok {
		return ""
	}
	if f := bytes.Fields(after); len(f) > 0 {
		return string(f[0])
	}
	return ""
}
