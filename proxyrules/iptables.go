package proxyrules

import (
	"hash/maphash"
	"reflect"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// largeClusterEndpoints is kube-proxy's largeClusterEndpointsThreshold:
// above it, per-endpoint rules carry no comments to keep the payload small.
const largeClusterEndpoints = 1000

// IPTables generates kube-proxy's iptables-restore payload
// (pkg/proxy/iptables/proxier.go syncProxyRules) from a Model and remembers
// what was applied, so that later syncs can be partial: the top-level chains
// (KUBE-SERVICES, KUBE-NODEPORTS, the filter table) are always rewritten,
// but the per-ServicePort chains (KUBE-SVC/SVL/EXT/FW/SEP) only when their
// content changed; chains no longer used are deleted. The zero value is
// ready to use and starts with a full sync.
type IPTables struct {
	applied  map[ServicePortName]*appliedPort
	hashSeed maphash.Seed
	sizes    bufferSizes
	settings generationSettings
	// adopted are service chains found in the kernel that no applied sync
	// wrote (a previous kube-proxy or process); the next full sync deletes
	// the unused ones.
	adopted []string
}

type appliedPort struct {
	sum    uint64
	chains []string
	// What was generated for the port, for reuse while its PortState (the
	// same pointer, as a Tracker keeps it) and the settings stay the same.
	state               *PortState
	filter, natTop      []byte
	ownChains, ownRules []byte
}

// IPTablesSync is one generated payload, to be loaded with
// `iptables-restore --noflush` and then committed.
type IPTablesSync struct {
	// Payload is the iptables-restore input (filter and nat tables).
	Payload []byte
	// Full is true when every chain was written.
	Full bool
	// Written are the ServicePorts whose own chains are in the payload.
	Written []ServicePortName
	// Deleted are the chains the payload deletes.
	Deleted []string

	g *IPTables
	// changed and removed are what this sync changes in the generator's
	// record of the kernel (copy on write: only Commit applies them).
	changed  map[ServicePortName]*appliedPort
	removed  []ServicePortName
	settings generationSettings
}

// generationSettings is what, besides a port's PortState, shapes the rules
// written for it.
type generationSettings struct {
	cfg          Config
	largeCluster bool
}

// Commit records the sync as loaded, so the next partial sync is computed
// against it. A payload that failed to load is not committed: the next
// partial sync is then computed against the last committed state and so
// writes again everything the failed payload carried.
func (s *IPTablesSync) Commit() {
	if s.g.applied == nil {
		s.g.applied = make(map[ServicePortName]*appliedPort, len(s.changed))
	}
	for name, rec := range s.changed {
		s.g.applied[name] = rec
	}
	for _, name := range s.removed {
		delete(s.g.applied, name)
	}
	s.g.settings = s.settings
	if s.Full {
		s.g.adopted = nil
	}
}

// Adopt tells the generator which nat chains exist in the kernel before its
// first sync (from `iptables-save -t nat`), so that the first full sync
// deletes stale per-ServicePort chains left by an earlier proxy.
func (g *IPTables) Adopt(natChains []string) {
	for _, c := range natChains {
		if isServiceChain(c) {
			g.adopted = append(g.adopted, c)
		}
	}
}

// Sync generates the payload for m. It is full when full is true or nothing
// was committed yet; otherwise partial.
func (g *IPTables) Sync(m *Model, full bool) *IPTablesSync {
	full = full || g.applied == nil
	w := newIPTablesWriter(m, g.sizes)
	s := &IPTablesSync{Full: full, g: g, changed: map[ServicePortName]*appliedPort{},
		settings: generationSettings{cfg: m.Config, largeCluster: w.largeCluster}}
	reuse := g.applied != nil && reflect.DeepEqual(g.settings, s.settings)
	var stale []string
	known := 0 // ports of m that the committed state has
	for _, p := range m.Ports {
		prev, had := g.applied[p.Name]
		if had {
			known++
		}
		if reuse && had && prev.state == p {
			// Unchanged since the committed sync: its bytes are as good as new.
			w.filterRules.buf = append(w.filterRules.buf, prev.filter...)
			w.natRules.buf = append(w.natRules.buf, prev.natTop...)
			if full {
				w.natChains.buf = append(w.natChains.buf, prev.ownChains...)
				w.natRules.buf = append(w.natRules.buf, prev.ownRules...)
				s.Written = append(s.Written, p.Name)
			}
			continue
		}
		// The port's own chains go straight into the payload; when they
		// equal what was committed, a partial sync cuts them out again.
		filterAt, natAt := len(w.filterRules.buf), len(w.natRules.buf)
		chains := w.port(p, &w.natChains, &w.natRules)
		chainsAt, rulesAt := w.own.chainsAt, w.own.rulesAt
		var h maphash.Hash
		h.SetSeed(g.seed())
		h.Write(w.natChains.buf[chainsAt:])
		h.Write(w.natRules.buf[rulesAt:])
		rec := &appliedPort{sum: h.Sum64(), chains: chains, state: p,
			filter: w.filterRules.buf[filterAt:len(w.filterRules.buf):len(w.filterRules.buf)],
			natTop: w.natRules.buf[natAt:rulesAt:rulesAt]}
		if !full && had && prev.sum == rec.sum {
			w.natChains.buf, w.natChains.n = w.natChains.buf[:chainsAt], w.own.chainsN
			w.natRules.buf, w.natRules.n = w.natRules.buf[:rulesAt], w.own.rulesN
			rec.ownChains, rec.ownRules = prev.ownChains, prev.ownRules
		} else {
			rec.ownChains = w.natChains.buf[chainsAt:len(w.natChains.buf):len(w.natChains.buf)]
			rec.ownRules = w.natRules.buf[rulesAt:len(w.natRules.buf):len(w.natRules.buf)]
			s.Written = append(s.Written, p.Name)
		}
		s.changed[p.Name] = rec
		if had {
			stale = appendMissing(stale, prev.chains, chains)
		}
	}
	// Chains of ports that are gone, and (on a full sync) chains found in
	// the kernel that nothing uses any more.
	if known < len(g.applied) {
		current := make(map[ServicePortName]bool, len(m.Ports))
		for _, p := range m.Ports {
			current[p.Name] = true
		}
		for name, rec := range g.applied {
			if !current[name] {
				s.removed = append(s.removed, name)
				stale = append(stale, rec.chains...)
			}
		}
	}
	if full && len(g.adopted) > 0 {
		active := make(map[string]bool, len(m.Ports)*4)
		for _, p := range m.Ports {
			rec := s.changed[p.Name]
			if rec == nil {
				rec = g.applied[p.Name]
			}
			for _, c := range rec.chains {
				active[c] = true
			}
		}
		for _, c := range g.adopted {
			if !active[c] {
				stale = append(stale, c)
			}
		}
	}
	slices.Sort(stale)
	s.Deleted = slices.Compact(stale)
	for _, c := range s.Deleted {
		w.natChains.chain(c)
		w.natRules.write("-X", c)
	}
	s.Payload = w.finish()
	g.sizes = w.sizes()
	return s
}

// appendMissing appends to dst the chains of old that are not in cur.
func appendMissing(dst, old, cur []string) []string {
	for _, c := range old {
		if !slices.Contains(cur, c) {
			dst = append(dst, c)
		}
	}
	return dst
}

func (g *IPTables) seed() maphash.Seed {
	if g.hashSeed == (maphash.Seed{}) {
		g.hashSeed = maphash.MakeSeed()
	}
	return g.hashSeed
}

// iptablesWriter holds the four buffers of one payload, as upstream does.
type iptablesWriter struct {
	m                         *Model
	cfg                       *Config
	mark                      string
	largeCluster              bool
	filterChains, filterRules lines
	natChains, natRules       lines
	// own marks where the current port's own chains start in natChains
	// and natRules.
	own ownMark
}

type ownMark struct{ chainsAt, rulesAt, chainsN, rulesN int }

// bufferSizes are the sizes of the last payload's buffers, so the next one
// is allocated once instead of grown (and copied) many times.
type bufferSizes struct{ filterChains, filterRules, natChains, natRules int }

func (w *iptablesWriter) sizes() bufferSizes {
	return bufferSizes{len(w.filterChains.buf), len(w.filterRules.buf), len(w.natChains.buf), len(w.natRules.buf)}
}

func newIPTablesWriter(m *Model, sizes bufferSizes) *iptablesWriter {
	w := &iptablesWriter{m: m, cfg: &m.Config, mark: m.Config.masqueradeMark()}
	w.filterChains.buf = make([]byte, 0, sizes.filterChains+512)
	w.filterRules.buf = make([]byte, 0, sizes.filterRules+512)
	w.natChains.buf = make([]byte, 0, sizes.natChains+512)
	w.natRules.buf = make([]byte, 0, sizes.natRules+512)
	total := 0
	for _, p := range m.Ports {
		total += len(p.Endpoints)
	}
	w.largeCluster = total > largeClusterEndpoints
	for _, c := range []string{chainServices, chainExternalServices, chainForward, chainNodePorts, chainProxyFirewall} {
		w.filterChains.chain(c)
	}
	for _, c := range []string{chainServices, chainNodePorts, chainPostrouting, chainMarkMasq} {
		w.natChains.chain(c)
	}
	masqMatch := w.mark + "/" + w.mark
	w.natRules.write("-A", chainPostrouting, "-m", "mark", "!", "--mark", masqMatch, "-j", "RETURN")
	w.natRules.write("-A", chainPostrouting, "-j", "MARK", "--xor-mark", w.mark)
	w.natRules.write("-A", chainPostrouting, "-m", "comment", "--comment", `"kubernetes service traffic requiring SNAT"`, "-j", "MASQUERADE", "--random-fully")
	w.natRules.write("-A", chainMarkMasq, "-j", "MARK", "--or-mark", w.mark)
	if w.ipv4() && w.cfg.LocalhostNodePorts {
		// The route_localnet mitigation (https://issue.k8s.io/90259); the
		// kubelet writes the same rule.
		w.filterChains.chain(chainKubeletFirewall)
		w.filterRules.write("-A", chainKubeletFirewall, "-m", "comment", "--comment", `"block incoming localnet connections"`,
			"-d", "127.0.0.0/8", "!", "-s", "127.0.0.0/8", "-m", "conntrack", "!", "--ctstate", "RELATED,ESTABLISHED,DNAT", "-j", "DROP")
	}
	return w
}

func (w *iptablesWriter) ipv4() bool { return w.cfg.Family == corev1.IPv4Protocol }

// finish appends the rules that must come last and assembles the payload.
func (w *iptablesWriter) finish() []byte {
	comment := `"kubernetes service nodeports; NOTE: this must be the last rule in this chain"`
	if len(w.cfg.NodePortAddresses) == 0 {
		dst := []string{"-m", "addrtype", "--dst-type", "LOCAL"}
		// Localhost NodePorts never work on IPv6, and on IPv4 only with
		// route_localnet, which LocalhostNodePorts stands for.
		if !w.ipv4() {
			dst = append(dst, "!", "-d", "::1/128")
		} else if !w.cfg.LocalhostNodePorts {
			dst = append(dst, "!", "-d", "127.0.0.0/8")
		}
		w.natRules.write(append(append([]string{"-A", chainServices, "-m", "comment", "--comment", comment}, dst...), "-j", chainNodePorts)...)
	} else {
		for _, ip := range w.cfg.NodePortAddresses {
			if ip.IsLoopback() && (!w.ipv4() || !w.cfg.LocalhostNodePorts) {
				continue // upstream logs and skips these
			}
			w.natRules.write("-A", chainServices, "-m", "comment", "--comment", comment, "-d", ip.String(), "-j", chainNodePorts)
		}
	}
	if !w.cfg.ConntrackTCPBeLiberal {
		w.filterRules.write("-A", chainForward, "-m", "conntrack", "--ctstate", "INVALID", "-j", "DROP")
	}
	masqMatch := w.mark + "/" + w.mark
	w.filterRules.write("-A", chainForward, "-m", "comment", "--comment", `"kubernetes forwarding rules"`, "-m", "mark", "--mark", masqMatch, "-j", "ACCEPT")
	w.filterRules.write("-A", chainForward, "-m", "comment", "--comment", `"kubernetes forwarding conntrack rule"`, "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT")

	size := 32 + len(w.filterChains.buf) + len(w.filterRules.buf) + len(w.natChains.buf) + len(w.natRules.buf)
	out := make([]byte, 0, size)
	out = append(out, "*filter\n"...)
	out = append(out, w.filterChains.buf...)
	out = append(out, w.filterRules.buf...)
	out = append(out, "COMMIT\n*nat\n"...)
	out = append(out, w.natChains.buf...)
	out = append(out, w.natRules.buf...)
	out = append(out, "COMMIT\n"...)
	return out
}

// quoted is a comment with spaces, quoted as upstream writes it.
func quoted(s string) string { return `"` + s + `"` }

// port writes one ServicePort: its filter rules and its rules in the
// top-level nat chains to the writer, and its own chains to chains/rules
// (which the caller may leave out of a partial sync). It returns the names
// of its own chains.
func (w *iptablesWriter) port(p *PortState, chains, rules *lines) []string {
	name := p.Name.String()
	proto := strings.ToLower(string(p.Name.Protocol))
	names := ChainsFor(p.Name)
	port := strconv.Itoa(p.Port)
	c := &p.Categorized

	pol := policyOf(p)
	usesClusterChain, usesLocalChain := pol.UsesClusterChain, pol.UsesLocalChain
	hasInternal, hasExternal, usesExternalChain := pol.HasInternal, pol.HasExternal, pol.UsesExternalChain
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

	var internalTarget, internalComment, externalTarget, externalComment string
	if !c.HasAny {
		internalTarget, externalTarget = "REJECT", "REJECT"
		internalComment = quoted(name + " has no endpoints")
		externalComment = internalComment
	} else {
		if !hasInternal {
			internalTarget, internalComment = "DROP", quoted(name+" has no local endpoints")
		}
		if !hasExternal {
			externalTarget, externalComment = "DROP", quoted(name+" has no local endpoints")
		}
	}

	clusterIP := p.ClusterIP.String()
	if hasInternal {
		w.natRules.write("-A", chainServices, "-m", "comment", "--comment", quoted(name+" cluster IP"),
			"-m", proto, "-p", proto, "-d", clusterIP, "--dport", port, "-j", internalChain)
	} else {
		w.filterRules.write("-A", chainServices, "-m", "comment", "--comment", internalComment,
			"-m", proto, "-p", proto, "-d", clusterIP, "--dport", port, "-j", internalTarget)
	}
	for _, ip := range p.ExternalIPs {
		if c.HasAny {
			w.natRules.write("-A", chainServices, "-m", "comment", "--comment", quoted(name+" external IP"),
				"-m", proto, "-p", proto, "-d", ip.String(), "--dport", port, "-j", names.External)
		}
		if !hasExternal {
			w.filterRules.write("-A", chainExternalServices, "-m", "comment", "--comment", externalComment,
				"-m", proto, "-p", proto, "-d", ip.String(), "--dport", port, "-j", externalTarget)
		}
	}
	for _, ip := range p.LoadBalancerVIPs {
		if c.HasAny {
			w.natRules.write("-A", chainServices, "-m", "comment", "--comment", quoted(name+" loadbalancer IP"),
				"-m", proto, "-p", proto, "-d", ip.String(), "--dport", port, "-j", lbChain)
		}
		if usesFWChain {
			w.filterRules.write("-A", chainProxyFirewall, "-m", "comment", "--comment", quoted(name+" traffic not accepted by "+names.Firewall),
				"-m", proto, "-p", proto, "-d", ip.String(), "--dport", port, "-j", "DROP")
		}
	}
	if !hasExternal {
		for _, ip := range p.LoadBalancerVIPs {
			w.filterRules.write("-A", chainExternalServices, "-m", "comment", "--comment", externalComment,
				"-m", proto, "-p", proto, "-d", ip.String(), "--dport", port, "-j", externalTarget)
		}
	}
	if p.NodePort != 0 {
		nodePort := strconv.Itoa(p.NodePort)
		if c.HasAny {
			// Upstream adds a 127.0.0.0/8 variant only when its nfacct
			// counter exists, which changes no verdict; it is left out.
			w.natRules.write("-A", chainNodePorts, "-m", "comment", "--comment", name,
				"-m", proto, "-p", proto, "--dport", nodePort, "-j", names.External)
		}
		if !hasExternal {
			w.filterRules.write("-A", chainExternalServices, "-m", "comment", "--comment", externalComment,
				"-m", "addrtype", "--dst-type", "LOCAL", "-m", proto, "-p", proto, "--dport", nodePort, "-j", externalTarget)
		}
	}
	if p.HealthCheckNodePort != 0 {
		w.filterRules.write("-A", chainNodePorts, "-m", "comment", "--comment", quoted(name+" health check node port"),
			"-m", "tcp", "-p", "tcp", "--dport", strconv.Itoa(p.HealthCheckNodePort), "-j", "ACCEPT")
	}

	// From here on: the ServicePort's own chains.
	w.own = ownMark{len(chains.buf), len(rules.buf), chains.n, rules.n}
	var own []string
	if hasInternal {
		args := []string{"-A", internalChain, "-m", "comment", "--comment", quoted(name + " cluster IP"),
			"-m", proto, "-p", proto, "-d", clusterIP, "--dport", port}
		if w.cfg.MasqueradeAll {
			rules.write(append(args, "-j", chainMarkMasq)...)
		} else if w.cfg.ClusterCIDR.IsValid() {
			// Off-cluster traffic to a ClusterIP may bounce off-node: SNAT it.
			rules.write(append(args, "!", "-s", w.cfg.ClusterCIDR.String(), "-j", chainMarkMasq)...)
		}
	}
	if usesExternalChain {
		chains.chain(names.External)
		own = append(own, names.External)
		if !p.ExternalPolicyLocal {
			rules.write("-A", names.External, "-m", "comment", "--comment", quoted("masquerade traffic for "+name+" external destinations"), "-j", chainMarkMasq)
		} else {
			if w.cfg.ClusterCIDR.IsValid() {
				// Pods reaching an external destination skip the policy,
				// as if they went out to the load balancer and back.
				rules.write("-A", names.External, "-m", "comment", "--comment", quoted("pod traffic for "+name+" external destinations"),
					"-s", w.cfg.ClusterCIDR.String(), "-j", names.Cluster)
			}
			rules.write("-A", names.External, "-m", "comment", "--comment", quoted("masquerade LOCAL traffic for "+name+" external destinations"),
				"-m", "addrtype", "--src-type", "LOCAL", "-j", chainMarkMasq)
			rules.write("-A", names.External, "-m", "comment", "--comment", quoted("route LOCAL traffic for "+name+" external destinations"),
				"-m", "addrtype", "--src-type", "LOCAL", "-j", names.Cluster)
		}
		if hasExternal {
			rules.write("-A", names.External, "-j", externalPolicyChain)
		}
	}
	if usesFWChain {
		chains.chain(names.Firewall)
		own = append(own, names.Firewall)
		comment := quoted(name + " loadbalancer IP")
		for _, cidr := range p.SourceRanges {
			rules.write("-A", names.Firewall, "-m", "comment", "--comment", comment, "-s", cidr.String(), "-j", names.External)
		}
		if sourceRangesAdmitNode(p.ServicePort, w.cfg.NodeIP) {
			// A node reaching a VIP-like LB IP it holds loops back with the
			// VIP as its source.
			for _, ip := range p.LoadBalancerVIPs {
				rules.write("-A", names.Firewall, "-m", "comment", "--comment", comment, "-s", ip.String(), "-j", names.External)
			}
		}
		rules.write("-A", names.Firewall, "-m", "comment", "--comment", quoted("other traffic to "+name+" will be dropped by KUBE-PROXY-FIREWALL"))
	}
	if usesClusterChain {
		chains.chain(names.Cluster)
		own = append(own, names.Cluster)
		w.endpointJumps(rules, p, names.Cluster, c.Cluster)
	}
	if usesLocalChain {
		chains.chain(names.Local)
		own = append(own, names.Local)
		w.endpointJumps(rules, p, names.Local, c.Local)
	}
	for _, ep := range c.Reachable {
		sep := w.sepChain(p, ep)
		chains.chain(sep)
		own = append(own, sep)
		// Traffic that loops back to its own pod needs SNAT.
		w.sepPrefix(rules, sep, name)
		rules.more("-s", ep.Addr.Addr().String(), "-j", chainMarkMasq)
		rules.end()
		w.sepPrefix(rules, sep, name)
		if p.ClientIPAffinity {
			rules.more("-m", "recent", "--name", sep, "--set")
		}
		rules.more("-m", proto, "-p", proto, "-j", "DNAT", "--to-destination", ep.String())
		rules.end()
	}
	return own
}

func (w *iptablesWriter) sepPrefix(rules *lines, sep, name string) {
	rules.start("-A", sep)
	if !w.largeCluster {
		rules.more("-m", "comment", "--comment", name)
	}
}

// sepChain is the endpoint's KUBE-SEP chain, hashed once per Endpoint.
func (w *iptablesWriter) sepChain(p *PortState, ep *Endpoint) string {
	if ep.sepChain == "" {
		ep.sepChain = EndpointChain(p.Name, ep)
	}
	return ep.sepChain
}

// endpointJumps writes a SVC/SVL chain: affinity checks first, then one
// jump per endpoint with probability 1/(endpoints left).
func (w *iptablesWriter) endpointJumps(rules *lines, p *PortState, chain string, eps []*Endpoint) {
	name := p.Name.String()
	if p.ClientIPAffinity {
		seconds := strconv.Itoa(p.StickyMaxAgeSeconds)
		for _, ep := range eps {
			sep := w.sepChain(p, ep)
			w.jumpPrefix(rules, chain, name, ep)
			rules.more("-m", "recent", "--name", sep, "--rcheck", "--seconds", seconds, "--reap", "-j", sep)
			rules.end()
		}
	}
	for i, ep := range eps {
		w.jumpPrefix(rules, chain, name, ep)
		if i < len(eps)-1 {
			rules.more("-m", "statistic", "--mode", "random", "--probability", probability(len(eps)-i))
		}
		rules.more("-j", w.sepChain(p, ep))
		rules.end()
	}
}

func (w *iptablesWriter) jumpPrefix(rules *lines, chain, name string, ep *Endpoint) {
	rules.start("-A", chain)
	if !w.largeCluster {
		rules.more("-m", "comment", "--comment")
		rules.quoted(name, " -> ", ep.String())
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
