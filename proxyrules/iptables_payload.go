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

// tail is what every payload ends with: the deletion of stale chains and
// the rules that must come last.
func tail(cfg *Config, deleted []string) *section {
	var t section
	for _, c := range deleted {
		t.natChains.chain(c)
		t.natRules.write("-X", c)
	}
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

// assemble joins head, the ports' records (their own chains where written)
// and tail into the payload, allocated once at its exact size. With
// repoint (a full sync, where every port is written) the records are made
// to point into the payload, so they no longer need the writers' blocks.
func assemble(h, t *section, recs []*appliedPort, written []bool, repoint bool) []byte {
	const filterStart, natStart, end = "*filter\n", "COMMIT\n*nat\n", "COMMIT\n"
	size := len(filterStart) + len(natStart) + len(end)
	for _, sec := range []*section{h, t} {
		size += len(sec.filterChains.buf) + len(sec.filterRules.buf) + len(sec.natChains.buf) + len(sec.natRules.buf)
	}
	for i, rec := range recs {
		size += len(rec.filter) + len(rec.natTop)
		if written[i] {
			size += len(rec.ownChains) + len(rec.ownRules)
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
	out = append(out, filterStart...)
	out = append(out, h.filterChains.buf...)
	out = append(out, t.filterChains.buf...)
	out = append(out, h.filterRules.buf...)
	for _, rec := range recs {
		put(&rec.filter)
	}
	out = append(out, t.filterRules.buf...)
	out = append(out, natStart...)
	out = append(out, h.natChains.buf...)
	for i, rec := range recs {
		if written[i] {
			put(&rec.ownChains)
		}
	}
	out = append(out, t.natChains.buf...)
	out = append(out, h.natRules.buf...)
	// The ports' nat rules are most of the payload: copied in two halves
	// at once when they are big.
	natSize := func(i int) int {
		if written[i] {
			return len(recs[i].natTop) + len(recs[i].ownRules)
		}
		return len(recs[i].natTop)
	}
	copyNat := func(from, to, at int) {
		for i := from; i < to; i++ {
			for _, b := range []*[]byte{&recs[i].natTop, &recs[i].ownRules} {
				if b == &recs[i].ownRules && !written[i] {
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
	at, natEnd := len(out), size-len(t.natRules.buf)-len(end)
	out = out[:natEnd]
	if half := (natEnd - at) / 2; half < 4<<20 || runtime.GOMAXPROCS(0) == 1 {
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
	out = append(out, t.natRules.buf...)
	return append(out, end...)
}
