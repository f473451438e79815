package proxyrules

import "net/netip"

// portPolicy holds the per-ServicePort decisions that kube-proxy's iptables
// and nftables proxiers make alike (syncProxyRules in
// pkg/proxy/iptables/proxier.go and pkg/proxy/nftables/proxier.go), so both
// backends take them from one place.
type portPolicy struct {
	// UsesClusterChain and UsesLocalChain: the port has endpoints for the
	// Cluster and Local traffic-policy chains, and a policy needs them.
	UsesClusterChain, UsesLocalChain bool
	// InternalLocal: ClusterIP traffic goes to the Local chain
	// (internalTrafficPolicy Local). HasInternal: it has endpoints to go to.
	InternalLocal, HasInternal bool
	// ExternalLocal: external traffic (NodePort, external and LB IPs) goes
	// to the Local chain. HasExternal: it has endpoints to go to.
	ExternalLocal, HasExternal bool
	// UsesExternalChain: the port has external destinations and usable
	// endpoints somewhere. It is set even when HasExternal is not, because
	// the external chain also short-circuits pod and node traffic.
	UsesExternalChain bool
	// HasSourceRanges: load-balancer IPs restricted by
	// loadBalancerSourceRanges. (iptables builds the firewall chain only
	// when the port also has endpoints; nftables always does.)
	HasSourceRanges bool
}

func policyOf(p *PortState) portPolicy {
	c := &p.Categorized
	pol := portPolicy{
		UsesClusterChain:  len(c.Cluster) > 0 && p.UsesClusterEndpoints(),
		UsesLocalChain:    len(c.Local) > 0 && p.UsesLocalEndpoints(),
		InternalLocal:     p.InternalPolicyLocal,
		HasInternal:       c.HasAny,
		ExternalLocal:     p.ExternalPolicyLocal,
		HasExternal:       c.HasAny,
		UsesExternalChain: c.HasAny && p.ExternallyAccessible(),
		HasSourceRanges:   len(p.LoadBalancerVIPs) > 0 && len(p.SourceRanges) > 0,
	}
	if pol.InternalLocal {
		pol.HasInternal = pol.HasInternal && len(c.Local) > 0
	}
	if pol.ExternalLocal {
		pol.HasExternal = pol.HasExternal && len(c.Local) > 0
	}
	return pol
}

// sourceRangesAdmitNode reports whether a loadBalancerSourceRange contains
// the node's IP. Then traffic from the node to a VIP-like load-balancer IP
// it holds, which loops back with that IP as its source, is admitted too.
func sourceRangesAdmitNode(p *ServicePort, nodeIP netip.Addr) bool {
	if !nodeIP.IsValid() {
		return false
	}
	for _, r := range p.SourceRanges {
		if r.Contains(nodeIP) {
			return true
		}
	}
	return false
}
