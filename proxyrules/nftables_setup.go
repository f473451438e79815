package proxyrules

import (
	"strings"

	"sigs.k8s.io/knftables"
)

type nftBaseChain struct {
	name     string
	typ      knftables.BaseChainType
	hook     knftables.BaseChainHook
	priority knftables.BaseChainPriority
}

var nftBaseChains = []nftBaseChain{
	{nftFilterPreroutingPreDNAT, knftables.FilterType, knftables.PreroutingHook, knftables.DNATPriority + "-10"},
	{nftFilterOutputPreDNAT, knftables.FilterType, knftables.OutputHook, knftables.DNATPriority + "-10"},
	{nftFilterInput, knftables.FilterType, knftables.InputHook, knftables.FilterPriority},
	{nftFilterForward, knftables.FilterType, knftables.ForwardHook, knftables.FilterPriority},
	{nftFilterOutput, knftables.FilterType, knftables.OutputHook, knftables.FilterPriority},
	{nftNATPrerouting, knftables.NATType, knftables.PreroutingHook, knftables.DNATPriority},
	{nftNATOutput, knftables.NATType, knftables.OutputHook, knftables.DNATPriority},
	{nftNATPostrouting, knftables.NATType, knftables.PostroutingHook, knftables.SNATPriority},
}

// nftJumps are the rules from base chains to the top-level chains.
var nftJumps = []struct{ to, from, match string }{
	{nftNodePortEPCheck, nftFilterInput, "ct state new"},
	{nftServiceEPCheck, nftFilterInput, "ct state new"},
	{nftServiceEPCheck, nftFilterForward, "ct state new"},
	{nftServiceEPCheck, nftFilterOutput, "ct state new"},
	{nftFirewallCheck, nftFilterPreroutingPreDNAT, "ct state new"},
	{nftFirewallCheck, nftFilterOutputPreDNAT, "ct state new"},
	{nftServices, nftNATOutput, ""},
	{nftServices, nftNATPrerouting, ""},
	{nftMasquerading, nftNATPostrouting, ""},
	{nftClusterIPsCheck, nftFilterForward, "ct state new"},
	{nftClusterIPsCheck, nftFilterOutput, "ct state new"},
}

