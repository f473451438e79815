package proxyrules

import (
	"crypto/sha256"
	"encoding/base32"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// kube-proxy's chain names (pkg/proxy/iptables/proxier.go).
const (
	chainServices         = "KUBE-SERVICES"
	chainExternalServices = "KUBE-EXTERNAL-SERVICES"
	chainNodePorts        = "KUBE-NODEPORTS"
	chainPostrouting      = "KUBE-POSTROUTING"
	chainMarkMasq         = "KUBE-MARK-MASQ"
	chainForward          = "KUBE-FORWARD"
	chainProxyFirewall    = "KUBE-PROXY-FIREWALL"
	chainKubeletFirewall  = "KUBE-FIREWALL"

	prefixSVC = "KUBE-SVC-"
	prefixSVL = "KUBE-SVL-"
	prefixFW  = "KUBE-FW-"
	prefixEXT = "KUBE-EXT-"
	prefixSEP = "KUBE-SEP-"
)

// IPTablesChains are the per-ServicePort chain names kube-proxy uses: the
// first 16 characters of base32(sha256(portName + protocol)) after a prefix,
// so a name is stable, fits iptables' 28-character limit, and identifies
// the port without revealing it.
type IPTablesChains struct {
	Cluster  string // KUBE-SVC-: endpoints for Cluster traffic policy
	Local    string // KUBE-SVL-: endpoints for Local traffic policy
	External string // KUBE-EXT-: external destinations (NodePort, LB, externalIP)
	Firewall string // KUBE-FW-: loadBalancerSourceRanges
}

// ChainsFor returns the chain names of a ServicePort.
func ChainsFor(name ServicePortName) IPTablesChains {
	return chainsFor(name.String(), protocolWord(name.Protocol))
}

// chainsFor builds the four names in one string (one allocation).
func chainsFor(portName, proto string) IPTablesChains {
	var hash [16]byte
	appendChainHash(hash[:0], portName, proto, "")
	var buf [4 * (len(prefixSVC) + 16)]byte
	b := buf[:0]
	for _, prefix := range []string{prefixSVC, prefixSVL, prefixEXT, prefixFW} {
		b = append(append(b, prefix...), hash[:]...)
	}
	all := string(b)
	svc, svl, ext := len(prefixSVC)+16, len(prefixSVL)+16, len(prefixEXT)+16
	return IPTablesChains{Cluster: all[:svc], Local: all[svc : svc+svl], External: all[svc+svl : svc+svl+ext], Firewall: all[svc+svl+ext:]}
}

// EndpointChain returns the KUBE-SEP- chain of an endpoint of a ServicePort.
func EndpointChain(name ServicePortName, ep *Endpoint) string {
	var buf [32]byte
	return string(appendChainHash(append(buf[:0], prefixSEP...), name.String(), protocolWord(name.Protocol), ep.String()))
}

// appendChainHash appends kube-proxy's portProtoHash of a+b+c: the first 16
// characters of base32(sha256), which encode exactly its first 10 bytes.
func appendChainHash(dst []byte, a, b, c string) []byte {
	var in [160]byte
	s := append(append(append(in[:0], a...), b...), c...)
	sum := sha256.Sum256(s)
	var out [16]byte
	base32.StdEncoding.Encode(out[:], sum[:10])
	return append(dst, out[:]...)
}

// protocolWord is the protocol as iptables writes it: lower case.
func protocolWord(p corev1.Protocol) string {
	switch p {
	case corev1.ProtocolTCP:
		return "tcp"
	case corev1.ProtocolUDP:
		return "udp"
	case corev1.ProtocolSCTP:
		return "sctp"
	}
	return strings.ToLower(string(p))
}

// isServiceChain reports whether a nat chain is a per-ServicePort chain
// this package owns (and so may delete when it is no longer used).
func isServiceChain(chain string) bool {
	for _, p := range []string{prefixSVC, prefixSVL, prefixSEP, prefixFW, prefixEXT} {
		if strings.HasPrefix(chain, p) {
			return true
		}
	}
	return false
}
