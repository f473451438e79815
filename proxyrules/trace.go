package proxyrules

import (
	"net/netip"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// Packet is the first packet of a connection, as the node's packet filter
// sees it.
type Packet struct {
	Src      netip.Addr
	Dst      netip.AddrPort
	Protocol corev1.Protocol // "" means TCP
	// FromNode is true when the node itself sends the packet (iptables'
	// `--src-type LOCAL`): host processes, and hostNetwork pods.
	FromNode bool
	// ToNode is true when Dst is an address of the node, so NodePorts
	// apply. Without it, Dst counts as the node's when it is
	// Config.NodeIP or one of Config.NodePortAddresses.
	ToNode bool
}

// Verdict is what the rules do with a packet.
type Verdict string

const (
	// VerdictDNAT: the connection goes to one of Trace.Endpoints.
	VerdictDNAT Verdict = "DNAT"
	// VerdictReject: refused with ICMP port unreachable (no endpoints).
	VerdictReject Verdict = "REJECT"
	// VerdictDrop: silently dropped (Local policy without local endpoints,
	// or a source outside loadBalancerSourceRanges).
	VerdictDrop Verdict = "DROP"
	// VerdictAccept: accepted for the node itself (a health-check node port).
	VerdictAccept Verdict = "ACCEPT"
	// VerdictNone: no Service rule matches; the packet passes untouched.
	VerdictNone Verdict = "NONE"
)

// Trace is the tracer's answer: where a packet goes under the rules
// generated from the Model, and why.
type Trace struct {
	Verdict Verdict
	// Port is the ServicePort the packet matched (nil for VerdictNone).
	Port *PortState
	// Via names the destination kind: "cluster IP", "external IP",
	// "loadbalancer IP" or "node port".
	Via string
	// Chains are the iptables chains the packet traverses, in order, up to
	// (not including) the endpoint's KUBE-SEP chain.
	Chains []string
	// Endpoints are the endpoints the connection may reach (one of them,
	// at random or by ClientIP affinity).
	Endpoints []*Endpoint
	// Masquerade is true when the connection's source is rewritten to the
	// node's address (SNAT), so the endpoint does not see the client IP.
	Masquerade bool
	// Affinity is true when ClientIP session affinity pins the client to
	// the endpoint it reached first.
	Affinity bool
	// Reason explains the verdict in words.
	Reason string
}

// String is a one-line summary, e.g.
// "DNAT ns/web:http (cluster IP) via KUBE-SERVICES > KUBE-SVC-... to 3 endpoints, masquerade".
func (t Trace) String() string {
	var b strings.Builder
	b.WriteString(string(t.Verdict))
	if t.Port != nil {
		b.WriteString(" " + t.Port.Name.String() + " (" + t.Via + ")")
	}
	if len(t.Chains) > 0 {
		b.WriteString(" via " + strings.Join(t.Chains, " > "))
	}
	if t.Verdict == VerdictDNAT {
		eps := make([]string, len(t.Endpoints))
		for i, e := range t.Endpoints {
			eps[i] = e.String()
		}
		b.WriteString(" to [" + strings.Join(eps, " ") + "]")
		if t.Masquerade {
			b.WriteString(", masquerade")
		}
		if t.Affinity {
			b.WriteString(", client IP affinity")
		}
	}
	if t.Reason != "" {
		b.WriteString(": " + t.Reason)
	}
	return b.String()
}

// Trace says where a packet goes under the rules this Model generates. It
// follows the same decisions as the generated iptables rules, so it answers
// "why does this VIP not route" without reading a single rule.
func (m *Model) Trace(pkt Packet) Trace {
	proto := protocolOrTCP(pkt.Protocol)
	dst, dport := pkt.Dst.Addr().Unmap(), int(pkt.Dst.Port())
	src := pkt.Src.Unmap()
	toNode := pkt.ToNode || (m.Config.NodeIP.IsValid() && dst == m.Config.NodeIP)
	for _, a := range m.Config.NodePortAddresses {
		toNode = toNode || dst == a
	}
	for _, p := range m.Ports {
		if p.Name.Protocol != proto {
			continue
		}
		if p.Port == dport && p.ClusterIP == dst {
			return m.traceInternal(p, src)
		}
		if p.Port == dport {
			for _, ip := range p.ExternalIPs {
				if ip == dst {
					return m.traceExternal(p, src, pkt.FromNode, "external IP", nil)
				}
			}
			for _, ip := range p.LoadBalancerVIPs {
				if ip == dst {
					return m.traceLoadBalancer(p, src, pkt.FromNode)
				}
			}
		}
	}
	if toNode {
		for _, p := range m.Ports {
			if p.Name.Protocol == proto && p.NodePort != 0 && p.NodePort == dport {
				return m.traceExternal(p, src, pkt.FromNode, "node port", []string{chainServices, chainNodePorts})
			}
			if proto == corev1.ProtocolTCP && p.HealthCheckNodePort != 0 && p.HealthCheckNodePort == dport {
				return Trace{Verdict: VerdictAccept, Port: p, Via: "health-check node port", Chains: []string{chainNodePorts},
					Reason: "the node's health-check server for externalTrafficPolicy Local answers here"}
			}
		}
	}
	return Trace{Verdict: VerdictNone, Reason: "no Service port matches this destination"}
}

func (m *Model) traceInternal(p *PortState, src netip.Addr) Trace {
	names := ChainsFor(p.Name)
	t := Trace{Port: p, Via: "cluster IP"}
	if !p.HasAny {
		t.Verdict, t.Chains, t.Reason = VerdictReject, []string{chainServices}, "the Service has no usable endpoints"
		return t
	}
	chain, eps := names.Cluster, p.Cluster
	if p.InternalPolicyLocal {
		chain, eps = names.Local, p.Local
		if len(eps) == 0 {
			t.Verdict, t.Chains, t.Reason = VerdictDrop, []string{chainServices}, "internalTrafficPolicy Local and no endpoint on this node"
			return t
		}
	}
	t.Verdict, t.Chains, t.Endpoints = VerdictDNAT, []string{chainServices, chain}, eps
	t.Masquerade = m.Config.MasqueradeAll || (m.Config.ClusterCIDR.IsValid() && !m.Config.ClusterCIDR.Contains(src))
	t.Affinity = p.ClientIPAffinity
	return t
}

func (m *Model) traceLoadBalancer(p *PortState, src netip.Addr, fromNode bool) Trace {
	names := ChainsFor(p.Name)
	if p.HasAny && len(p.SourceRanges) > 0 {
		allowed := false
		fromNodeAllowed := false
		for _, r := range p.SourceRanges {
			allowed = allowed || r.Contains(src)
			fromNodeAllowed = fromNodeAllowed || (m.Config.NodeIP.IsValid() && r.Contains(m.Config.NodeIP))
		}
		for _, ip := range p.LoadBalancerVIPs {
			allowed = allowed || (fromNodeAllowed && src == ip)
		}
		if !allowed {
			return Trace{Verdict: VerdictDrop, Port: p, Via: "loadbalancer IP",
				Chains: []string{chainServices, names.Firewall, chainProxyFirewall}, Reason: "source outside loadBalancerSourceRanges"}
		}
		return m.traceExternal(p, src, fromNode, "loadbalancer IP", []string{chainServices, names.Firewall})
	}
	return m.traceExternal(p, src, fromNode, "loadbalancer IP", nil)
}

// traceExternal follows a KUBE-EXT chain: masquerade for Cluster policy;
// for Local policy, pods and the node short-circuit to cluster endpoints
// and everyone else reaches only local endpoints with the source kept.
func (m *Model) traceExternal(p *PortState, src netip.Addr, fromNode bool, via string, prefix []string) Trace {
	names := ChainsFor(p.Name)
	if prefix == nil {
		prefix = []string{chainServices}
	}
	t := Trace{Port: p, Via: via, Affinity: p.ClientIPAffinity}
	if !p.HasAny {
		t.Verdict, t.Chains, t.Reason = VerdictReject, []string{chainExternalServices}, "the Service has no usable endpoints"
		return t
	}
	t.Chains = append(append([]string{}, prefix...), names.External)
	switch {
	case !p.ExternalPolicyLocal:
		t.Verdict, t.Endpoints, t.Masquerade = VerdictDNAT, p.Cluster, true
		t.Chains = append(t.Chains, names.Cluster)
	case m.Config.ClusterCIDR.IsValid() && m.Config.ClusterCIDR.Contains(src):
		t.Verdict, t.Endpoints = VerdictDNAT, p.Cluster
		t.Chains = append(t.Chains, names.Cluster)
		t.Reason = "pod traffic to an external destination skips externalTrafficPolicy Local"
	case fromNode:
		t.Verdict, t.Endpoints, t.Masquerade = VerdictDNAT, p.Cluster, true
		t.Chains = append(t.Chains, names.Cluster)
		t.Reason = "traffic from the node skips externalTrafficPolicy Local"
	case len(p.Local) == 0:
		t.Verdict, t.Reason = VerdictDrop, "externalTrafficPolicy Local and no endpoint on this node"
		t.Chains = append(t.Chains, chainExternalServices)
	default:
		t.Verdict, t.Endpoints = VerdictDNAT, p.Local
		t.Chains = append(t.Chains, names.Local)
		t.Reason = "externalTrafficPolicy Local: node-local endpoints, client source IP kept"
	}
	return t
}
