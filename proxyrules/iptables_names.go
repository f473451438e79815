package proxyrules

import (
	"crypto/sha256"
	"encoding/base32"
	"strings"
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
	h := portProtoHash(name.String(), strings.ToLower(string(name.Protocol)))
	return IPTablesChains{Cluster: prefixSVC + h, Local: prefixSVL + h, External: prefixEXT + h, Firewall: prefixFW + h}
}

// EndpointChain returns the KUBE-SEP- chain of an endpoint of a ServicePort.
func EndpointChain(name ServicePortName, ep *Endpoint) string {
	return prefixSEP + portProtoHash(name.String(), strings.ToLower(string(name.Protocol))+ep.String())
}

func portProtoHash(portName, suffix string) string {
	h := sha256.Sum256([]byte(portName + suffix))
	return base32.StdEncoding.EncodeToString(h[:])[:16]
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
