package proxyrules

import (
	"fmt"
	"net/netip"

	corev1 "k8s.io/api/core/v1"
)

// Config is what kube-proxy knows about its node and its flags. The zero
// value is not useful; start from DefaultConfig.
type Config struct {
	// NodeName is the node the rules are for: endpoints whose nodeName
	// equals it are local (externalTrafficPolicy/internalTrafficPolicy Local).
	NodeName string
	// Family is the IP family of this set of rules. kube-proxy runs one
	// proxier per family; build once per family for dual-stack.
	Family corev1.IPFamily
	// Zone is the node's topology.kubernetes.io/zone label, for topology
	// hints (trafficDistribution PreferClose/PreferSameZone).
	Zone string
	// ClusterCIDR is the pod CIDR of this family (kube-proxy --cluster-cidr
	// with --detect-local-mode=ClusterCIDR): traffic from it is "local" pod
	// traffic. The zero Prefix is kube-proxy's cluster-CIDR-less mode: no
	// local detection, so off-cluster traffic to a ClusterIP is not
	// masqueraded and pods reaching an eTP=Local external IP are not
	// short-circuited.
	ClusterCIDR netip.Prefix
	// MasqueradeBit is the fwmark bit for packets that need SNAT
	// (--iptables-masquerade-bit, default 14, i.e. mark 0x4000).
	MasqueradeBit int
	// MasqueradeAll masquerades all traffic to ClusterIPs (--masquerade-all).
	MasqueradeAll bool
	// NodePortAddresses limits NodePorts to these node IPs
	// (--nodeport-addresses, already resolved to addresses). Empty means
	// every local address (kube-proxy's "all" default, matched with
	// `-m addrtype --dst-type LOCAL`).
	NodePortAddresses []netip.Addr
	// NodeIP is the node's primary IP of this family; loadBalancerSourceRanges
	// that contain it also admit traffic from the node to the LB IP.
	NodeIP netip.Addr
	// LocalhostNodePorts makes NodePorts reachable on 127.0.0.0/8 (IPv4 only,
	// --iptables-localhost-nodeports, default true).
	LocalhostNodePorts bool
	// ConntrackTCPBeLiberal is true when the node sets
	// net.netfilter.nf_conntrack_tcp_be_liberal=1; then kube-proxy does not
	// drop INVALID packets in KUBE-FORWARD.
	ConntrackTCPBeLiberal bool
}

// DefaultConfig returns kube-proxy 1.37's defaults for an IPv4 node.
func DefaultConfig(nodeName string) Config {
	return Config{
		NodeName:           nodeName,
		Family:             corev1.IPv4Protocol,
		MasqueradeBit:      14,
		LocalhostNodePorts: true,
	}
}

func (c *Config) validate() error {
	if c.Family != corev1.IPv4Protocol && c.Family != corev1.IPv6Protocol {
		return fmt.Errorf("proxyrules: Family %q: want IPv4 or IPv6", c.Family)
	}
	if c.MasqueradeBit < 0 || c.MasqueradeBit > 31 {
		return fmt.Errorf("proxyrules: MasqueradeBit %d: want 0..31", c.MasqueradeBit)
	}
	if c.ClusterCIDR.IsValid() && !isFamily(c.ClusterCIDR.Addr(), c.Family) {
		return fmt.Errorf("proxyrules: ClusterCIDR %s is not %s", c.ClusterCIDR, c.Family)
	}
	for _, a := range c.NodePortAddresses {
		if !isFamily(a, c.Family) {
			return fmt.Errorf("proxyrules: NodePortAddress %s is not %s", a, c.Family)
		}
	}
	return nil
}

// masqueradeMark is the mark kube-proxy uses, "0x4000" for bit 14.
func (c *Config) masqueradeMark() string {
	return fmt.Sprintf("%#08x", uint32(1)<<c.MasqueradeBit)
}
