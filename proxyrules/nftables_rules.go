package proxyrules

import (
	"net/netip"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/knftables"
)

// nftWriter writes the rules of one sync; everything here follows
// setupNFTables and syncProxyRules in pkg/proxy/nftables/proxier.go.
type nftWriter struct {
	g        *NFTables
	cfg      *Config
	ip       string // "ip" or "ip6", as in "ip daddr"
	addrType string // "ipv4_addr" or "ipv6_addr"
	masq     string // the rule that marks a packet for masquerade
	notLocal string // the local-traffic detector, negated ("" without a cluster CIDR)
	local    string
	buf      []byte
	arena    []byte    // endpointSlots' texts, carved from blocks
	scratch  nftOps    // a port's operations, written as text (nftBlock)
	block    portBlock // nftBlock's
	pending  nftBlock  // the chunk of ports being written as text
	layout   NFTablesLayout
	// next is the state the sync builds; resetSlots: the endpoint-maps
	// layout allocates every chain's keys afresh.
	next       *nftState
	resetSlots bool
}

func newNFTWriter(g *NFTables, m *Model) *nftWriter {
	w := &nftWriter{g: g, cfg: &m.Config, ip: "ip", addrType: "ipv4_addr", layout: g.Layout}
	if m.Config.Family == corev1.IPv6Protocol {
		w.ip, w.addrType = "ip6", "ipv6_addr"
	}
	w.masq = "mark set mark or " + m.Config.masqueradeMark()
	if m.Config.ClusterCIDR.IsValid() {
		cidr := m.Config.ClusterCIDR.Masked().String()
		w.local = w.ip + " saddr " + cidr
		w.notLocal = w.ip + " saddr != " + cidr
	}
	return w
}

// forWorkers returns a writer for each of workers goroutines: w and
// copies of it with scratch space of their own.
func (w *nftWriter) forWorkers(workers int) []*nftWriter {
	writers := []*nftWriter{w}
	for range workers - 1 {
		c := *w
		c.buf, c.arena, c.scratch, c.block, c.pending = nil, nil, nil, portBlock{}, nftBlock{}
		writers = append(writers, &c)
	}
	return writers
}

