package proxyrules

import (
	"crypto/sha256"
	"encoding/base32"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/knftables"
)

// kube-proxy's nftables names (pkg/proxy/nftables/proxier.go). Everything
// lives in one table, so nothing needs a "kube-" prefix.
const (
	// NFTablesTable is the table kube-proxy owns, in family ip or ip6.
	NFTablesTable = "kube-proxy"

	nftFilterPreroutingPreDNAT = "filter-prerouting-pre-dnat"
	nftFilterOutputPreDNAT     = "filter-output-pre-dnat"
	nftFilterInput             = "filter-input"
	nftFilterForward           = "filter-forward"
	nftFilterOutput            = "filter-output"
	nftNATPrerouting           = "nat-prerouting"
	nftNATOutput               = "nat-output"
	nftNATPostrouting          = "nat-postrouting"

	nftServices           = "services"
	nftServiceIPs         = "service-ips"
	nftServiceNodePorts   = "service-nodeports"
	nftNodePortIPs        = "nodeport-ips"
	nftClusterIPs         = "cluster-ips"
	nftServiceEPCheck     = "service-endpoints-check"
	nftNodePortEPCheck    = "nodeport-endpoints-check"
	nftNoEndpointServices = "no-endpoint-services"
	nftNoEndpointNodePort = "no-endpoint-nodeports"
	nftReject             = "reject-chain"
	nftClusterIPsCheck    = "cluster-ips-check"
	nftFirewallIPs        = "firewall-ips"
	nftFirewallCheck      = "firewall-check"
	nftMasquerading       = "masquerading"
	nftHairpin            = "hairpin-connections"
	nftLocalhostReject    = "localhost-nodeport-reject-ports"

	nftPrefixCluster  = "service-"
	nftPrefixLocal    = "local-"
	nftPrefixExternal = "external-"
	nftPrefixEndpoint = "endpoint-"
	nftPrefixAffinity = "affinity-"
	nftPrefixFirewall = "firewall-"

	// nftNameBaseMax is what is left of knftables.NameLengthMax after the
	// longest prefix kube-proxy allows itself.
	nftNameBaseMax = knftables.NameLengthMax - 16
)

// NFTablesChains are the per-ServicePort chain names kube-proxy's nftables
// proxier uses: a prefix, 8 characters of base32(sha256(name)) and the
// readable name "namespace/service/protocol/port".
type NFTablesChains struct {
	Cluster  string // service-: endpoints for Cluster traffic policy
	Local    string // local-: endpoints for Local traffic policy
	External string // external-: NodePort, external and load-balancer IPs
	Firewall string // firewall-: loadBalancerSourceRanges
}

// NFTablesChainsFor returns the chain names of a ServicePort.
func NFTablesChainsFor(name ServicePortName) NFTablesChains {
	// The four names in one string, built on the stack.
	var in, out [4 * 256]byte
	base := appendNFTHashName(in[:0], appendNFTPortBase(in[len(in)/2:len(in)/2], name))
	b := out[:0]
	var ends [4]int
	for i, prefix := range []string{nftPrefixCluster, nftPrefixLocal, nftPrefixExternal, nftPrefixFirewall} {
		b = append(append(b, prefix...), base...)
		ends[i] = len(b)
	}
	all := string(b)
	return NFTablesChains{Cluster: all[:ends[0]], Local: all[ends[0]:ends[1]], External: all[ends[1]:ends[2]], Firewall: all[ends[2]:]}
}

// appendNFTPortBase appends nftPortBase(name).
func appendNFTPortBase(dst []byte, name ServicePortName) []byte {
	dst = append(append(dst, name.Namespace...), '/')
	dst = append(append(dst, name.Name...), '/')
	dst = append(append(dst, protocolWord(name.Protocol)...), '/')
	return append(dst, name.Port...)
}

// appendNFTHashName appends nftHashName(string(name)).
func appendNFTHashName(dst, name []byte) []byte {
	h := sha256.Sum256(name)
	var hash [8]byte
	base32.StdEncoding.Encode(hash[:], h[:5]) // the first 8 characters of the whole
	at := len(dst)
	dst = append(append(append(dst, hash[:]...), '-'), name...)
	if len(dst)-at > nftNameBaseMax {
		dst = append(dst[:at+nftNameBaseMax-3], "..."...)
	}
	return dst
}

// NFTablesEndpointChain returns the chain of an endpoint of a ServicePort
// (used with ClientIP affinity) and the name of its affinity set.
func NFTablesEndpointChain(name ServicePortName, ep *Endpoint) (chain, affinitySet string) {
	base := nftEndpointBase(name, ep)
	return nftPrefixEndpoint + base, nftPrefixAffinity + base
}

func nftPortBase(name ServicePortName) string { return string(appendNFTPortBase(nil, name)) }

// nftEndpointBase is servicePortEndpointChainNameBase: IPv6 colons, which a
// chain name cannot hold, become dots.
func nftEndpointBase(name ServicePortName, ep *Endpoint) string {
	ip := ep.Addr.Addr().String()
	if ep.Addr.Addr().Is6() {
		ip = strings.ReplaceAll(ip, ":", ".")
	}
	return nftHashName(nftPortBase(name) + "__" + ip + "/" + itoa(int(ep.Addr.Port())))
}

// nftHashName is hashAndTruncate: the hash keeps truncated names unique
// and tells apart names that differ in one digit.
func nftHashName(name string) string { return string(appendNFTHashName(nil, []byte(name))) }

// isNFTServiceChain: only per-ServicePort chains have a "/" in their name.
func isNFTServiceChain(name string) bool { return strings.Contains(name, "/") }

func isNFTAffinitySet(name string) bool { return strings.HasPrefix(name, nftPrefixAffinity) }

func nftFamily(f corev1.IPFamily) knftables.Family {
	if f == corev1.IPv6Protocol {
		return knftables.IPv6Family
	}
	return knftables.IPv4Family
}
