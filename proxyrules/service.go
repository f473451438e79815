package proxyrules

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	corev1 "k8s.io/api/core/v1"
	netutils "k8s.io/utils/net"
)

// ServicePortName identifies one port of a Service, as kube-proxy does:
// "namespace/name:port" (":port" only when the port is named) and protocol.
type ServicePortName struct {
	Namespace, Name, Port string
	Protocol              corev1.Protocol
}

// String is kube-proxy's ServicePortName.String (pkg/proxy/types.go), which
// also feeds its chain-name hashes.
func (n ServicePortName) String() string {
	s := n.Namespace + "/" + n.Name
	if n.Port != "" {
		s += ":" + n.Port
	}
	return s
}

// ServicePort is one port of one Service in one IP family, with everything
// kube-proxy derives from the Service for it (pkg/proxy/serviceport.go).
type ServicePort struct {
	Name                ServicePortName
	ClusterIP           netip.Addr
	Port                int
	NodePort            int
	ExternalIPs         []netip.Addr
	LoadBalancerVIPs    []netip.Addr
	SourceRanges        []netip.Prefix
	ClientIPAffinity    bool
	StickyMaxAgeSeconds int
	ExternalPolicyLocal bool
	InternalPolicyLocal bool
	// HealthCheckNodePort is the port a LoadBalancer Service with
	// externalTrafficPolicy Local expects the node to serve its health check
	// on (the caller serves it; the rules only accept traffic to it).
	HealthCheckNodePort int
}

// ExternallyAccessible reports whether the port has any external
// destination: a NodePort, a load-balancer VIP or an external IP.
func (p *ServicePort) ExternallyAccessible() bool {
	return p.NodePort != 0 || len(p.LoadBalancerVIPs) > 0 || len(p.ExternalIPs) > 0
}

// UsesClusterEndpoints: even with externalTrafficPolicy Local, cluster
// endpoints are needed to short-circuit traffic from pods and the node.
func (p *ServicePort) UsesClusterEndpoints() bool {
	return !p.InternalPolicyLocal || p.ExternallyAccessible()
}

// UsesLocalEndpoints reports whether either traffic policy is Local.
func (p *ServicePort) UsesLocalEndpoints() bool {
	return p.InternalPolicyLocal || (p.ExternalPolicyLocal && p.ExternallyAccessible())
}

// servicePorts turns a Service into its ports for one family, as kube-proxy's
// service change tracker does: headless and ExternalName Services, and
// Services without a ClusterIP of this family, have none. Malformed fields
// are reported and left out, never guessed at.
func servicePorts(svc *corev1.Service, family corev1.IPFamily) ([]*ServicePort, error) {
	if svc.Spec.Type == corev1.ServiceTypeExternalName {
		return nil, nil
	}
	if svc.Spec.ClusterIP == "" || svc.Spec.ClusterIP == corev1.ClusterIPNone {
		return nil, nil
	}
	key := serviceKey{svc.Namespace, svc.Name} // formatted only into errors
	raw := clusterIPByFamily(svc, family)
	if raw == "" {
		return nil, nil
	}
	clusterIP, ok := parseIPSloppy(raw)
	if !ok {
		return nil, fmt.Errorf("service %s: clusterIP %q is not an IP address", key, raw)
	}
	var errs []error
	extPolicyLocal := externalPolicyLocal(svc)
	base := ServicePort{
		ClusterIP:           clusterIP,
		ExternalPolicyLocal: extPolicyLocal,
		InternalPolicyLocal: svc.Spec.InternalTrafficPolicy != nil && *svc.Spec.InternalTrafficPolicy == corev1.ServiceInternalTrafficPolicyLocal,
	}
	if svc.Spec.SessionAffinity == corev1.ServiceAffinityClientIP {
		base.ClientIPAffinity = true
		base.StickyMaxAgeSeconds = int(corev1.DefaultClientIPServiceAffinitySeconds)
		if c := svc.Spec.SessionAffinityConfig; c != nil && c.ClientIP != nil && c.ClientIP.TimeoutSeconds != nil {
			base.StickyMaxAgeSeconds = int(*c.ClientIP.TimeoutSeconds)
		}
	}
	for _, s := range svc.Spec.ExternalIPs {
		if ip, ok := parseIPSloppy(s); ok {
			if isFamily(ip, family) {
				base.ExternalIPs = append(base.ExternalIPs, ip)
			}
		} else if strings.TrimSpace(s) != "" {
			errs = append(errs, fmt.Errorf("service %s: externalIP %q is not an IP address", key, s))
		}
	}
	// Validation allows whitespace around source ranges; a /0 means "any",
	// the same as none (pkg/proxy/serviceport.go).
	anyRange := false
	for _, s := range svc.Spec.LoadBalancerSourceRanges {
		p, err := parseCIDRSloppy(strings.TrimSpace(s))
		if err != nil {
			errs = append(errs, fmt.Errorf("service %s: loadBalancerSourceRange %q: %w", key, s, err))
			continue
		}
		if isFamily(p.Addr(), family) {
			anyRange = anyRange || p.Bits() == 0
			base.SourceRanges = append(base.SourceRanges, p)
		}
	}
	if anyRange {
		base.SourceRanges = nil
	}
	for _, ing := range svc.Status.LoadBalancer.Ingress {
		// Only VIP-mode load balancers are kube-proxy's business.
		if ing.IP == "" || (ing.IPMode != nil && *ing.IPMode != corev1.LoadBalancerIPModeVIP) {
			continue
		}
		ip, ok := parseIPSloppy(ing.IP)
		if !ok {
			errs = append(errs, fmt.Errorf("service %s: load-balancer ingress IP %q is not an IP address", key, ing.IP))
			continue
		}
		if isFamily(ip, family) {
			base.LoadBalancerVIPs = append(base.LoadBalancerVIPs, ip)
		}
	}
	if svc.Spec.Type == corev1.ServiceTypeLoadBalancer && extPolicyLocal {
		switch hc := svc.Spec.HealthCheckNodePort; {
		case hc == 0:
			errs = append(errs, fmt.Errorf("service %s: LoadBalancer with externalTrafficPolicy Local has no healthCheckNodePort", key))
		case hc < 0 || hc > 65535:
			errs = append(errs, fmt.Errorf("service %s: healthCheckNodePort %d out of range; ignored", key, hc))
		default:
			base.HealthCheckNodePort = int(hc)
		}
	}

	ports := make([]*ServicePort, 0, len(svc.Spec.Ports))
	block := make([]ServicePort, len(svc.Spec.Ports)) // one allocation for them all
	for i := range svc.Spec.Ports {
		sp := &svc.Spec.Ports[i]
		if sp.Port <= 0 || sp.Port > 65535 {
			errs = append(errs, fmt.Errorf("service %s: port %q: number %d out of range", key, sp.Name, sp.Port))
			continue
		}
		proto := protocolOrTCP(sp.Protocol)
		if proto != corev1.ProtocolTCP && proto != corev1.ProtocolUDP && proto != corev1.ProtocolSCTP {
			// API validation allows only these; anything else would make
			// rules the kernel refuses, taking the whole payload down.
			errs = append(errs, fmt.Errorf("service %s: port %q: protocol %q is not TCP, UDP or SCTP; ignored", key, sp.Name, sp.Protocol))
			continue
		}
		p := &block[i]
		*p = base
		p.Name = ServicePortName{Namespace: svc.Namespace, Name: svc.Name, Port: sp.Name, Protocol: proto}
		p.Port = int(sp.Port)
		// The apiserver allocates NodePorts from its range; one outside any
		// port range would make the whole payload fail to load, so it is
		// reported and left out (the ClusterIP still works).
		if sp.NodePort < 0 || sp.NodePort > 65535 {
			errs = append(errs, fmt.Errorf("service %s: port %q: nodePort %d out of range; ignored", key, sp.Name, sp.NodePort))
		} else {
			p.NodePort = int(sp.NodePort)
		}
		ports = append(ports, p)
	}
	return ports, errors.Join(errs...)
}

