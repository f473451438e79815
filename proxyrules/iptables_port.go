package proxyrules

import (
	"net/netip"
	"strconv"
)

// portWriter writes the rules of ServicePorts into its own buffers, so
// that several can work on one sync at once. What it writes for a port
// becomes the port's record: slices of those buffers.
type portWriter struct {
	cfg          *Config
	largeCluster bool
	// filter: the port's rules in the filter table's top-level chains;
	// natTop: in KUBE-SERVICES and KUBE-NODEPORTS; ownChains, ownRules:
	// its own chains (KUBE-SVC/SVL/EXT/FW/SEP), which a partial sync
	// leaves out when they did not change.
	filter, natTop, ownChains, ownRules lines

	// block is the size of a new buffer when one runs out of room;
	// blocks are those taken from the pool.
	block  portSize
	blocks blocks

	// recs are records allocated in advance, recordBlock at a time.
	recs        []appliedPort
	recordBlock int

	// Per port, set by port(): and by nameEndpoints, its reachable
	// endpoints and their chains' names.
	name, proto string
	p           *PortState
	reachable   []*Endpoint
	sepNames    string
}

// port writes one ServicePort, as syncProxyRules' loop over the service
// map does (pkg/proxy/iptables/proxier.go), and returns its record.
func (w *portWriter) port(p *PortState) *appliedPort {
	w.p, w.name, w.proto = p, p.Name.String(), protocolWord(p.Name.Protocol)
	w.reserve(estimate(p, w.largeCluster))
	filterAt, natAt := len(w.filter.buf), len(w.natTop.buf)
	chainsAt, rulesAt := len(w.ownChains.buf), len(w.ownRules.buf)
	if len(w.recs) == 0 {
		w.recs = make([]appliedPort, w.recordBlock)
	}
	rec := &w.recs[0]
	w.recs = w.recs[1:]
	rec.state, rec.chains = p, w.rules()

	rec.filter = capped(w.filter.buf[filterAt:])
	rec.natTop = capped(w.natTop.buf[natAt:])
	rec.ownChains = capped(w.ownChains.buf[chainsAt:])
	rec.ownRules = capped(w.ownRules.buf[rulesAt:])
	return rec
}

// capped is b with no room to grow, so that appending to a record's bytes
// can never write into the buffer behind it.
func capped(b []byte) []byte { return b[:len(b):len(b)] }