// setup writes what a full sync rewrites: the table, its base and
// top-level chains with their fixed rules, and the shared sets and maps.
// recreate also deletes and recreates the base chains, which kube-proxy
// does once per run so that changed chain properties apply.
func (w *nftWriter) setup(o *nftOps, recreate bool) {
	at := len(*o)
	defer func() { writeObjects((*o)[at:], knftables.Family(w.ip)) }()
	ip, addr := w.ip, w.addrType
	notLocalhost := "ip daddr != 127.0.0.0/8"
	if ip == "ip6" {
		notLocalhost = "ip6 daddr != ::1"
	}
	o.object(nftAdd, &knftables.Table{Comment: ptrTo("rules for kube-proxy")})
	if recreate {
		for _, bc := range nftBaseChains {
			o.chain(nftAdd, bc.name)
			o.chain(nftDelete, bc.name)
		}
	}
	for _, bc := range nftBaseChains {
		o.object(nftAdd, &knftables.Chain{Name: bc.name, Type: ptrTo(bc.typ), Hook: ptrTo(bc.hook), Priority: ptrTo(bc.priority)})
		o.chain(nftFlush, bc.name)
	}
	created := map[string]bool{}
	for _, j := range nftJumps {
		if !created[j.to] {
			created[j.to] = true
			o.ensureChain(j.to)
		}
		rule := "jump " + j.to
		if j.match != "" {
			rule = j.match + " " + rule
		}
		o.rule(j.from, rule, "")
	}

	o.object(nftAdd, &knftables.Set{Name: nftHairpin, Type: addr + " . " + addr + " . inet_proto . inet_service",
		Comment: ptrTo("service hairpin connections")})
	mark := w.cfg.masqueradeMark()
	o.rule(nftMasquerading, "mark and "+mark+" != 0 mark set mark xor "+mark+" masquerade fully-random", "")
	o.rule(nftMasquerading, "ct status dnat "+ip+" saddr . "+ip+" daddr . meta l4proto . th dport @"+nftHairpin+" masquerade fully-random", "")

	o.object(nftAdd, &knftables.Set{Name: nftClusterIPs, Type: addr, Comment: ptrTo("Active ClusterIPs")})
	o.rule(nftClusterIPsCheck, ip+" daddr @"+nftClusterIPs+" reject", "Reject traffic to invalid ports of ClusterIPs")
	if len(w.g.ServiceCIDRs) > 0 {
		cidrs := make([]string, len(w.g.ServiceCIDRs))
		for i, c := range w.g.ServiceCIDRs {
			cidrs[i] = c.Masked().String()
		}
		o.rule(nftClusterIPsCheck, ip+" daddr { "+strings.Join(cidrs, ",")+" } drop", "Drop traffic to unallocated ClusterIPs")
	}

	// nodeport-ips exists only with restricted NodePort addresses; the
	// add before the delete makes the delete succeed either way.
	o.object(nftAdd, &knftables.Set{Name: nftNodePortIPs, Type: addr, Comment: ptrTo("IPs that accept NodePort traffic")})
	matchAll := len(w.cfg.NodePortAddresses) == 0
	if matchAll {
		o.object(nftDelete, &knftables.Set{Name: nftNodePortIPs})
	} else {
		o.object(nftFlush, &knftables.Set{Name: nftNodePortIPs})
		for _, a := range w.cfg.NodePortAddresses {
			if !a.IsLoopback() {
				*o = append(*o, nftOp{verb: nftAdd, kind: nftSetElem, name: nftNodePortIPs, text: a.String()})
			}
		}
	}

	o.object(nftAdd, &knftables.Map{Name: nftNoEndpointServices, Type: addr + " . inet_proto . inet_service : verdict",
		Comment: ptrTo("vmap to drop or reject packets to services with no endpoints")})
	o.object(nftAdd, &knftables.Map{Name: nftNoEndpointNodePort, Type: "inet_proto . inet_service : verdict",
		Comment: ptrTo("vmap to drop or reject packets to service nodeports with no endpoints")})
	o.object(nftAdd, &knftables.Chain{Name: nftReject, Comment: ptrTo("helper for @no-endpoint-services / @no-endpoint-nodeports")})
	o.chain(nftFlush, nftReject)
	o.rule(nftReject, "reject", "")
	o.rule(nftServiceEPCheck, ip+" daddr . meta l4proto . th dport vmap @"+nftNoEndpointServices, "")
	if matchAll {
		o.rule(nftNodePortEPCheck, notLocalhost+" meta l4proto . th dport vmap @"+nftNoEndpointNodePort, "")
	} else {
		o.rule(nftNodePortEPCheck, ip+" daddr @"+nftNodePortIPs+" meta l4proto . th dport vmap @"+nftNoEndpointNodePort, "")
	}

	// Localhost NodePorts (the alpha KubeProxyNFTablesLocalhostNodePorts
	// feature, off by default) are not served: their objects are removed.
	o.object(nftAdd, &knftables.Map{Name: nftLocalhostReject, Type: "inet_proto . inet_service : verdict",
		Comment: ptrTo("localhost NodePorts rejected by kube-proxy")})
	o.object(nftDelete, &knftables.Map{Name: nftLocalhostReject})
	for _, proto := range []string{"tcp", "udp", "sctp"} {
		o.chain(nftAdd, "localhost-nodeport-reject-"+proto)
		o.chain(nftDelete, "localhost-nodeport-reject-"+proto)
		o.object(nftAdd, &knftables.Counter{Name: "localhost-nodeport-rejected-" + proto})
		o.object(nftDelete, &knftables.Counter{Name: "localhost-nodeport-rejected-" + proto})
	}

	o.object(nftAdd, &knftables.Map{Name: nftFirewallIPs, Type: addr + " . inet_proto . inet_service : verdict",
		Comment: ptrTo("destinations that are subject to LoadBalancerSourceRanges")})
	o.rule(nftFirewallCheck, ip+" daddr . meta l4proto . th dport vmap @"+nftFirewallIPs, "")

	o.object(nftAdd, &knftables.Map{Name: nftServiceIPs, Type: addr + " . inet_proto . inet_service : verdict",
		Comment: ptrTo("ClusterIP, ExternalIP and LoadBalancer IP traffic")})
	o.object(nftAdd, &knftables.Map{Name: nftServiceNodePorts, Type: "inet_proto . inet_service : verdict",
		Comment: ptrTo("NodePort traffic")})
	switch {
	case w.cfg.MasqueradeAll:
		o.rule(nftServices, ip+" daddr @"+nftClusterIPs+" "+w.masq, "masquerade all clusterIP traffic")
	case w.notLocal != "":
		// Off-cluster traffic to a VIP may bounce off-node: masquerade it.
		o.rule(nftServices, ip+" daddr @"+nftClusterIPs+" "+w.notLocal+" "+w.masq, "masquerade clusterIP traffic from outside cluster")
	}
	o.rule(nftServices, ip+" daddr . meta l4proto . th dport vmap @"+nftServiceIPs, "")
	if matchAll {
		o.rule(nftServices, "fib daddr type local "+notLocalhost+" meta l4proto . th dport vmap @"+nftServiceNodePorts, "")
	} else {
		o.rule(nftServices, ip+" daddr @"+nftNodePortIPs+" meta l4proto . th dport vmap @"+nftServiceNodePorts, "")
	}
}

// writeObjects writes the commands of the objects among ops in advance,
// through one knftables transaction (which writes a line per operation)
// rather than one each.
func writeObjects(ops nftOps, family knftables.Family) {
	var objects nftOps
	for i := range ops {
		if ops[i].kind == nftObject && ops[i].text == "" {
			objects = append(objects, ops[i])
		}
	}
	tx := knftables.NewFake(family, NFTablesTable).NewTransaction()
	objects.addTo(tx)
	lines := strings.Split(strings.TrimSuffix(tx.String(), "\n"), "\n")
	if len(lines) != len(objects) {
		return // (not a line each: appendScript writes them one by one)
	}
	for i := range ops {
		if ops[i].kind == nftObject && ops[i].text == "" {
			ops[i].text, lines = lines[0], lines[1:]
		}
	}
}
