package proxyrules

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/knftables"

	"github.com/kube-nodekit/nodekit/internal/testenv"
)

// fuzzObjects turns fuzz input into a Service and its EndpointSlice with
// arbitrary addresses, ports, protocols and policies.
func fuzzObjects(clusterIP, extIP, lbIP, srcRange, epAddr, proto string, port, nodePort, epPort int32, flags uint8) ([]*corev1.Service, []*discoveryv1.EndpointSlice) {
	opts := []func(*corev1.Service){func(s *corev1.Service) {
		s.Spec.Ports[0].Protocol = corev1.Protocol(proto)
		s.Spec.Ports[0].NodePort = nodePort
		s.Spec.ExternalIPs = []string{extIP}
		s.Spec.LoadBalancerSourceRanges = []string{srcRange}
		s.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: lbIP}}
	}}
	if flags&1 != 0 {
		opts = append(opts, func(s *corev1.Service) { s.Spec.Type = corev1.ServiceTypeLoadBalancer })
	}
	if flags&2 != 0 {
		opts = append(opts, externalLocal)
	}
	if flags&4 != 0 {
		opts = append(opts, internalLocal)
	}
	if flags&8 != 0 {
		opts = append(opts, clientIPAffinity(int32(flags)))
	}
	svc := service("f", clusterIP, port, opts...)
	es := endpointSlice("f", epPort, corev1.Protocol(proto), ep{ip: epAddr, node: "node1", terminating: flags&16 != 0, notReady: flags&32 != 0})
	if flags&64 != 0 {
		es.Ports[0].Protocol = nil
	}
	if flags&128 != 0 {
		es.Ports[0].Port = ptr.To(int32(0))
	}
	return []*corev1.Service{svc}, []*discoveryv1.EndpointSlice{es}
}

// FuzzNewModel: arbitrary Service and EndpointSlice fields never panic, and
// the output is always well formed: in the iptables payload every rule's
// chain is declared first, and knftables' Fake accepts the nftables
// transaction.
func FuzzNewModel(f *testing.F) {
	f.Add("10.96.0.1", "203.0.113.1", "198.51.100.1", "192.0.2.0/24", "10.244.0.5", "TCP", int32(80), int32(30080), int32(8080), uint8(0))
	f.Add("010.096.000.001", " ", "::1", "0.0.0.0/0", "fe80::1%eth0", "SCTP", int32(65536), int32(-1), int32(0), uint8(255))
	f.Add("None", "", "", "10.0.0.0/33", "", "udp", int32(0), int32(0), int32(1), uint8(9))
	f.Fuzz(func(t *testing.T, clusterIP, extIP, lbIP, srcRange, epAddr, proto string, port, nodePort, epPort int32, flags uint8) {
		svcs, eps := fuzzObjects(clusterIP, extIP, lbIP, srcRange, epAddr, proto, port, nodePort, epPort, flags)
		m, _ := NewModel(DefaultConfig("node1"), svcs, eps)
		if m == nil {
			t.Fatal("NewModel returned no model for a valid config")
		}
		if err := wellFormed(new(IPTables).Sync(m, true).Payload); err != "" {
			t.Fatal(err)
		}
		// knftables' Fake refuses references to missing chains and maps.
		tx := new(NFTables).Sync(m, true).Transaction()
		if err := knftables.NewFake(knftables.IPv4Family, NFTablesTable).Run(context.Background(), tx); err != nil {
			t.Fatalf("nftables transaction refused: %v\n%s", err, tx)
		}
	})
}

// wellFormed checks the payload's structure without a kernel.
func wellFormed(payload []byte) string {
	declared := map[string]bool{}
	for _, line := range strings.Split(string(payload), "\n") {
		switch {
		case strings.HasPrefix(line, "*"):
			declared = map[string]bool{}
		case strings.HasPrefix(line, ":"):
			declared[strings.Fields(line[1:])[0]] = true
		case strings.HasPrefix(line, "-A "):
			if !declared[strings.Fields(line)[1]] {
				return "rule for an undeclared chain: " + line
			}
		}
	}
	return ""
}

// TestFuzzSeedsLoadInKernel: the payloads of the fuzz seed corpus pass the
// real iptables-restore --test.
func TestFuzzSeedsLoadInKernel(t *testing.T) {
	ns := testenv.NetNSes(t, "loadcheck")[0]
	for _, seed := range []struct {
		clusterIP, extIP, lbIP, srcRange, epAddr, proto string
		port, nodePort, epPort                          int32
		flags                                           uint8
	}{
		{"10.96.0.1", "203.0.113.1", "198.51.100.1", "192.0.2.0/24", "10.244.0.5", "TCP", 80, 30080, 8080, 0},
		{"010.096.000.001", " ", "::1", "0.0.0.0/0", "fe80::1%eth0", "SCTP", 65536, -1, 0, 255},
		{"10.96.0.2", "203.0.113.2", "198.51.100.2", " 10.0.0.0/8 ", "10.244.0.6", "UDP", 53, 30053, 5353, 1 | 2 | 8},
		{"10.96.0.3", "", "198.51.100.3", "192.0.2.0/24", "10.244.0.7", "SCTP", 80, 30081, 8080, 1 | 4 | 16},
		// A nodePort outside any port range is reported and left out, so
		// the rest still loads.
		{"10.96.0.4", "", "198.51.100.4", "", "10.244.0.8", "TCP", 80, 70000, 8080, 1},
	} {
		svcs, eps := fuzzObjects(seed.clusterIP, seed.extIP, seed.lbIP, seed.srcRange, seed.epAddr, seed.proto, seed.port, seed.nodePort, seed.epPort, seed.flags)
		m, _ := NewModel(DefaultConfig("node1"), svcs, eps)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		out, err := HostExec(ctx, new(IPTables).Sync(m, true).Payload, "ip", "netns", "exec", ns.Name, "iptables-restore", "--test", "--noflush")
		if err != nil {
			t.Errorf("seed %+v: iptables-restore --test: %v: %s", seed, err, out)
		}
		for _, g := range []*NFTables{{}, {Layout: NFTablesKubeProxy}, {Layout: NFTablesEndpointRules}} {
			out, err = HostExec(ctx, g.Sync(m, true).Script(), "ip", "netns", "exec", ns.Name, "nft", "-c", "-f", "-")
			if err != nil {
				t.Errorf("seed %+v: nft -c (layout %v): %v: %s", seed, g.Layout, err, out)
			}
		}
		cancel()
	}
}
