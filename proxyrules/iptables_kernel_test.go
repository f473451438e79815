package proxyrules

import (
	"context"
	"errors"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

// labServices is the Service set the kernel tests load: one case per
// behaviour, all backed by the lab's backends be1..be3 (be1 on this node).
func labServices(lab *netLab) ([]*corev1.Service, []*discoveryv1.EndpointSlice) {
	be := func(i int, mods ...func(*ep)) ep {
		e := ep{ip: lab.backendIPs[i].String(), node: "other"}
		if i == 0 {
			e.node = "node1"
		}
		for _, m := range mods {
			m(&e)
		}
		return e
	}
	terminating := func(e *ep) { e.notReady, e.terminating = true, true }
	services := []*corev1.Service{
		service("web", "203.0.113.10", 80, nodePort(30080), externalIPs("203.0.113.20")),
		service("sticky", "203.0.113.11", 80, clientIPAffinity(600)),
		service("empty", "203.0.113.12", 80, nodePort(30082)),
		service("local", "203.0.113.13", 80, nodePort(30081), externalLocal),
		service("draining", "203.0.113.14", 80),
		service("dns", "203.0.113.15", 53, udp),
	}
	slices := []*discoveryv1.EndpointSlice{
		endpointSlice("web", labTCPPort, corev1.ProtocolTCP, be(0), be(1), be(2)),
		endpointSlice("sticky", labTCPPort, corev1.ProtocolTCP, be(0), be(1), be(2)),
		endpointSlice("local", labTCPPort, corev1.ProtocolTCP, be(0), be(1), be(2)),
		endpointSlice("draining", labTCPPort, corev1.ProtocolTCP, be(1, terminating), be(2, terminating)),
		endpointSlice("dns", labUDPPort, corev1.ProtocolUDP, be(0), be(1), be(2)),
	}
	return services, slices
}

func labConfig(lab *netLab) Config {
	cfg := DefaultConfig("node1")
	cfg.ClusterCIDR = labPodCIDR
	cfg.NodeIP = lab.nodeIP
	return cfg
}

// forEachBackend runs a kernel test once per iptables backend, each in its
// own lab. The whole matrix is run: a lab and its checks take well under a
// second, and the backends differ exactly where these tests look (how
// --noflush merges into the loaded table, how a refused line is reported).
func forEachBackend(t *testing.T, test func(t *testing.T, b IPTablesBackend)) {
	for _, b := range []IPTablesBackend{IPTablesNFT, IPTablesLegacy} {
		t.Run("backend="+string(b), func(t *testing.T) { test(t, b) })
	}
}

// TestIPTablesRealPackets loads the generated rules into a node namespace
// with the real iptables-restore and sends real connections through them.
func TestIPTablesRealPackets(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b IPTablesBackend) {
		lab := newNetLab(t, 3)
		services, slices := labServices(lab)
		m, err := NewModel(labConfig(lab), services, slices)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		applier := &IPTablesApplier{Exec: lab.nodeExec, Backend: b}
		if _, err := applier.Apply(ctx, m, true); err != nil {
			t.Fatal(err)
		}
		lab.expectOnlyBackend(t, b)
		checkLabTraffic(t, lab, m)
	})
}

// expectOnlyBackend checks that the rules went into b's tables and that
// the other backend's tables hold none of them: otherwise the traffic
// checks could pass on rules the other backend loaded.
func (lab *netLab) expectOnlyBackend(t *testing.T, b IPTablesBackend) {
	t.Helper()
	other := IPTablesLegacy
	if b == IPTablesLegacy {
		other = IPTablesNFT
	}
	if dump := lab.node.Run(t, b.tool(false, "-save"), "-t", "nat"); !strings.Contains(dump, "\n:"+chainServices+" ") {
		t.Fatalf("%s -t nat has no %s:\n%s", b.tool(false, "-save"), chainServices, dump)
	}
	// Without -t: the legacy tools would create the table they are asked for.
	if dump := lab.node.Run(t, other.tool(false, "-save")); strings.Contains(dump, "KUBE-") {
		t.Fatalf("the %s backend was asked for, but %s shows:\n%s", b, other.tool(false, "-save"), dump)
	}
}