// rules writes the current port's rules and returns its own chains.
func (w *portWriter) rules() []string {
	p, name := w.p, w.name
	names := chainsFor(name, w.proto)
	c := &p.Categorized

	pol := policyOf(p)
	internalChain, externalPolicyChain := names.Cluster, names.Cluster
	if pol.InternalLocal {
		internalChain = names.Local
	}
	if pol.ExternalLocal {
		externalPolicyChain = names.Local
	}
	lbChain := names.External
	usesFWChain := c.HasAny && pol.HasSourceRanges
	if usesFWChain {
		lbChain = names.Firewall
	}
	// Comments of the REJECT and DROP rules: "<name> has no endpoints".
	var internalTarget, internalWhy, externalTarget, externalWhy string
	if !c.HasAny {
		internalTarget, externalTarget = "REJECT", "REJECT"
		internalWhy, externalWhy = " has no endpoints", " has no endpoints"
	} else {
		if !pol.HasInternal {
			internalTarget, internalWhy = "DROP", " has no local endpoints"
		}
		if !pol.HasExternal {
			externalTarget, externalWhy = "DROP", " has no local endpoints"
		}
	}

	if pol.HasInternal {
		w.destination(&w.natTop, chainServices, " cluster IP", "", p.ClusterIP, internalChain)
	} else {
		w.destination(&w.filter, chainServices, internalWhy, "", p.ClusterIP, internalTarget)
	}
	for _, ip := range p.ExternalIPs {
		if c.HasAny {
			w.destination(&w.natTop, chainServices, " external IP", "", ip, names.External)
		}
		if !pol.HasExternal {
			w.destination(&w.filter, chainExternalServices, externalWhy, "", ip, externalTarget)
		}
	}
	for _, ip := range p.LoadBalancerVIPs {
		if c.HasAny {
			w.destination(&w.natTop, chainServices, " loadbalancer IP", "", ip, lbChain)
		}
		if usesFWChain {
			w.destination(&w.filter, chainProxyFirewall, " traffic not accepted by ", names.Firewall, ip, "DROP")
		}
	}
	if !pol.HasExternal {
		for _, ip := range p.LoadBalancerVIPs {
			w.destination(&w.filter, chainExternalServices, externalWhy, "", ip, externalTarget)
		}
	}
	if p.NodePort != 0 {
		if c.HasAny {
			// Upstream adds a 127.0.0.0/8 variant only when its nfacct
			// counter exists, which changes no verdict; it is left out.
			l := &w.natTop
			l.start("-A", chainNodePorts, "-m", "comment", "--comment", name, "-m", w.proto, "-p", w.proto, "--dport")
			l.int(p.NodePort)
			l.more("-j", names.External)
			l.end()
		}
		if !pol.HasExternal {
			l := &w.filter
			l.start("-A", chainExternalServices, "-m", "comment", "--comment")
			l.quoted(name, externalWhy)
			l.more("-m", "addrtype", "--dst-type", "LOCAL", "-m", w.proto, "-p", w.proto, "--dport")
			l.int(p.NodePort)
			l.more("-j", externalTarget)
			l.end()
		}
	}
	if p.HealthCheckNodePort != 0 {
		l := &w.filter
		l.start("-A", chainNodePorts, "-m", "comment", "--comment")
		l.quoted(name, " health check node port")
		l.more("-m", "tcp", "-p", "tcp", "--dport")
		l.int(p.HealthCheckNodePort)
		l.more("-j", "ACCEPT")
		l.end()
	}

	// From here on: the ServicePort's own chains.
	chains, rules := &w.ownChains, &w.ownRules
	own := make([]string, 0, 4+len(c.Reachable))
	if pol.HasInternal && (w.cfg.MasqueradeAll || w.cfg.ClusterCIDR.IsValid()) {
		rules.start("-A", internalChain, "-m", "comment", "--comment")
		rules.quoted(name, " cluster IP")
		w.match(rules, p.ClusterIP, p.Port)
		if !w.cfg.MasqueradeAll {
			// Off-cluster traffic to a ClusterIP may bounce off-node: SNAT it.
			rules.more("!", "-s")
			rules.prefix(w.cfg.ClusterCIDR)
		}
		rules.more("-j", chainMarkMasq)
		rules.end()
	}
	if pol.UsesExternalChain {
		chains.chain(names.External)
		own = append(own, names.External)
		ext := func(why string, match ...string) {
			rules.start("-A", names.External, "-m", "comment", "--comment")
			rules.quoted(why, name, " external destinations")
			rules.more(match...)
			rules.end()
		}
		if !p.ExternalPolicyLocal {
			ext("masquerade traffic for ", "-j", chainMarkMasq)
		} else {
			if w.cfg.ClusterCIDR.IsValid() {
				// Pods reaching an external destination skip the policy,
				// as if they went out to the load balancer and back.
				ext("pod traffic for ", "-s", w.cfg.ClusterCIDR.String(), "-j", names.Cluster)
			}
			ext("masquerade LOCAL traffic for ", "-m", "addrtype", "--src-type", "LOCAL", "-j", chainMarkMasq)
			ext("route LOCAL traffic for ", "-m", "addrtype", "--src-type", "LOCAL", "-j", names.Cluster)
		}
		if pol.HasExternal {
			rules.write("-A", names.External, "-j", externalPolicyChain)
		}
	}
	if usesFWChain {
		chains.chain(names.Firewall)
		own = append(own, names.Firewall)
		from := func(src string) {
			rules.start("-A", names.Firewall, "-m", "comment", "--comment")
			rules.quoted(name, " loadbalancer IP")
			rules.more("-s", src, "-j", names.External)
			rules.end()
		}
		for _, cidr := range p.SourceRanges {
			from(cidr.String())
		}
		if sourceRangesAdmitNode(p.ServicePort, w.cfg.NodeIP) {
			// A node reaching a VIP-like LB IP it holds loops back with the
			// VIP as its source.
			for _, ip := range p.LoadBalancerVIPs {
				from(ip.String())
			}
		}
		rules.start("-A", names.Firewall, "-m", "comment", "--comment")
		rules.quoted("other traffic to ", name, " will be dropped by KUBE-PROXY-FIREWALL")
		rules.end()
	}
	w.nameEndpoints(c.Reachable)
	if pol.UsesClusterChain {
		chains.chain(names.Cluster)
		own = append(own, names.Cluster)
		w.endpointJumps(names.Cluster, c.Cluster)
	}
	if pol.UsesLocalChain {
		chains.chain(names.Local)
		own = append(own, names.Local)
		w.endpointJumps(names.Local, c.Local)
	}
	dnat := dnatWords(w.proto)
	for i, ep := range c.Reachable {
		sep := w.sep(i)
		chains.chain(sep)
		own = append(own, sep)
		// Traffic that loops back to its own pod needs SNAT.
		w.sepPrefix(sep)
		rules.raw(" -s")
		rules.raw(" ")
		rules.raw(ep.ip())
		rules.raw(" -j " + chainMarkMasq + "\n")
		w.sepPrefix(sep)
		if p.ClientIPAffinity {
			rules.more("-m", "recent", "--name", sep, "--set")
		}
		rules.raw(dnat)
		rules.raw(ep.String())
		rules.end()
	}
	return own
}

