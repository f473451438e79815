package conformance

import (
	"fmt"
	"slices"
	"strings"
)

// iptablesDump is a restore payload split by table and chain.
type iptablesDump map[string]map[string][]string // table -> chain -> rules

func parseRestore(payload []byte) (iptablesDump, error) {
	d := iptablesDump{}
	var table string
	for n, line := range strings.Split(string(payload), "\n") {
		switch {
		case line == "" || line == "COMMIT":
		case strings.HasPrefix(line, "*"):
			table = line[1:]
			d[table] = map[string][]string{}
		case strings.HasPrefix(line, ":"):
			chain := strings.Fields(line[1:])[0]
			d[table][chain] = d[table][chain][:0:0]
		case strings.HasPrefix(line, "-A "):
			chain := strings.Fields(line)[1]
			if _, ok := d[table][chain]; !ok {
				return nil, fmt.Errorf("line %d: rule for undeclared chain %s", n+1, chain)
			}
			if rule, keep := normalizeRule(line); keep {
				d[table][chain] = append(d[table][chain], rule)
			}
		case strings.HasPrefix(line, "-X "):
			delete(d[table], strings.Fields(line)[1])
		default:
			return nil, fmt.Errorf("line %d: unexpected %q", n+1, line)
		}
	}
	return d, nil
}

// normalizeRule drops what nodekit deliberately leaves out: kube-proxy's
// nfacct counters, which feed its metrics and change no verdict. The
// INVALID drop loses its counter match; the extra localhost NodePort rule,
// there only to count packets before the general NodePort rule sends them
// to the same chain, goes.
func normalizeRule(rule string) (string, bool) {
	if strings.Contains(rule, " -m nfacct --nfacct-name localhost_nps_accepted_pkts") {
		return "", false
	}
	return strings.Replace(rule, " -m nfacct --nfacct-name ct_state_invalid_dropped_pkts", "", 1), true
}

// orderFree are the chains whose rule order kube-proxy leaves to map
// iteration (one block of rules per ServicePort, in random order); their
// rules are compared as multisets. In every other chain order is meaning.
var orderFree = map[string]bool{
	"KUBE-SERVICES": true, "KUBE-NODEPORTS": true, "KUBE-EXTERNAL-SERVICES": true, "KUBE-PROXY-FIREWALL": true,
}

// diffDumps returns the differences between upstream's and nodekit's rules.
func diffDumps(upstream, nodekit iptablesDump) []string {
	var diffs []string
	for _, table := range []string{"filter", "nat"} {
		u, n := upstream[table], nodekit[table]
		for chain, ur := range u {
			nr, ok := n[chain]
			if !ok {
				diffs = append(diffs, fmt.Sprintf("%s: chain %s missing in nodekit (upstream: %q)", table, chain, ur))
				continue
			}
			if orderFree[chain] {
				// The nodeports jump must stay the last rule of nat KUBE-SERVICES.
				if table == "nat" && chain == "KUBE-SERVICES" && len(ur) > 0 && len(nr) > 0 && ur[len(ur)-1] != nr[len(nr)-1] {
					diffs = append(diffs, fmt.Sprintf("nat KUBE-SERVICES last rule: upstream %q, nodekit %q", ur[len(ur)-1], nr[len(nr)-1]))
				}
				ur, nr = slices.Sorted(slices.Values(ur)), slices.Sorted(slices.Values(nr))
			}
			if !slices.Equal(ur, nr) {
				diffs = append(diffs, fmt.Sprintf("%s %s:\n  only upstream: %q\n  only nodekit:  %q", table, chain, minus(ur, nr), minus(nr, ur)))
			}
		}
		for chain := range n {
			if _, ok := u[chain]; !ok {
				diffs = append(diffs, fmt.Sprintf("%s: chain %s only in nodekit: %q", table, chain, n[chain]))
			}
		}
	}
	return diffs
}

// minus is a without the rules in b, or a itself when both hold the same
// rules in another order.
func minus(a, b []string) []string {
	var out []string
	for _, r := range a {
		if !slices.Contains(b, r) {
			out = append(out, r)
		}
	}
	if out == nil {
		return a
	}
	return out
}