// checkLabTraffic sends the lab's traffic cases, and checks that the
// tracer predicted what the kernel did; shared by both backends.
func checkLabTraffic(t *testing.T, lab *netLab, m *Model) {
	fromClient := func(dst string) Trace {
		return m.Trace(Packet{Src: lab.clientIP, Dst: addrPort(dst), ToNode: strings.HasPrefix(dst, lab.nodeIP.String()+":")})
	}
	t.Run("ClusterIP spreads over every backend", func(t *testing.T) {
		tr := fromClient("203.0.113.10:80")
		seen := map[string]int{}
		for range 60 {
			r, err := lab.dialTCP(t, addrPort("203.0.113.10:80"))
			if err != nil {
				t.Fatal(err)
			}
			seen[r.backend]++
			// Off-cluster traffic to a ClusterIP is masqueraded.
			if r.source != lab.backendGateway(r.backend) || !tr.Masquerade {
				t.Fatalf("%s saw source %s (tracer masquerade=%v), want the node's address %s", r.backend, r.source, tr.Masquerade, lab.backendGateway(r.backend))
			}
		}
		if len(seen) != 3 {
			t.Fatalf("60 connections reached %v, want all of be1, be2, be3", seen)
		}
		lab.expectTrace(t, tr, VerdictDNAT, seen)
	})
	t.Run("NodePort", func(t *testing.T) {
		r, err := lab.dialTCP(t, addrPort("192.0.2.1:30080"))
		if err != nil {
			t.Fatal(err)
		}
		tr := fromClient("192.0.2.1:30080")
		lab.expectTrace(t, tr, VerdictDNAT, nil)
		if !lab.traceReaches(tr, r.backend) || !tr.Masquerade {
			t.Fatalf("reached %s seeing %s; tracer said %v", r.backend, r.source, tr)
		}
	})
	t.Run("externalIP", func(t *testing.T) {
		lab.node.Run(t, "ip", "addr", "add", "203.0.113.20/32", "dev", "lo")
		lab.client.Run(t, "ip", "route", "add", "203.0.113.20/32", "via", "192.0.2.1")
		r, err := lab.dialTCP(t, addrPort("203.0.113.20:80"))
		if err != nil {
			t.Fatal(err)
		}
		if tr := fromClient("203.0.113.20:80"); !lab.traceReaches(tr, r.backend) {
			t.Fatalf("reached %s; tracer said %v", r.backend, tr)
		}
	})
	t.Run("ClientIP affinity sticks to one backend", func(t *testing.T) {
		first, err := lab.dialTCP(t, addrPort("203.0.113.11:80"))
		if err != nil {
			t.Fatal(err)
		}
		for range 20 {
			r, err := lab.dialTCP(t, addrPort("203.0.113.11:80"))
			if err != nil {
				t.Fatal(err)
			}
			if r.backend != first.backend {
				t.Fatalf("affinity broken: first %s, then %s", first.backend, r.backend)
			}
		}
		if tr := fromClient("203.0.113.11:80"); !tr.Affinity || !lab.traceReaches(tr, first.backend) {
			t.Fatalf("tracer said %v", tr)
		}
	})
	t.Run("no endpoints is refused, not a black hole", func(t *testing.T) {
		for _, dst := range []string{"203.0.113.12:80", "192.0.2.1:30082"} {
			start := time.Now()
			_, err := lab.dialTCP(t, addrPort(dst))
			if !errors.Is(err, errRefused) {
				t.Fatalf("%s: err = %v, want connection refused", dst, err)
			}
			if time.Since(start) > 2*time.Second {
				t.Fatalf("%s: refusal took %v: a timeout, not a REJECT", dst, time.Since(start))
			}
			lab.expectTrace(t, fromClient(dst), VerdictReject, nil)
		}
	})
	t.Run("externalTrafficPolicy Local keeps the client IP and only local backends", func(t *testing.T) {
		for range 20 {
			r, err := lab.dialTCP(t, addrPort("192.0.2.1:30081"))
			if err != nil {
				t.Fatal(err)
			}
			if r.backend != "be1" || r.source != lab.clientIP {
				t.Fatalf("reply %+v, want be1 seeing the client %s", r, lab.clientIP)
			}
		}
		tr := fromClient("192.0.2.1:30081")
		lab.expectTrace(t, tr, VerdictDNAT, map[string]int{"be1": 1})
		if tr.Masquerade {
			t.Fatalf("tracer said %v, want the source kept", tr)
		}
	})
	t.Run("terminating endpoints still serve when nothing is ready", func(t *testing.T) {
		seen := lab.reached(t, "203.0.113.14:80", 30)
		if seen["be1"] > 0 || len(seen) != 2 {
			t.Fatalf("reached %v, want the terminating be2 and be3", seen)
		}
		lab.expectTrace(t, fromClient("203.0.113.14:80"), VerdictDNAT, seen)
	})
	t.Run("UDP", func(t *testing.T) {
		r, err := lab.dialUDP(t, addrPort("203.0.113.15:53"))
		if err != nil {
			t.Fatal(err)
		}
		tr := m.Trace(Packet{Src: lab.clientIP, Dst: addrPort("203.0.113.15:53"), Protocol: corev1.ProtocolUDP})
		if !lab.traceReaches(tr, r.backend) {
			t.Fatalf("reached %s; tracer said %v", r.backend, tr)
		}
	})
}

// expectTrace checks the tracer's verdict and, when reached is given, that
// its endpoints are exactly the backends the kernel reached.
func (lab *netLab) expectTrace(t *testing.T, tr Trace, want Verdict, reached map[string]int) {
	t.Helper()
	if tr.Verdict != want {
		t.Fatalf("tracer said %v, the kernel did %s", tr, want)
	}
	if reached == nil {
		return
	}
	names := map[string]bool{}
	for _, e := range tr.Endpoints {
		names[lab.backendOf(e)] = true
	}
	for b := range reached {
		if !names[b] {
			t.Fatalf("the kernel reached %s, the tracer's endpoints are %v", b, tr)
		}
	}
	if len(names) != len(reached) {
		t.Fatalf("tracer endpoints %v, the kernel reached %v", tr, reached)
	}
}