// port writes a ServicePort's own chains to o and its record to rec: those
// chains, its affinity sets and its elements of the shared sets and maps;
// plan is planSlots'. The endpoint map elements of a chain under new keys
// are written to slotText (see endpointSlots).
func (w *nftWriter) port(p *PortState, old *nftPortRecord, plan [2]nftSlotPlan, o *nftOps, rec *nftPortRecord, slotText *[2][]byte) {
	rec.chains = rec.chainsBuf[:0]
	if n := 4 + 2*(len(p.ExternalIPs)+len(p.LoadBalancerVIPs)); n > len(rec.elemsBuf) {
		rec.elems = make([]nftElem, 0, n)
	} else {
		rec.elems = rec.elemsBuf[:0]
	}
	// The comment of no-endpoint elements, made when one is.
	var comment string
	noEndpointComment := func() string {
		if comment == "" {
			comment = p.Name.String()
			if len(comment) > knftables.CommentLengthMax {
				comment = comment[:knftables.CommentLengthMax]
			}
		}
		return comment
	}
	proto := protocolWord(p.Name.Protocol)
	port := strconv.Itoa(p.Port)
	if old != nil {
		rec.names = old.names
	} else {
		rec.names = NFTablesChainsFor(p.Name)
	}
	names := &rec.names
	pol := policyOf(p)
	c := &p.Categorized
	ensure := func(chain string) {
		o.ensureChain(chain)
		rec.chains = append(rec.chains, chain)
	}
	elem := func(container uint8, key, value, comment string) {
		rec.elems = append(rec.elems, nftElem{c: container, key: key, value: value, comment: comment})
	}

	affinity := p.ClientIPAffinity
	for _, ep := range c.Reachable {
		if affinity {
			chain, _ := w.endpointNames(p, ep)
			ensure(chain)
		}
		if ep.Local {
			b := ep.Addr.Addr().AppendTo(w.buf[:0])
			b = append(b, " . "...)
			b = ep.Addr.Addr().AppendTo(b)
			b = append(append(append(b, " . "...), proto...), " . "...)
			b = strconv.AppendUint(b, uint64(ep.Addr.Port()), 10)
			elem(cHairpin, string(b), "", "")
			w.buf = b
		}
	}
	if pol.UsesClusterChain {
		ensure(names.Cluster)
	}
	if pol.UsesLocalChain {
		ensure(names.Local)
	}
	internalChain, externalPolicyChain := names.Cluster, names.Cluster
	if pol.InternalLocal {
		internalChain = names.Local
	}
	if pol.ExternalLocal {
		externalPolicyChain = names.Local
	}
	if pol.UsesExternalChain {
		ensure(names.External)
	}
	var internalVerdict, externalVerdict string
	switch {
	case !c.HasAny:
		internalVerdict, externalVerdict = "goto "+nftReject, "goto "+nftReject
	default:
		if !pol.HasInternal {
			internalVerdict = "drop"
		}
		if !pol.HasExternal {
			externalVerdict = "drop"
		}
	}

	// A service IP's key, "IP . protocol . port"; the ClusterIP's also
	// gives the ClusterIP itself, as its first part.
	key := func(ip netip.Addr) string {
		b := ip.AppendTo(w.buf[:0])
		b = append(append(append(append(b, " . "...), proto...), " . "...), port...)
		w.buf = b
		return string(b)
	}
	clusterKey := key(p.ClusterIP)
	elem(cClusterIPs, clusterKey[:strings.IndexByte(clusterKey, ' ')], "", "")
	if pol.HasInternal {
		elem(cServiceIPs, clusterKey, "goto "+internalChain, "")
	} else {
		elem(cNoEndpointServices, clusterKey, internalVerdict, noEndpointComment())
	}
	for _, ip := range p.ExternalIPs {
		if c.HasAny {
			elem(cServiceIPs, key(ip), "goto "+names.External, "")
		}
		if !pol.HasExternal {
			elem(cNoEndpointServices, key(ip), externalVerdict, noEndpointComment())
		}
	}
	if pol.HasSourceRanges {
		ensure(names.Firewall)
	}
	for _, ip := range p.LoadBalancerVIPs {
		if c.HasAny {
			elem(cServiceIPs, key(ip), "goto "+names.External, "")
		}
		if pol.HasSourceRanges {
			elem(cFirewallIPs, key(ip), "goto "+names.Firewall, "")
		}
	}
	if !pol.HasExternal {
		for _, ip := range p.LoadBalancerVIPs {
			elem(cNoEndpointServices, key(ip), externalVerdict, noEndpointComment())
		}
	}
	if p.NodePort != 0 {
		npKey := proto + " . " + strconv.Itoa(p.NodePort)
		if c.HasAny {
			elem(cServiceNodePorts, npKey, "goto "+names.External, "")
		}
		if !pol.HasExternal {
			elem(cNoEndpointNodePorts, npKey, externalVerdict, noEndpointComment())
		}
	}

	if pol.UsesExternalChain {
		if !pol.ExternalLocal {
			// Traffic to a Cluster-policy endpoint may cross nodes.
			o.rule(names.External, w.masq, "masquerade")
		} else {
			if w.local != "" {
				// Pods reaching an external destination skip the policy,
				// as if they went out to the load balancer and back.
				o.rule(names.External, w.local+" goto "+names.Cluster, "short-circuit pod traffic")
			}
			// The node's own traffic has the VIP's local address as its
			// source: it is masqueraded and may go to any endpoint.
			o.rule(names.External, "fib saddr type local "+w.masq, "masquerade local traffic")
			o.rule(names.External, "fib saddr type local goto "+names.Cluster, "short-circuit local traffic")
		}
		if pol.HasExternal {
			o.rule(names.External, "goto "+externalPolicyChain, "")
		}
	}
	if pol.HasSourceRanges {
		sources := make([]string, 0, len(p.SourceRanges)+len(p.LoadBalancerVIPs))
		for _, r := range p.SourceRanges {
			sources = append(sources, r.String())
		}
		if sourceRangesAdmitNode(p.ServicePort, w.cfg.NodeIP) {
			for _, ip := range p.LoadBalancerVIPs {
				sources = append(sources, ip.String())
			}
		}
		o.rule(names.Firewall, w.ip+" saddr != { "+strings.Join(sources, " , ")+" } drop", "")
	}

	if affinity {
		timeout := time.Duration(p.StickyMaxAgeSeconds) * time.Second
		for _, ep := range c.Reachable {
			_, set := w.endpointNames(p, ep)
			o.object(nftAdd, &knftables.Set{Name: set, Type: w.addrType,
				Flags: []knftables.SetFlag{knftables.DynamicFlag, knftables.TimeoutFlag}, Timeout: &timeout})
			rec.sets = append(rec.sets, set)
		}
		if pol.UsesClusterChain {
			w.endpointJumps(o, p, names.Cluster, c.Cluster)
		}
		if pol.UsesLocalChain {
			w.endpointJumps(o, p, names.Local, c.Local)
		}
		for _, ep := range c.Reachable {
			chain, set := w.endpointNames(p, ep)
			o.rule(chain, "update @"+set+" { "+w.ip+" saddr }", "")
			o.rule(chain, "meta l4proto "+proto+" dnat to "+ep.String(), "")
		}
	} else if plan[0].use || plan[1].use {
		for i := range plan {
			if !plan[i].use {
				continue
			}
			chain, eps := names.Cluster, c.Cluster
			if i == 1 {
				chain, eps = names.Local, c.Local
			}
			rec.slots[i], slotText[i] = w.endpointSlots(o, proto, chain, eps, plan[i])
		}
	} else {
		if pol.UsesClusterChain {
			w.endpointDNATs(o, proto, names.Cluster, c.Cluster)
		}
		if pol.UsesLocalChain {
			w.endpointDNATs(o, proto, names.Local, c.Local)
		}
	}
}