// dnatWords are the words of a KUBE-SEP chain's DNAT rule before the
// endpoint, constant for the common protocols.
func dnatWords(proto string) string {
	switch proto {
	case "tcp":
		return " -m tcp -p tcp -j DNAT --to-destination "
	case "udp":
		return " -m udp -p udp -j DNAT --to-destination "
	case "sctp":
		return " -m sctp -p sctp -j DNAT --to-destination "
	}
	return " -m " + proto + " -p " + proto + " -j DNAT --to-destination "
}

// destination writes a rule for traffic to ip and the port's port:
// `-A chain -m comment --comment "<name><why><more>" -m proto -p proto -d
// ip --dport port -j target`.
func (w *portWriter) destination(l *lines, chain, why, more string, ip netip.Addr, target string) {
	l.start("-A", chain, "-m", "comment", "--comment")
	l.quoted(w.name, why, more)
	w.match(l, ip, w.p.Port)
	l.more("-j", target)
	l.end()
}

func (w *portWriter) match(l *lines, ip netip.Addr, port int) {
	l.more("-m", w.proto, "-p", w.proto, "-d")
	l.addr(ip)
	l.more("--dport")
	l.int(port)
}

func (w *portWriter) sepPrefix(sep string) {
	w.ownRules.raw("-A ")
	w.ownRules.raw(sep)
	if !w.largeCluster {
		w.ownRules.raw(" -m comment --comment ")
		w.ownRules.raw(w.name)
	}
}

// sepLen is the length of a KUBE-SEP chain name.
const sepLen = len(prefixSEP) + 16

// nameEndpoints names the KUBE-SEP chains of the port's reachable
// endpoints, all in one string; sep and sepOf read them.
func (w *portWriter) nameEndpoints(reachable []*Endpoint) {
	var stack [16 * sepLen]byte
	buf := stack[:0]
	for _, ep := range reachable {
		buf = appendChainHash(append(buf, prefixSEP...), w.name, w.proto, ep.String())
	}
	w.reachable, w.sepNames = reachable, string(buf)
}

// sep is the chain of the i-th reachable endpoint.
func (w *portWriter) sep(i int) string { return w.sepNames[i*sepLen : (i+1)*sepLen] }

// sepOf is the chain of ep, one of the reachable endpoints, which callers
// go through in order (Cluster and Local are in Reachable's order):
// *from is where the search starts and, after, where ep was found.
func (w *portWriter) sepOf(ep *Endpoint, from *int) string {
	for i := *from; i < len(w.reachable); i++ {
		if w.reachable[i] == ep {
			*from = i
			return w.sep(i)
		}
	}
	return EndpointChain(w.p.Name, ep) // not reachable: cannot happen
}

// endpointJumps writes a SVC/SVL chain: affinity checks first, then one
// jump per endpoint with probability 1/(endpoints left).
func (w *portWriter) endpointJumps(chain string, eps []*Endpoint) {
	rules := &w.ownRules
	if w.p.ClientIPAffinity {
		at := 0
		for _, ep := range eps {
			sep := w.sepOf(ep, &at)
			w.jumpPrefix(chain, ep)
			rules.more("-m", "recent", "--name", sep, "--rcheck", "--seconds")
			rules.int(w.p.StickyMaxAgeSeconds)
			rules.more("--reap", "-j", sep)
			rules.end()
		}
	}
	at := 0
	for i, ep := range eps {
		w.jumpPrefix(chain, ep)
		if i < len(eps)-1 {
			rules.raw(" -m statistic --mode random --probability ")
			rules.raw(probability(len(eps) - i))
		}
		rules.raw(" -j ")
		rules.raw(w.sepOf(ep, &at))
		rules.end()
	}
}

func (w *portWriter) jumpPrefix(chain string, ep *Endpoint) {
	w.ownRules.raw("-A ")
	w.ownRules.raw(chain)
	if !w.largeCluster {
		w.ownRules.raw(" -m comment --comment")
		w.ownRules.quoted(w.name, " -> ", ep.String())
	}
}

// probability is upstream's computeProbability: 1/n with ten decimals.
func probability(n int) string {
	if n < len(probabilities) {
		return probabilities[n]
	}
	return strconv.FormatFloat(1.0/float64(n), 'f', 10, 64)
}

// probabilities holds the common values, as upstream precomputes them.
var probabilities = func() []string {
	p := make([]string, 64)
	for n := 1; n < len(p); n++ {
		p[n] = strconv.FormatFloat(1.0/float64(n), 'f', 10, 64)
	}
	return p
}()