// clusterIPByFamily is pkg/proxy/util GetClusterIPByFamily: with
// spec.ipFamilies, the clusterIPs entry at that family's index; without (an
// old object), spec.clusterIP if it is of the family.
func clusterIPByFamily(svc *corev1.Service, family corev1.IPFamily) string {
	if len(svc.Spec.IPFamilies) == 0 {
		if netutils.IsIPv6String(svc.Spec.ClusterIP) == (family == corev1.IPv6Protocol) {
			return svc.Spec.ClusterIP
		}
		return ""
	}
	for i, f := range svc.Spec.IPFamilies {
		if f == family && i < len(svc.Spec.ClusterIPs) {
			return svc.Spec.ClusterIPs[i]
		}
	}
	return ""
}

// externalPolicyLocal is pkg/api/v1/service ExternalPolicyLocal.
func externalPolicyLocal(svc *corev1.Service) bool {
	accessible := svc.Spec.Type == corev1.ServiceTypeLoadBalancer || svc.Spec.Type == corev1.ServiceTypeNodePort ||
		(svc.Spec.Type == corev1.ServiceTypeClusterIP && len(svc.Spec.ExternalIPs) > 0)
	return accessible && svc.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal
}

// protocolOrTCP applies the API default: an unset protocol is TCP.
func protocolOrTCP(p corev1.Protocol) corev1.Protocol {
	if p == "" {
		return corev1.ProtocolTCP
	}
	return p
}

// parseIPSloppy parses as Kubernetes does, accepting the IPv4 leading zeros
// ("010.0.0.1" is 10.0.0.1) that older validation let through.
func parseIPSloppy(s string) (netip.Addr, bool) {
	if a, err := netip.ParseAddr(s); err == nil && a.Zone() == "" {
		return a.Unmap(), true
	}
	ip := netutils.ParseIPSloppy(s)
	if ip == nil {
		return netip.Addr{}, false
	}
	a, ok := netip.AddrFromSlice(ip)
	return a.Unmap(), ok
}

func parseCIDRSloppy(s string) (netip.Prefix, error) {
	_, n, err := netutils.ParseCIDRSloppy(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	a, _ := netip.AddrFromSlice(n.IP)
	bits, _ := n.Mask.Size()
	return netip.PrefixFrom(a.Unmap(), bits), nil
}

func isFamily(a netip.Addr, family corev1.IPFamily) bool {
	return a.Is4() == (family == corev1.IPv4Protocol)
}