// rewrite writes the operations of a port's record again, as port wrote
// them (its endpoints under the keys the record holds).
func (w *nftWriter) rewrite(rec *nftPortRecord, o *nftOps) {
	var plan [2]nftSlotPlan
	used, _ := w.slotsUsed(rec.port)
	for i := range plan {
		if used[i] {
			plan[i] = nftSlotPlan{use: true, keep: true, slots: rec.slots[i]}
		}
	}
	var scratch nftPortRecord
	var text [2][]byte
	w.port(rec.port, rec, plan, o, &scratch, &text)
}

// endpointDNATs picks an endpoint at random and DNATs to it: kube-proxy's
// one rule with a numgen map (one endpoint: a plain DNAT), or, in the
// NFTablesEndpointRules layout, one rule per endpoint, the i-th taken with
// probability 1/(n-i), which is the same uniform choice.
func (w *nftWriter) endpointDNATs(o *nftOps, proto, chain string, eps []*Endpoint) {
	prefix := "meta l4proto " + proto + " dnat to "
	if len(eps) == 1 {
		o.rule(chain, prefix+eps[0].String(), "")
		return
	}
	if w.layout == NFTablesEndpointRules {
		for i, ep := range eps {
			if left := len(eps) - i; left > 1 {
				o.rule(chain, "numgen random mod "+itoa(left)+" 0 "+prefix+ep.String(), "")
			} else {
				o.rule(chain, prefix+ep.String(), "")
			}
		}
		return
	}
	b := w.appendNumgenDNAT(w.buf[:0], proto, len(eps))
	b = append(b, " map { "...)
	for i, ep := range eps {
		if i > 0 {
			b = append(b, " , "...)
		}
		b = strconv.AppendInt(b, int64(i), 10)
		b = append(b, " : "...)
		b = ep.Addr.Addr().AppendTo(b)
		b = append(b, " . "...)
		b = strconv.AppendUint(b, uint64(ep.Addr.Port()), 10)
	}
	b = append(b, " }"...)
	o.rule(chain, string(b), "")
	w.buf = b
}

// appendNumgenDNAT appends the start of kube-proxy's rule that DNATs to
// one of n endpoints at random, `meta l4proto P dnat ip addr . port to
// numgen random mod n`; the map follows.
func (w *nftWriter) appendNumgenDNAT(b []byte, proto string, n int) []byte {
	b = append(b, "meta l4proto "...)
	b = append(b, proto...)
	b = append(b, " dnat "...)
	b = append(b, w.ip...)
	b = append(b, " addr . port to numgen random mod "...)
	return strconv.AppendInt(b, int64(n), 10)
}

// endpointJumps, with ClientIP affinity: a client seen recently goes to its
// endpoint's chain; anyone else to one at random.
func (w *nftWriter) endpointJumps(o *nftOps, p *PortState, chain string, eps []*Endpoint) {
	b := w.buf[:0]
	b = append(b, "numgen random mod "...)
	b = strconv.AppendInt(b, int64(len(eps)), 10)
	b = append(b, " vmap { "...)
	for i, ep := range eps {
		epChain, set := w.endpointNames(p, ep)
		o.rule(chain, w.ip+" saddr @"+set+" goto "+epChain, "")
		if i > 0 {
			b = append(b, " , "...)
		}
		b = strconv.AppendInt(b, int64(i), 10)
		b = append(b, " : goto "...)
		b = append(b, epChain...)
	}
	b = append(b, " }"...)
	o.rule(chain, string(b), "")
	w.buf = b
}

func (w *nftWriter) endpointNames(p *PortState, ep *Endpoint) (chain, set string) {
	return NFTablesEndpointChain(p.Name, ep)
}

func itoa(n int) string { return strconv.Itoa(n) }

func ptrTo[T any](v T) *T { return &v }
