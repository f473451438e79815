package proxyrules

import (
	"net/netip"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

// TestTrace pins the tracer on cases the kernel lab does not send; each
// follows a rule of pkg/proxy/iptables/proxier.go.
func TestTrace(t *testing.T) {
	cfg := DefaultConfig("node1")
	cfg.ClusterCIDR = netip.MustParsePrefix("10.244.0.0/16")
	cfg.NodeIP = netip.MustParseAddr("192.168.0.10")
	local := ep{ip: "10.244.0.5", node: "node1"}
	remote := ep{ip: "10.244.1.5", node: "node2"}
	svcs := []*corev1.Service{
		service("fw", "10.96.0.1", 80, loadBalancer(30001, 0, "203.0.113.1"), sourceRanges("198.51.100.0/24")),
		service("etp", "10.96.0.2", 80, loadBalancer(30002, 32002, "203.0.113.2"), externalLocal),
		service("etp-remote", "10.96.0.3", 80, nodePort(30003), externalLocal),
		service("itp", "10.96.0.4", 80, internalLocal),
	}
	eps := []*discoveryv1.EndpointSlice{
		endpointSlice("fw", 8080, corev1.ProtocolTCP, local, remote),
		endpointSlice("etp", 8080, corev1.ProtocolTCP, local, remote),
		endpointSlice("etp-remote", 8080, corev1.ProtocolTCP, remote),
		endpointSlice("itp", 8080, corev1.ProtocolTCP, remote),
	}
	m := mustModel(t, cfg, svcs, eps)
	outside, pod := netip.MustParseAddr("192.0.2.7"), netip.MustParseAddr("10.244.3.3")
	for _, tc := range []struct {
		name      string
		pkt       Packet
		want      Verdict
		endpoints int
		masq      bool
	}{
		{"LB source outside loadBalancerSourceRanges is dropped (KUBE-PROXY-FIREWALL)",
			Packet{Src: outside, Dst: addrPort("203.0.113.1:80")}, VerdictDrop, 0, false},
		{"LB source inside the ranges reaches every endpoint, masqueraded",
			Packet{Src: netip.MustParseAddr("198.51.100.9"), Dst: addrPort("203.0.113.1:80")}, VerdictDNAT, 2, true},
		{"NodePorts ignore loadBalancerSourceRanges",
			Packet{Src: outside, Dst: addrPort("192.168.0.10:30001")}, VerdictDNAT, 2, true},
		{"eTP Local from outside: local endpoints only, source kept",
			Packet{Src: outside, Dst: addrPort("203.0.113.2:80")}, VerdictDNAT, 1, false},
		{"eTP Local from a pod short-circuits to all endpoints",
			Packet{Src: pod, Dst: addrPort("203.0.113.2:80")}, VerdictDNAT, 2, false},
		{"eTP Local from the node short-circuits, masqueraded",
			Packet{Src: cfg.NodeIP, Dst: addrPort("203.0.113.2:80"), FromNode: true}, VerdictDNAT, 2, true},
		{"eTP Local without local endpoints drops outside traffic",
			Packet{Src: outside, Dst: addrPort("192.168.0.10:30003")}, VerdictDrop, 0, false},
		{"health-check node port is accepted for the node",
			Packet{Src: outside, Dst: addrPort("192.168.0.10:32002")}, VerdictAccept, 0, false},
		{"iTP Local without local endpoints drops ClusterIP traffic",
			Packet{Src: pod, Dst: addrPort("10.96.0.4:80")}, VerdictDrop, 0, false},
		{"pod to ClusterIP is not masqueraded",
			Packet{Src: pod, Dst: addrPort("10.96.0.1:80")}, VerdictDNAT, 2, false},
		{"wrong protocol matches nothing",
			Packet{Src: pod, Dst: addrPort("10.96.0.1:80"), Protocol: corev1.ProtocolUDP}, VerdictNone, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := m.Trace(tc.pkt)
			if tr.Verdict != tc.want || len(tr.Endpoints) != tc.endpoints || tr.Masquerade != tc.masq {
				t.Fatalf("trace = %v, want %s to %d endpoints, masquerade %v", tr, tc.want, tc.endpoints, tc.masq)
			}
		})
	}
}
