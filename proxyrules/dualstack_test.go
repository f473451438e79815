package proxyrules

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/kube-nodekit/nodekit/internal/testenv"
)

// dualStack is a Service with an IPv4 and an IPv6 ClusterIP and a slice of
// each address type, as the EndpointSlice controller writes them.
func dualStack() ([]*corev1.Service, []*discoveryv1.EndpointSlice) {
	svc := service("ds", "10.96.0.9", 80, nodePort(30090), externalIPs("203.0.113.9", "2001:db8::9"))
	svc.Spec.ClusterIPs = []string{"10.96.0.9", "fd00:96::9"}
	svc.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv4Protocol, corev1.IPv6Protocol}
	v4 := endpointSlice("ds", 8080, corev1.ProtocolTCP, ep{ip: "10.244.0.9", node: "node1"})
	v6 := endpointSlice("ds", 8080, corev1.ProtocolTCP, ep{ip: "fd00:244::9", node: "node1"})
	v6.Name, v6.AddressType = "ds-v6", discoveryv1.AddressTypeIPv6
	return []*corev1.Service{svc}, []*discoveryv1.EndpointSlice{v4, v6}
}

// TestDualStackSeparateFamilies: each family's model holds only its own
// addresses (kube-proxy runs one proxier per family, pkg/proxy/serviceport.go
// filters externalIPs, LB IPs and source ranges by family).
func TestDualStackSeparateFamilies(t *testing.T) {
	svcs, eps := dualStack()
	v6cfg := DefaultConfig("node1")
	v6cfg.Family = corev1.IPv6Protocol
	for _, tc := range []struct {
		cfg        Config
		clusterIP  string
		externalIP string
		endpoint   string
	}{
		{DefaultConfig("node1"), "10.96.0.9", "203.0.113.9", "10.244.0.9:8080"},
		{v6cfg, "fd00:96::9", "2001:db8::9", "[fd00:244::9]:8080"},
	} {
		m := mustModel(t, tc.cfg, svcs, eps)
		if len(m.Ports) != 1 {
			t.Fatalf("%s: %d ports, want 1", tc.cfg.Family, len(m.Ports))
		}
		p := m.Ports[0]
		if p.ClusterIP.String() != tc.clusterIP || len(p.ExternalIPs) != 1 || p.ExternalIPs[0].String() != tc.externalIP ||
			len(p.Cluster) != 1 || p.Cluster[0].String() != tc.endpoint {
			t.Fatalf("%s: port %+v cluster endpoints %v, want %s, %s, %s", tc.cfg.Family, p.ServicePort, p.Cluster, tc.clusterIP, tc.externalIP, tc.endpoint)
		}
	}
	payload := string(new(IPTables).Sync(mustModel(t, v6cfg, svcs, eps), true).Payload)
	// IPv6 never serves NodePorts on localhost, and has no route_localnet guard.
	if !strings.Contains(payload, "-m addrtype --dst-type LOCAL ! -d ::1/128 -j KUBE-NODEPORTS") || strings.Contains(payload, "KUBE-FIREWALL") {
		t.Fatalf("IPv6 payload:\n%s", payload)
	}
}

// TestDualStackLoadsInKernel: both families' payloads load with the real
// iptables-restore and ip6tables-restore.
func TestDualStackLoadsInKernel(t *testing.T) {
	ns := testenv.NetNSes(t, "dualstack")[0]
	svcs, eps := dualStack()
	v6cfg := DefaultConfig("node1")
	v6cfg.Family = corev1.IPv6Protocol
	v6cfg.ClusterCIDR = netip.MustParsePrefix("fd00:244::/64")
	v4cfg := DefaultConfig("node1")
	v4cfg.ClusterCIDR = netip.MustParsePrefix("10.244.0.0/16")
	for _, fam := range []struct {
		cfg  Config
		ipv6 bool
	}{{v4cfg, false}, {v6cfg, true}} {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		applier := &IPTablesApplier{IPv6: fam.ipv6, Exec: func(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error) {
			return HostExec(ctx, stdin, "ip", append([]string{"netns", "exec", ns.Name, name}, args...)...)
		}}
		_, err := applier.Apply(ctx, mustModel(t, fam.cfg, svcs, eps), true)
		cancel()
		if err != nil {
			t.Fatalf("%s: %v", fam.cfg.Family, err)
		}
	}
	out := ns.Run(t, "ip6tables-save", "-t", "nat")
	if !strings.Contains(out, "--to-destination [fd00:244::9]:8080") {
		t.Fatalf("ip6tables nat table lacks the IPv6 DNAT:\n%s", out)
	}
}
