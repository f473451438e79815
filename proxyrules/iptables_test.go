package proxyrules

import (
	"bytes"
	"fmt"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

// cluster is a workload shaped like the benchmark: 80% ClusterIP,
// 10% NodePort, 10% LoadBalancer with externalTrafficPolicy Local; each
// Service has endpoints backends, one of them on this node.
func cluster(services, endpoints int) ([]*corev1.Service, []*discoveryv1.EndpointSlice) {
	var svcs []*corev1.Service
	var eps []*discoveryv1.EndpointSlice
	for i := range services {
		name := fmt.Sprintf("s%d", i)
		ip := fmt.Sprintf("10.96.%d.%d", i/250, i%250+1)
		var opts []func(*corev1.Service)
		switch i % 10 {
		case 8:
			opts = append(opts, nodePort(int32(30000+i%2000)))
		case 9:
			opts = append(opts, loadBalancer(int32(30000+i%2000), int32(32000+i%700), fmt.Sprintf("203.0.%d.%d", i/250, i%250+1)), externalLocal)
		}
		svcs = append(svcs, service(name, ip, 80, opts...))
		var list []ep
		for e := range endpoints {
			node := "other"
			if e == 0 {
				node = "node1"
			}
			list = append(list, ep{ip: fmt.Sprintf("10.%d.%d.%d", 128+i/65000, i/250%256, e*25+i%25+1), node: node})
		}
		eps = append(eps, endpointSlice(name, 8080, corev1.ProtocolTCP, list...))
	}
	return svcs, eps
}

func mustModel(t testing.TB, cfg Config, svcs []*corev1.Service, eps []*discoveryv1.EndpointSlice) *Model {
	t.Helper()
	m, err := NewModel(cfg, svcs, eps)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestIPTablesPartialSyncWritesOnlyChangedService pins kube-proxy's
// minimize-iptables-restore behaviour: after a committed sync, a change to
// one Service's endpoints rewrites only that Service's own chains, and
// deletes the chain of the endpoint that went. Unlike kube-proxy it leaves
// the top-level chains out while their lines stay the same, and writes
// them when a Service comes or goes.
func TestIPTablesPartialSyncWritesOnlyChangedService(t *testing.T) {
	cfg := DefaultConfig("node1")
	svcs, eps := cluster(1000, 10)
	var g IPTables
	first := g.Sync(mustModel(t, cfg, svcs, eps), false)
	if !first.Full || len(first.Written) != 1000 {
		t.Fatalf("first sync: full=%v written=%d, want a full sync of 1000 ports", first.Full, len(first.Written))
	}
	first.Commit()

	unchanged := g.Sync(mustModel(t, cfg, svcs, eps), false)
	if unchanged.Full || len(unchanged.Written) != 0 {
		t.Fatalf("no change: full=%v written=%v, want a partial sync writing nothing", unchanged.Full, unchanged.Written)
	}

	gone := EndpointChain(ServicePortName{Namespace: "ns", Name: "s7", Port: "p", Protocol: corev1.ProtocolTCP},
		&Endpoint{Addr: addrPort(eps[7].Endpoints[9].Addresses[0] + ":8080")})
	eps[7] = eps[7].DeepCopy()
	eps[7].Endpoints = eps[7].Endpoints[:9]
	s := g.Sync(mustModel(t, cfg, svcs, eps), false)
	want := []ServicePortName{{Namespace: "ns", Name: "s7", Port: "p", Protocol: corev1.ProtocolTCP}}
	if s.Full || !slices.Equal(s.Written, want) {
		t.Fatalf("one change: full=%v written=%v, want only %v", s.Full, s.Written, want)
	}
	if !slices.Equal(s.Deleted, []string{gone}) {
		t.Fatalf("deleted %v, want the removed endpoint's chain %s", s.Deleted, gone)
	}
	other := ChainsFor(ServicePortName{Namespace: "ns", Name: "s8", Port: "p", Protocol: corev1.ProtocolTCP}).Cluster
	if bytes.Contains(s.Payload, []byte(":"+other+" ")) {
		t.Fatalf("partial payload declares %s, a chain of an unchanged Service", other)
	}
	if !bytes.Contains(s.Payload, []byte("-X "+gone+"\n")) {
		t.Fatal("partial payload does not delete the removed endpoint's chain")
	}
	if s.TopLevel || bytes.Contains(s.Payload, []byte(chainServices)) || bytes.Contains(s.Payload, []byte("*filter")) {
		t.Fatalf("an endpoint change rewrites the top-level chains:\n%s", s.Payload)
	}
	if len(s.Payload) > 4096 {
		t.Fatalf("partial payload is %d bytes, want a few lines", len(s.Payload))
	}
	s.Commit()

	svcs = append(svcs, service("new", "10.97.0.1", 80))
	s = g.Sync(mustModel(t, cfg, svcs, eps), false)
	if !s.TopLevel {
		t.Fatal("a new Service leaves the top-level chains out")
	}
	// The top-level chains are written whole.
	if n := bytes.Count(s.Payload, []byte("-A KUBE-SERVICES -m comment --comment \"ns/")); n != 1001+100 {
		t.Fatalf("KUBE-SERVICES has %d Service rules, want 1101 (ClusterIPs and LB IPs)", n)
	}
}

// TestIPTablesUncommittedSyncIsRetried: a payload that failed to load is not
// committed, so the next partial sync writes its changes again.
func TestIPTablesUncommittedSyncIsRetried(t *testing.T) {
	cfg := DefaultConfig("node1")
	svcs, eps := cluster(10, 2)
	var g IPTables
	g.Sync(mustModel(t, cfg, svcs, eps), false).Commit()
	eps[3] = eps[3].DeepCopy()
	eps[3].Endpoints = eps[3].Endpoints[:1]
	failed := g.Sync(mustModel(t, cfg, svcs, eps), false)
	retry := g.Sync(mustModel(t, cfg, svcs, eps), false)
	if !slices.Equal(failed.Written, retry.Written) || len(retry.Written) != 1 || !slices.Equal(failed.Deleted, retry.Deleted) {
		t.Fatalf("retry wrote %v deleting %v, want what the failed sync carried: %v deleting %v", retry.Written, retry.Deleted, failed.Written, failed.Deleted)
	}
}

// TestIPTablesAdoptedChainsDeletedOnFullSync: service chains found in the
// kernel (an earlier proxy's) are deleted by the first full sync unless used.
func TestIPTablesAdoptedChainsDeletedOnFullSync(t *testing.T) {
	cfg := DefaultConfig("node1")
	svcs, eps := cluster(1, 1)
	used := ChainsFor(ServicePortName{Namespace: "ns", Name: "s0", Port: "p", Protocol: corev1.ProtocolTCP}).Cluster
	var g IPTables
	g.Adopt([]string{"KUBE-SERVICES", "KUBE-SVC-STALESTALESTALE1", used, "CNI-HOSTPORT-DNAT"})
	s := g.Sync(mustModel(t, cfg, svcs, eps), false)
	if !slices.Equal(s.Deleted, []string{"KUBE-SVC-STALESTALESTALE1"}) {
		t.Fatalf("deleted %v, want only the stale KUBE-SVC chain (never chains it does not own)", s.Deleted)
	}
}

// TestIPTablesChainNames pins the names kube-proxy gives (examples from
// pkg/proxy/iptables/proxier_test.go).
func TestIPTablesChainNames(t *testing.T) {
	name := ServicePortName{Namespace: "ns1", Name: "svc1", Port: "p80", Protocol: corev1.ProtocolTCP}
	if got := ChainsFor(name).Cluster; got != "KUBE-SVC-XPGD46QRK7WJZT7O" {
		t.Errorf("cluster chain = %s, want KUBE-SVC-XPGD46QRK7WJZT7O", got)
	}
	if got := EndpointChain(name, &Endpoint{Addr: addrPort("10.180.0.1:80")}); got != "KUBE-SEP-SXIVWICOYRO3J4NJ" {
		t.Errorf("endpoint chain = %s, want KUBE-SEP-SXIVWICOYRO3J4NJ", got)
	}
}

// TestIPTablesRuleShapes pins rules for cases the random differential test
// in conformance/ does not reach (health-check node ports, source ranges
// that admit the node, restricted NodePort addresses).
func TestIPTablesRuleShapes(t *testing.T) {
	cfg := DefaultConfig("node1")
	cfg.NodeIP = addrPort("192.168.0.10:0").Addr()
	cfg.NodePortAddresses = []netip.Addr{addrPort("192.168.0.10:0").Addr(), addrPort("127.0.0.1:0").Addr()}
	cfg.LocalhostNodePorts = false
	svcs := []*corev1.Service{service("lb", "10.96.0.1", 80,
		loadBalancer(30080, 32000, "203.0.113.1"), externalLocal, sourceRanges("192.168.0.0/24"))}
	eps := []*discoveryv1.EndpointSlice{endpointSlice("lb", 8080, corev1.ProtocolTCP, ep{ip: "10.244.0.5", node: "node1"})}
	payload := string((&IPTables{}).Sync(mustModel(t, cfg, svcs, eps), true).Payload)
	fw := ChainsFor(ServicePortName{Namespace: "ns", Name: "lb", Port: "p", Protocol: corev1.ProtocolTCP}).Firewall
	ext := ChainsFor(ServicePortName{Namespace: "ns", Name: "lb", Port: "p", Protocol: corev1.ProtocolTCP}).External
	for _, want := range []string{
		`-A KUBE-NODEPORTS -m comment --comment "ns/lb:p health check node port" -m tcp -p tcp --dport 32000 -j ACCEPT`,
		`-A ` + fw + ` -m comment --comment "ns/lb:p loadbalancer IP" -s 192.168.0.0/24 -j ` + ext,
		`-A ` + fw + ` -m comment --comment "ns/lb:p loadbalancer IP" -s 203.0.113.1 -j ` + ext,
		`-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -d 192.168.0.10 -j KUBE-NODEPORTS`,
	} {
		if !strings.Contains(payload, want+"\n") {
			t.Errorf("payload lacks\n%s\n---\n%s", want, payload)
		}
	}
	if strings.Contains(payload, "-d 127.0.0.1 -j KUBE-NODEPORTS") {
		t.Error("a loopback NodePort address without LocalhostNodePorts must be skipped, as upstream does")
	}
	if strings.Contains(payload, ":KUBE-FIREWALL") {
		t.Error("KUBE-FIREWALL (the route_localnet guard) written without LocalhostNodePorts")
	}
}

// TestIPTablesParallelSyncEqualsSequential: a sync big enough to be
// written and assembled by several goroutines gives the same payload as
// one goroutine does.
func TestIPTablesParallelSyncEqualsSequential(t *testing.T) {
	svcs, eps := cluster(10000, 10)
	cfg := DefaultConfig("node1")
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	sequential := new(IPTables).Sync(mustModel(t, cfg, svcs, eps), true).Payload
	runtime.GOMAXPROCS(4)
	parallel := new(IPTables).Sync(mustModel(t, cfg, svcs, eps), true).Payload
	if !bytes.Equal(sequential, parallel) {
		t.Fatalf("payloads differ: %d bytes sequential, %d parallel", len(sequential), len(parallel))
	}
}

// TestIPTablesRecordsSurviveBlockReuse: after a full sync the generator's
// records point into the payload and the writers' blocks go back to a
// pool; another generator then writes into those blocks, and the first
// one's next (partial) sync must still be right.
func TestIPTablesRecordsSurviveBlockReuse(t *testing.T) {
	cfg := DefaultConfig("node1")
	svcs, eps := cluster(3000, 10)
	tr := trackerOf(t, cfg, svcs, eps)
	var g IPTables
	m, _ := tr.Model()
	g.Sync(m, true).Commit()

	other, otherEps := cluster(3000, 9)
	new(IPTables).Sync(mustModel(t, cfg, other, otherEps), true)

	changed := eps[10].DeepCopy()
	changed.Endpoints = changed.Endpoints[:5]
	tr.SetEndpointSlice(changed)
	m, _ = tr.Model()
	s := g.Sync(m, true)
	got := s.Payload
	for _, c := range s.Deleted { // the chains of the endpoints that went
		got = bytes.Replace(got, []byte(":"+c+" - [0:0]\n"), nil, 1)
		got = bytes.Replace(got, []byte("-X "+c+"\n"), nil, 1)
	}
	eps[10] = changed
	want := new(IPTables).Sync(mustModel(t, cfg, svcs, eps), true).Payload
	if len(s.Deleted) != 5 || !bytes.Equal(got, want) {
		t.Fatalf("full sync from kept records differs from a fresh one (%d and %d bytes)", len(got), len(want))
	}
}
