package proxyrules

import (
	"runtime"
	"sync"

	corev1 "k8s.io/api/core/v1"
)

// section is lines of the payload's four parts, in the order they are
// written in each table: chain declarations, then rules.
type section struct{ filterChains, filterRules, natChains, natRules lines }

// head is what every payload starts with: the top-level chains and the
// masquerading rules.
func head(cfg *Config) *section {
	var h section
	mark := cfg.masqueradeMark()
	for _, c := range []string{chainServices, chainExternalServices, chainForward, chainNodePorts, chainProxyFirewall} {
		h.filterChains.chain(c)
	}
	for _, c := range []string{chainServices, chainNodePorts, chainPostrouting, chainMarkMasq} {
		h.natChains.chain(c)
	}
	masqMatch := mark + "/" + mark
	h.natRules.write("-A", chainPostrouting, "-m", "mark", "!", "--mark", masqMatch, "-j", "RETURN")
	h.natRules.write("-A", chainPostrouting, "-j", "MARK", "--xor-mark", mark)
	h.natRules.write("-A", chainPostrouting, "-m", "comment", "--comment", `"kubernetes service traffic requiring SNAT"`, "-j", "MASQUERADE", "--random-fully")
	h.natRules.write("-A", chainMarkMasq, "-j", "MARK", "--or-mark", mark)
	if cfg.Family == corev1.IPv4Protocol && cfg.LocalhostNodePorts {
		// The route_localnet mitigation (https://issue.k8s.io/90259); the
		// kubelet writes the same rule.
		h.filterChains.chain(chainKubeletFirewall)
		h.filterRules.write("-A", chainKubeletFirewall, "-m", "comment", "--comment", `"block incoming localnet connections"`,
			"-d", "127.0.0.0/8", "!", "-s", "127.0.0.0/8", "-m", "conntrack", "!", "--ctstate", "RELATED,ESTABLISHED,DNAT", "-j", "DROP")
	}
	return &h
}

// deletions deletes stale chains: declared (so flushed), then deleted.
func deletions(chains []string) *section {
	var d section
	for _, c := range chains {
		d.natChains.chain(c)
		d.natRules.write("-X", c)
	}
	return &d
}

// tail is the top-level rules that must come last.
func tail(cfg *Config) *section {
	var t section
	ipv4 := cfg.Family == corev1.IPv4Protocol
	comment := `"kubernetes service nodeports; NOTE: this must be the last rule in this chain"`
	if len(cfg.NodePortAddresses) == 0 {
		dst := []string{"-m", "addrtype", "--dst-type", "LOCAL"}
		// Localhost NodePorts never work on IPv6, and on IPv4 only with
		// route_localnet, which LocalhostNodePorts stands for.
		if !ipv4 {
			dst = append(dst, "!", "-d", "::1/128")
		} else if !cfg.LocalhostNodePorts {
			dst = append(dst, "!", "-d", "127.0.0.0/8")
		}
		t.natRules.write(append(append([]string{"-A", chainServices, "-m", "comment", "--comment", comment}, dst...), "-j", chainNodePorts)...)
	} else {
		for _, ip := range cfg.NodePortAddresses {
			if ip.IsLoopback() && (!ipv4 || !cfg.LocalhostNodePorts) {
				continue // upstream logs and skips these
			}
			t.natRules.write("-A", chainServices, "-m", "comment", "--comment", comment, "-d", ip.String(), "-j", chainNodePorts)
		}
	}
	if !cfg.ConntrackTCPBeLiberal {
		t.filterRules.write("-A", chainForward, "-m", "conntrack", "--ctstate", "INVALID", "-j", "DROP")
	}
	mark := cfg.masqueradeMark()
	masqMatch := mark + "/" + mark
	t.filterRules.write("-A", chainForward, "-m", "comment", "--comment", `"kubernetes forwarding rules"`, "-m", "mark", "--mark", masqMatch, "-j", "ACCEPT")
	t.filterRules.write("-A", chainForward, "-m", "comment", "--comment", `"kubernetes forwarding conntrack rule"`, "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT")
	return &t
}