func (lab *netLab) traceReaches(tr Trace, backend string) bool {
	if tr.Verdict != VerdictDNAT {
		return false
	}
	for _, e := range tr.Endpoints {
		if lab.backendOf(e) == backend {
			return true
		}
	}
	return false
}

// backendOf names the lab backend an endpoint is on.
func (lab *netLab) backendOf(e *Endpoint) string {
	for i, ip := range lab.backendIPs {
		if e.Addr.Addr() == ip {
			return "be" + strconv.Itoa(i+1)
		}
	}
	return e.String()
}

// backendGateway is the node's address on a backend's link: what the
// backend sees as the source of masqueraded traffic.
func (lab *netLab) backendGateway(backend string) netip.Addr {
	i := int(strings.TrimPrefix(backend, "be")[0] - '1')
	return netip.MustParseAddr("198.51.100." + strconv.Itoa(16*i+1))
}

// loadedLab is a lab whose node holds the rules of labServices, loaded
// with backend b by the applier it returns.
func loadedLab(ctx context.Context, t *testing.T, b IPTablesBackend) (*netLab, []*corev1.Service, []*discoveryv1.EndpointSlice, *IPTablesApplier) {
	t.Helper()
	lab := newNetLab(t, 3)
	services, slices := labServices(lab)
	applier := &IPTablesApplier{Exec: lab.nodeExec, Backend: b}
	if _, err := applier.Apply(ctx, mustModel(t, labConfig(lab), services, slices), false); err != nil {
		t.Fatal(err)
	}
	return lab, services, slices, applier
}

// TestIPTablesPartialSyncInKernel: after a partial sync that carries only
// the changed Service, traffic in the kernel follows the change.
func TestIPTablesPartialSyncInKernel(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b IPTablesBackend) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		lab, services, slices, applier := loadedLab(ctx, t, b)
		// "web" loses be1 and be3.
		slices[0] = endpointSlice("web", labTCPPort, corev1.ProtocolTCP, ep{ip: lab.backendIPs[1].String(), node: "other"})
		s, err := applier.Apply(ctx, mustModel(t, labConfig(lab), services, slices), false)
		if err != nil {
			t.Fatal(err)
		}
		if s.Full || len(s.Written) != 1 || s.Written[0].Name != "web" {
			t.Fatalf("sync full=%v wrote %v, want a partial sync of ns/web only", s.Full, s.Written)
		}
		if seen := lab.reached(t, "203.0.113.10:80", 20); len(seen) != 1 || seen["be2"] == 0 {
			t.Fatalf("after the change, web reached %v, want only be2", seen)
		}
	})
}

// TestIPTablesFailedApplyKeepsRules: a payload the kernel refuses leaves
// the loaded rules forwarding, the error names the refused line, and the
// next sync recovers. The refusal is a real one: a rule the applier does not
// own (added here by hand) still jumps to an endpoint chain the new payload
// deletes.
func TestIPTablesFailedApplyKeepsRules(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b IPTablesBackend) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		lab, services, slices, applier := loadedLab(ctx, t, b)
		web := ServicePortName{Namespace: "ns", Name: "web", Port: "p", Protocol: corev1.ProtocolTCP}
		be1 := EndpointChain(web, &Endpoint{Addr: netip.AddrPortFrom(lab.backendIPs[0], labTCPPort)})
		lab.node.Run(t, b.tool(false, ""), "-t", "nat", "-A", "OUTPUT", "-d", "192.0.2.99", "-j", be1)

		slices[0] = endpointSlice("web", labTCPPort, corev1.ProtocolTCP, ep{ip: lab.backendIPs[1].String(), node: "other"})
		_, err := applier.Apply(ctx, mustModel(t, labConfig(lab), services, slices), false)
		if err == nil || !strings.Contains(err.Error(), `"-X `+be1+`"`) {
			t.Fatalf("apply deleting a chain still in use: err = %v, want an error quoting the line -X %s", err, be1)
		}
		t.Logf("refused as expected: %v", err)
		// The old rules still route web to all three backends.
		seen := lab.reached(t, "203.0.113.10:80", 40)
		if len(seen) != 3 {
			t.Fatalf("after a failed apply web reached %v, want the old rules' three backends", seen)
		}

		lab.node.Run(t, b.tool(false, ""), "-t", "nat", "-D", "OUTPUT", "-d", "192.0.2.99", "-j", be1)
		if _, err := applier.Apply(ctx, mustModel(t, labConfig(lab), services, slices), false); err != nil {
			t.Fatalf("sync after the failure: %v", err)
		}
		for range 10 {
			if r, err := lab.dialTCP(t, addrPort("203.0.113.10:80")); err != nil || r.backend != "be2" {
				t.Fatalf("after recovery web reached %+v, %v; want be2", r, err)
			}
		}
	})
}