// payloadParts is what a payload is made of. Without top, the top-level
// chains (head, tail and the ports' lines in them) are left out, and with
// them the filter table.
type payloadParts struct {
	top                   bool
	head, deletions, tail *section
	recs                  []*appliedPort
	written               []bool // the ports whose own chains go in
}

// assemble joins the parts into the payload, allocated once at its exact
// size: per table, chain declarations then rules; in nat, each port's
// top-level lines then its own chains' rules. With repoint (a full sync,
// where every port is written) the records are made to point into the
// payload, so they no longer need the writers' blocks.
func assemble(pp payloadParts, repoint bool) []byte {
	recs, written := pp.recs, pp.written
	h, d, t := pp.head, pp.deletions, pp.tail
	if !pp.top {
		h, t = &section{}, &section{}
	}
	const filterStart, natStart, end = "*filter\n", "*nat\n", "COMMIT\n"
	size := len(natStart) + len(end)
	if pp.top {
		size += len(filterStart) + len(end)
	}
	for _, sec := range []*section{h, d, t} {
		size += len(sec.filterChains.buf) + len(sec.filterRules.buf) + len(sec.natChains.buf) + len(sec.natRules.buf)
	}
	natSize := func(i int) int {
		n := 0
		if pp.top {
			n += len(recs[i].natTop)
		}
		if written[i] {
			n += len(recs[i].ownRules)
		}
		return n
	}
	for i, rec := range recs {
		size += natSize(i)
		if pp.top {
			size += len(rec.filter)
		}
		if written[i] {
			size += len(rec.ownChains)
		}
	}
	out := make([]byte, 0, size)
	// put appends b to out and, with repoint, makes b the copy.
	put := func(b *[]byte) {
		at := len(out)
		out = append(out, *b...)
		if repoint {
			*b = out[at:len(out):len(out)]
		}
	}
	if pp.top {
		out = append(out, filterStart...)
		out = append(out, h.filterChains.buf...)
		out = append(out, h.filterRules.buf...)
		for _, rec := range recs {
			put(&rec.filter)
		}
		out = append(out, t.filterRules.buf...)
		out = append(out, end...)
	}
	out = append(out, natStart...)
	out = append(out, h.natChains.buf...)
	for i, rec := range recs {
		if written[i] {
			put(&rec.ownChains)
		}
	}
	out = append(out, d.natChains.buf...)
	out = append(out, h.natRules.buf...)
	// The ports' nat rules are most of the payload: copied in two halves
	// at once when they are big.
	copyNat := func(from, to, at int) {
		for i := from; i < to; i++ {
			for _, b := range []*[]byte{&recs[i].natTop, &recs[i].ownRules} {
				if (b == &recs[i].natTop && !pp.top) || (b == &recs[i].ownRules && !written[i]) {
					continue
				}
				n := copy(out[at:], *b)
				if repoint {
					*b = out[at : at+n : at+n]
				}
				at += n
			}
		}
	}
	at, natEnd := len(out), size-len(d.natRules.buf)-len(t.natRules.buf)-len(end)
	out = out[:natEnd]
	if half := (natEnd - at) / 2; half < 1<<20 || runtime.GOMAXPROCS(0) == 1 {
		copyNat(0, len(recs), at)
	} else {
		split, splitAt := 0, at
		for ; splitAt-at < half; split++ {
			splitAt += natSize(split)
		}
		var wg sync.WaitGroup
		wg.Go(func() { copyNat(split, len(recs), splitAt) })
		copyNat(0, split, at)
		wg.Wait()
	}
	out = append(out, d.natRules.buf...)
	out = append(out, t.natRules.buf...)
	return append(out, end...)
}
