package proxyrules

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/knftables"
)

// runNFT syncs g, runs the transaction on fake (knftables' in-memory
// nftables, which refuses references to missing chains, sets and maps)
// and commits it.
func runNFT(t *testing.T, g *NFTables, fake *knftables.Fake, m *Model, full bool) *NFTablesSync {
	t.Helper()
	s := g.Sync(m, full)
	if err := fake.Run(context.Background(), s.Transaction()); err != nil {
		t.Fatalf("transaction refused: %v\n%s", err, s.Transaction())
	}
	s.Commit()
	return s
}

func newNFTFake(f corev1.IPFamily) *knftables.Fake {
	return knftables.NewFake(nftFamily(f), NFTablesTable)
}

// TestNFTablesNames pins kube-proxy's names (examples from
// pkg/proxy/nftables/proxier_test.go), IPv6 endpoints included.
func TestNFTablesNames(t *testing.T) {
	svc1 := ServicePortName{Namespace: "ns1", Name: "svc1", Port: "p80", Protocol: corev1.ProtocolTCP}
	if got := NFTablesChainsFor(svc1).Cluster; got != "service-ULMVA6XW-ns1/svc1/tcp/p80" {
		t.Errorf("cluster chain = %s", got)
	}
	svc5 := ServicePortName{Namespace: "ns5", Name: "svc5", Port: "p80", Protocol: corev1.ProtocolTCP}
	chain, set := NFTablesEndpointChain(svc5, &Endpoint{Addr: addrPort("10.180.0.3:80")})
	if chain != "endpoint-GTK6MW7G-ns5/svc5/tcp/p80__10.180.0.3/80" || set != "affinity-GTK6MW7G-ns5/svc5/tcp/p80__10.180.0.3/80" {
		t.Errorf("endpoint names = %s, %s", chain, set)
	}
	chain, _ = NFTablesEndpointChain(svc5, &Endpoint{Addr: addrPort("[fd00:10:180::3]:80")})
	if chain != "endpoint-5HFFSBBM-ns5/svc5/tcp/p80__fd00.10.180..3/80" {
		t.Errorf("IPv6 endpoint chain = %s", chain)
	}
	long := ServicePortName{Namespace: strings.Repeat("n", 63), Name: strings.Repeat("s", 63), Port: strings.Repeat("p", 63), Protocol: corev1.ProtocolSCTP}
	chain, _ = NFTablesEndpointChain(long, &Endpoint{Addr: addrPort("[fd00:1111:2222:3333:4444:5555:6666:7777]:65535")})
	if len(chain) > knftables.NameLengthMax || !strings.HasSuffix(chain, "...") {
		t.Errorf("overlong endpoint chain not cut to %d with \"...\": %d %s", knftables.NameLengthMax, len(chain), chain)
	}
}

// TestNFTablesScriptIsKnftablesText: the nft script the applier loads is
// exactly what knftables writes for the same transaction, and the batched
// form measured as an alternative only merges element commands.
func TestNFTablesScriptIsKnftablesText(t *testing.T) {
	svcs, eps := cluster(50, 3)
	svcs = append(svcs, service("sticky", "10.96.9.9", 80, clientIPAffinity(60), loadBalancer(30999, 31999, "203.0.113.9"), sourceRanges("192.0.2.0/24")))
	for _, layout := range nftLayouts {
		g := NFTables{Layout: layout}
		s := g.Sync(mustModel(t, DefaultConfig("node1"), svcs, eps), true)
		want := s.Transaction().String()
		got := string(s.Script())
		if layout == NFTablesEndpointMaps {
			// Its map elements are batched in any case.
			got = strings.Join(unbatchNFT(got), "\n") + "\n"
		}
		if got != want {
			t.Fatalf("%v: script differs from knftables' text:\n%s", layout, firstDiff(got, want))
		}
		batched := string(s.script(true))
		if strings.Count(batched, "\n") >= strings.Count(want, "\n") {
			t.Fatal("batching merged no element commands")
		}
		if got, want := unbatchNFT(batched), strings.Split(strings.TrimSpace(want), "\n"); !slices.Equal(got, want) {
			t.Fatalf("batched script is not the same commands:\n%s", firstDiff(strings.Join(got, "\n"), strings.Join(want, "\n")))
		}
	}
}

// unbatchNFT writes each element of a batched element command as a
// command of its own.
func unbatchNFT(script string) []string {
	var out []string
	for _, line := range strings.Split(strings.TrimSpace(script), "\n") {
		head, body, ok := strings.Cut(line, " { ")
		if !ok || !strings.Contains(head, " element ") {
			out = append(out, line)
			continue
		}
		for _, e := range strings.Split(strings.TrimSuffix(body, " }"), ", ") {
			out = append(out, head+" { "+e+" }")
		}
	}
	return out
}

func firstDiff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := range min(len(al), len(bl)) {
		if al[i] != bl[i] {
			return "line " + itoa(i+1) + ":\n  " + al[i] + "\n  " + bl[i]
		}
	}
	return "lengths " + itoa(len(al)) + " and " + itoa(len(bl))
}

// TestNFTablesPartialSyncTouchesOnlyChanges pins kube-proxy's incremental
// transactions: after a committed sync, one Service's endpoint change
// rewrites only its chain and changes only its elements; the top-level
// chains are not rewritten at all.
func TestNFTablesPartialSyncTouchesOnlyChanges(t *testing.T) {
	cfg := DefaultConfig("node1")
	svcs, eps := cluster(1000, 10)
	g := NFTables{Layout: NFTablesKubeProxy}
	fake := newNFTFake(cfg.Family)
	first := runNFT(t, &g, fake, mustModel(t, cfg, svcs, eps), false)
	if !first.Full || len(first.Written) != 1000 {
		t.Fatalf("first sync: full=%v written=%d, want a full sync of 1000 ports", first.Full, len(first.Written))
	}
	if s := runNFT(t, &g, fake, mustModel(t, cfg, svcs, eps), false); s.Full || len(s.Written) != 0 || s.NumOperations() != 0 {
		t.Fatalf("no change: full=%v written=%v ops=%d, want an empty partial sync", s.Full, s.Written, s.NumOperations())
	}

	// s7 loses an endpoint: only its chain is rewritten.
	eps[7] = eps[7].DeepCopy()
	eps[7].Endpoints = eps[7].Endpoints[:9]
	s := runNFT(t, &g, fake, mustModel(t, cfg, svcs, eps), false)
	s7 := ServicePortName{Namespace: "ns", Name: "s7", Port: "p", Protocol: corev1.ProtocolTCP}
	if s.Full || !slices.Equal(s.Written, []ServicePortName{s7}) {
		t.Fatalf("one change: full=%v written=%v, want only %v", s.Full, s.Written, s7)
	}
	chain := NFTablesChainsFor(s7).Cluster
	got := strings.Split(strings.TrimSpace(s.Transaction().String()), "\n")
	if len(got) != 3 || got[0] != "add chain ip kube-proxy "+chain || got[1] != "flush chain ip kube-proxy "+chain ||
		!strings.HasPrefix(got[2], "add rule ip kube-proxy "+chain+" meta l4proto tcp dnat ip addr . port to numgen random mod 9 map {") {
		t.Fatalf("partial transaction:\n%s\nwant s7's chain rewritten, nothing else", strings.Join(got, "\n"))
	}

	// The Service goes: its elements are deleted and its chain emptied,
	// but the hairpin element of its node-local endpoint stays, because
	// s32 has an endpoint with the same address and port.
	svcs = slices.Delete(svcs, 7, 8)
	s = runNFT(t, &g, fake, mustModel(t, cfg, svcs, eps), false)
	want := []string{
		"delete element ip kube-proxy cluster-ips { 10.96.0.8 }",
		"delete element ip kube-proxy service-ips { 10.96.0.8 . tcp . 80 }",
		"flush chain ip kube-proxy " + chain,
	}
	if got := strings.Split(strings.TrimSpace(s.Transaction().String()), "\n"); !slices.Equal(got, want) || !slices.Equal(s.Flushed, []string{chain}) {
		t.Fatalf("after the Service went:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if !strings.Contains(fake.Dump(), "hairpin-connections { 10.128.0.8 . 10.128.0.8 . tcp . 8080 }") {
		t.Fatal("the hairpin element s32 still needs was deleted")
	}
}

// TestNFTablesStaleChainsDeletedAfterASecond: as kube-proxy, a chain that
// is no longer used is emptied at once and deleted by the first sync at
// least a second later (kernels before 6.2 may still count a reference
// from a just-deleted map element); one used again is kept.
func TestNFTablesStaleChainsDeletedAfterASecond(t *testing.T) {
	cfg := DefaultConfig("node1")
	clk := clocktesting.NewFakePassiveClock(time.Unix(1000, 0))
	g := NFTables{Clock: clk}
	fake := newNFTFake(cfg.Family)
	svcs, eps := cluster(3, 2)
	runNFT(t, &g, fake, mustModel(t, cfg, svcs, eps), false)
	gone := NFTablesChainsFor(ServicePortName{Namespace: "ns", Name: "s1", Port: "p", Protocol: corev1.ProtocolTCP}).Cluster
	s := runNFT(t, &g, fake, mustModel(t, cfg, slices.Delete(slices.Clone(svcs), 1, 2), eps), false)
	if !slices.Equal(s.Flushed, []string{gone}) || len(s.Deleted) != 0 {
		t.Fatalf("flushed %v deleted %v, want %s flushed only", s.Flushed, s.Deleted, gone)
	}
	clk.SetTime(clk.Now().Add(999 * time.Millisecond))
	if s := runNFT(t, &g, fake, mustModel(t, cfg, slices.Delete(slices.Clone(svcs), 1, 2), eps), false); len(s.Deleted) != 0 {
		t.Fatalf("deleted %v before a second passed", s.Deleted)
	}
	clk.SetTime(clk.Now().Add(time.Millisecond))
	if s := runNFT(t, &g, fake, mustModel(t, cfg, slices.Delete(slices.Clone(svcs), 1, 2), eps), false); !slices.Equal(s.Deleted, []string{gone}) {
		t.Fatalf("deleted %v a second later, want %s", s.Deleted, gone)
	}
	if strings.Contains(fake.Dump(), gone) {
		t.Fatalf("%s still in the table", gone)
	}

	// A chain that comes back before its second is up is kept.
	runNFT(t, &g, fake, mustModel(t, cfg, slices.Delete(slices.Clone(svcs), 0, 1), eps), false)
	clk.SetTime(clk.Now().Add(2 * time.Second))
	if s := runNFT(t, &g, fake, mustModel(t, cfg, svcs, eps), false); len(s.Deleted) != 0 {
		t.Fatalf("deleted %v, a chain in use again", s.Deleted)
	}
	// One that comes back within its second and goes again is emptied
	// again.
	s2 := NFTablesChainsFor(ServicePortName{Namespace: "ns", Name: "s2", Port: "p", Protocol: corev1.ProtocolTCP}).Cluster
	runNFT(t, &g, fake, mustModel(t, cfg, svcs[:2], eps), false)
	runNFT(t, &g, fake, mustModel(t, cfg, svcs, eps), false)
	if s := runNFT(t, &g, fake, mustModel(t, cfg, svcs[:2], eps), false); !slices.Equal(s.Flushed, []string{s2}) {
		t.Fatalf("flushed %v, want %s, which went, came back and went again", s.Flushed, s2)
	}
}

// TestNFTablesUncommittedSyncIsRetried: a transaction that failed to load
// is not committed, so the next partial sync carries its changes again.
func TestNFTablesUncommittedSyncIsRetried(t *testing.T) {
	cfg := DefaultConfig("node1")
	svcs, eps := cluster(10, 2)
	var g NFTables
	g.Sync(mustModel(t, cfg, svcs, eps), false).Commit()
	eps[3] = eps[3].DeepCopy()
	eps[3].Endpoints = eps[3].Endpoints[:1]
	failed := g.Sync(mustModel(t, cfg, svcs, eps), false)
	retry := g.Sync(mustModel(t, cfg, svcs, eps), false)
	if failed.Transaction().String() != retry.Transaction().String() || len(retry.Written) != 1 {
		t.Fatalf("retry:\n%s\nwant what the failed sync carried:\n%s", retry.Transaction(), failed.Transaction())
	}
}

// TestNFTablesAdoptedObjectsRemoved: chains and affinity sets an earlier
// proxy left in the table are emptied (chains) or deleted (sets) by the
// first full sync unless used; objects of other kinds are never touched.
func TestNFTablesAdoptedObjectsRemoved(t *testing.T) {
	cfg := DefaultConfig("node1")
	svcs, eps := cluster(1, 1)
	used := NFTablesChainsFor(ServicePortName{Namespace: "ns", Name: "s0", Port: "p", Protocol: corev1.ProtocolTCP}).Cluster
	var g NFTables
	g.Adopt([]string{"services", "service-AAAAAAAA-old/gone/tcp/p", used}, []string{"affinity-BBBBBBBB-old/gone/tcp/p__10.0.0.1/80", "cluster-ips"})
	s := g.Sync(mustModel(t, cfg, svcs, eps), false)
	if !slices.Equal(s.Flushed, []string{"service-AAAAAAAA-old/gone/tcp/p"}) || !slices.Equal(s.Deleted, []string{"affinity-BBBBBBBB-old/gone/tcp/p__10.0.0.1/80"}) {
		t.Fatalf("flushed %v deleted %v, want only the stale service chain and affinity set", s.Flushed, s.Deleted)
	}
}

// TestNFTablesConflictingElements: two ports that claim one address and
// port (an external IP shared by mistake) get a deterministic winner, the
// first in name order, whichever order the Services come in; when the
// winner goes, the other takes over.
func TestNFTablesConflictingElements(t *testing.T) {
	cfg := DefaultConfig("node1")
	a := service("a", "10.96.0.1", 80, externalIPs("203.0.113.5"))
	b := service("b", "10.96.0.2", 80, externalIPs("203.0.113.5"))
	eps := []*discoveryv1.EndpointSlice{
		endpointSlice("a", 8080, corev1.ProtocolTCP, ep{ip: "10.244.0.1"}),
		endpointSlice("b", 8080, corev1.ProtocolTCP, ep{ip: "10.244.0.2"}),
	}
	extA := NFTablesChainsFor(ServicePortName{Namespace: "ns", Name: "a", Port: "p", Protocol: corev1.ProtocolTCP}).External
	extB := NFTablesChainsFor(ServicePortName{Namespace: "ns", Name: "b", Port: "p", Protocol: corev1.ProtocolTCP}).External
	for _, order := range [][]*corev1.Service{{a, b}, {b, a}} {
		var g NFTables
		fake := newNFTFake(cfg.Family)
		runNFT(t, &g, fake, mustModel(t, cfg, order, eps), false)
		if e := fake.Table.Maps[nftServiceIPs].FindElement("203.0.113.5", "tcp", "80"); e == nil || e.Value[0] != "goto "+extA {
			t.Fatalf("203.0.113.5:80 goes to %v, want %s", e, extA)
		}
		runNFT(t, &g, fake, mustModel(t, cfg, []*corev1.Service{b}, eps), false)
		if e := fake.Table.Maps[nftServiceIPs].FindElement("203.0.113.5", "tcp", "80"); e == nil || e.Value[0] != "goto "+extB {
			t.Fatalf("after a went, 203.0.113.5:80 goes to %v, want %s", e, extB)
		}
	}
}

// TestNFTablesRuleShapes pins rules the random differential test in
// conformance/ does not reach: restricted NodePort addresses, Service
// CIDRs, masquerade-all, source ranges that admit the node, and IPv6.
func TestNFTablesRuleShapes(t *testing.T) {
	cfg := DefaultConfig("node1")
	cfg.NodeIP = netip.MustParseAddr("192.168.0.10")
	cfg.NodePortAddresses = []netip.Addr{netip.MustParseAddr("192.168.0.10"), netip.MustParseAddr("127.0.0.1")}
	cfg.MasqueradeAll = true
	svcs := []*corev1.Service{service("lb", "10.96.0.1", 80, loadBalancer(30080, 32000, "203.0.113.1"), externalLocal, sourceRanges("192.168.0.0/24"))}
	eps := []*discoveryv1.EndpointSlice{endpointSlice("lb", 8080, corev1.ProtocolTCP, ep{ip: "10.244.0.5", node: "node1"})}
	g := NFTables{ServiceCIDRs: []netip.Prefix{netip.MustParsePrefix("10.96.0.0/16"), netip.MustParsePrefix("10.97.0.0/16")}}
	fw := NFTablesChainsFor(ServicePortName{Namespace: "ns", Name: "lb", Port: "p", Protocol: corev1.ProtocolTCP}).Firewall
	text := g.Sync(mustModel(t, cfg, svcs, eps), true).Transaction().String()
	for _, want := range []string{
		`add element ip kube-proxy nodeport-ips { 192.168.0.10 }`,
		`add rule ip kube-proxy services ip daddr @nodeport-ips meta l4proto . th dport vmap @service-nodeports`,
		`add rule ip kube-proxy nodeport-endpoints-check ip daddr @nodeport-ips meta l4proto . th dport vmap @no-endpoint-nodeports`,
		`add rule ip kube-proxy cluster-ips-check ip daddr { 10.96.0.0/16,10.97.0.0/16 } drop comment "Drop traffic to unallocated ClusterIPs"`,
		`add rule ip kube-proxy services ip daddr @cluster-ips mark set mark or 0x00004000 comment "masquerade all clusterIP traffic"`,
		`add rule ip kube-proxy ` + fw + ` ip saddr != { 192.168.0.0/24 , 203.0.113.1 } drop`,
	} {
		if !strings.Contains(text, want+"\n") {
			t.Errorf("transaction lacks\n%s", want)
		}
	}
	if strings.Contains(text, "nodeport-ips { 127.0.0.1 }") {
		t.Error("a loopback NodePort address must be skipped, as upstream does")
	}

	cfg6 := DefaultConfig("node1")
	cfg6.Family = corev1.IPv6Protocol
	cfg6.ClusterCIDR = netip.MustParsePrefix("fd00:10::/64")
	svc := service("v6", "fd00:172:30::41", 80, nodePort(3001), externalLocal)
	svc.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv6Protocol}
	es := endpointSlice("v6", 80, corev1.ProtocolTCP, ep{ip: "fd00:10:180::1", node: "node1"}, ep{ip: "fd00:10:180::2"})
	es.AddressType = discoveryv1.AddressTypeIPv6
	text = (&NFTables{Layout: NFTablesKubeProxy}).Sync(mustModel(t, cfg6, []*corev1.Service{svc}, []*discoveryv1.EndpointSlice{es}), true).Transaction().String()
	name := ServicePortName{Namespace: "ns", Name: "v6", Port: "p", Protocol: corev1.ProtocolTCP}
	names := NFTablesChainsFor(name)
	for _, want := range []string{
		`add table ip6 kube-proxy { comment "rules for kube-proxy" ; }`,
		`add rule ip6 kube-proxy services fib daddr type local ip6 daddr != ::1 meta l4proto . th dport vmap @service-nodeports`,
		`add rule ip6 kube-proxy ` + names.Cluster + ` meta l4proto tcp dnat ip6 addr . port to numgen random mod 2 map { 0 : fd00:10:180::1 . 80 , 1 : fd00:10:180::2 . 80 }`,
		`add rule ip6 kube-proxy ` + names.Local + ` meta l4proto tcp dnat to [fd00:10:180::1]:80`,
		`add rule ip6 kube-proxy ` + names.External + ` ip6 saddr fd00:10::/64 goto ` + names.Cluster + ` comment "short-circuit pod traffic"`,
		`add element ip6 kube-proxy hairpin-connections { fd00:10:180::1 . fd00:10:180::1 . tcp . 80 }`,
		`add element ip6 kube-proxy service-ips { fd00:172:30::41 . tcp . 80 : goto ` + names.Cluster + ` }`,
	} {
		if !strings.Contains(text, want+"\n") {
			t.Errorf("IPv6 transaction lacks\n%s", want)
		}
	}
	text = new(NFTables).Sync(mustModel(t, cfg6, []*corev1.Service{svc}, []*discoveryv1.EndpointSlice{es}), true).Transaction().String()
	cluster, local := nftEndpointMapName(0, nftEndpointShard(name, 0)), nftEndpointMapName(0, nftEndpointShard(name, 1))
	for _, want := range []string{
		`add map ip6 kube-proxy ` + cluster + ` { typeof numgen random mod 1 : ip6 daddr . tcp dport ; comment "endpoints of service chains, by slot" ; }`,
		`add rule ip6 kube-proxy ` + names.Cluster + ` meta l4proto tcp dnat ip6 addr . port to numgen random mod 2 offset 0 map @` + cluster,
		`add rule ip6 kube-proxy ` + names.Local + ` meta l4proto tcp dnat ip6 addr . port to numgen random mod 1 offset 0 map @` + local,
		`add element ip6 kube-proxy ` + cluster + ` { 1 : fd00:10:180::2 . 80 }`,
	} {
		if !strings.Contains(text, want+"\n") {
			t.Errorf("IPv6 transaction in the endpoint-maps layout lacks\n%s", want)
		}
	}
}

// TestNFTablesConfigChangeIsFull: a changed configuration rewrites
// everything with it, even when a partial sync was asked for.
func TestNFTablesConfigChangeIsFull(t *testing.T) {
	cfg := DefaultConfig("node1")
	svcs, eps := cluster(10, 2)
	var g NFTables
	g.Sync(mustModel(t, cfg, svcs, eps), false).Commit()
	cfg.MasqueradeBit = 15
	s := g.Sync(mustModel(t, cfg, svcs, eps), false)
	if !s.Full || len(s.Written) != 10 {
		t.Fatalf("after a config change: full=%v written=%d, want a full sync", s.Full, len(s.Written))
	}
	ext := NFTablesChainsFor(ServicePortName{Namespace: "ns", Name: "s8", Port: "p", Protocol: corev1.ProtocolTCP}).External
	text := s.Transaction().String()
	if !strings.Contains(text, "add rule ip kube-proxy "+ext+` mark set mark or 0x00008000 comment "masquerade"`) || strings.Contains(text, "0x00004000") {
		t.Fatalf("after a change of masquerade bit, the rules are not rewritten with it:\n%s", text)
	}
}

// TestNFTablesErrorQuotesRefusedPart: nft's error names a line and the
// columns it refused; in a long command the error quotes that part.
func TestNFTablesErrorQuotesRefusedPart(t *testing.T) {
	long := "add element ip kube-proxy service-ips { " + strings.Repeat("10.96.0.1 . tcp . 80 : drop, ", 20) + "10.96.0.99 . tcp . 80 : goto nowhere }"
	script := []byte("add table ip kube-proxy\n" + long + "\n")
	col := strings.Index(long, "goto nowhere") + 1
	out := []byte("/dev/stdin:2:" + itoa(col) + "-" + itoa(col+11) + ": Error: Could not process rule: No such file or directory\n" + long + "\n")
	err := nftError(script, out, errors.New("exit status 1"))
	want := `proxyrules: nft refused line 2 "add element ip kube-proxy service-ips { ... goto nowhere ... }": Could not process rule: No such file or directory: exit status 1`
	if err == nil || err.Error() != want {
		t.Fatalf("error:\n%v\nwant\n%s", err, want)
	}
}

// TestNFTablesPartialEqualsFull: after any sequence of changes, the table
// built by partial syncs is the table one full sync builds from scratch,
// but for chains emptied and not yet deleted.
func TestNFTablesPartialEqualsFull(t *testing.T) {
	for _, layout := range nftLayouts {
		t.Run(layout.String(), func(t *testing.T) { testNFTablesPartialEqualsFull(t, layout) })
	}
}

// In the endpoint-maps layout a chain's capacity and the order of its
// endpoints depend on its history: the tables are compared folded back to
// kube-proxy's layout, endpoints sorted.
func testNFTablesPartialEqualsFull(t *testing.T, layout NFTablesLayout) {
	cfg := DefaultConfig("node1")
	cfg.ClusterCIDR = netip.MustParsePrefix("10.244.0.0/16")
	cfg.NodeIP = netip.MustParseAddr("192.168.0.10")
	comparable := func(dump string) []string {
		if layout == NFTablesEndpointMaps {
			dump = foldEndpointMaps(dump, true)
		}
		return comparableDump(dump)
	}
	for seed := range uint64(40) {
		r := rand.New(rand.NewPCG(seed, 7))
		svcs, eps := cluster(30, 4)
		g := NFTables{Layout: layout}
		fake := newNFTFake(cfg.Family)
		runNFT(t, &g, fake, mustModel(t, cfg, svcs, eps), false)
		for step := range 15 {
			i := r.IntN(len(svcs))
			name := svcs[i].Name
			switch r.IntN(7) {
			case 0: // an endpoint goes
				eps[i] = eps[i].DeepCopy()
				if n := len(eps[i].Endpoints); n > 0 {
					eps[i].Endpoints = slices.Delete(eps[i].Endpoints, n-1, n)
				}
			case 1: // an endpoint comes, on this node or not
				eps[i] = eps[i].DeepCopy()
				node := []string{"node1", "other"}[r.IntN(2)]
				eps[i].Endpoints = append(eps[i].Endpoints, endpointSlice(name, 8080, corev1.ProtocolTCP, ep{ip: "10.250." + itoa(step) + "." + itoa(i+1), node: node}).Endpoints...)
			case 2: // endpoints start terminating
				eps[i] = eps[i].DeepCopy()
				for j := range eps[i].Endpoints {
					eps[i].Endpoints[j].Conditions.Ready = ptrTo(false)
					eps[i].Endpoints[j].Conditions.Terminating = ptrTo(true)
				}
			case 3: // the Service's policies and affinity change
				svcs[i] = svcs[i].DeepCopy()
				// One timeout: a changed one is applied by the kernel's
				// "add set" (as kube-proxy relies on), not by the Fake's.
				clientIPAffinity(60)(svcs[i])
				internalLocal(svcs[i])
			case 4: // it becomes a LoadBalancer with source ranges
				svcs[i] = svcs[i].DeepCopy()
				loadBalancer(int32(31000+i), int32(32000+i), "203.0.113."+itoa(i+1))(svcs[i])
				externalLocal(svcs[i])
				sourceRanges("192.168.0.0/24")(svcs[i])
			case 5: // the Service goes (its slice stays, as it may)
				svcs = slices.Delete(svcs, i, i+1)
				eps = slices.Delete(eps, i, i+1)
			default: // a Service comes
				n := "n" + itoa(int(seed)) + "x" + itoa(step)
				svcs = append(svcs, service(n, "10.97."+itoa(step)+"."+itoa(i+1), 80, nodePort(int32(30500+step))))
				eps = append(eps, endpointSlice(n, 8080, corev1.ProtocolTCP, ep{ip: "10.251." + itoa(step) + ".1", node: "node1"}))
			}
			m := mustModel(t, cfg, svcs, eps)
			runNFT(t, &g, fake, m, false)
			fresh := newNFTFake(cfg.Family)
			runNFT(t, &NFTables{Layout: layout}, fresh, m, true)
			if got, want := comparable(fake.Dump()), comparable(fresh.Dump()); !slices.Equal(got, want) {
				t.Fatalf("seed %d step %d: partial syncs and a full sync differ:\n%s", seed, step, firstDiff(strings.Join(got, "\n"), strings.Join(want, "\n")))
			}
		}
	}
}

// comparableDump is a Fake dump with elements sorted and per-ServicePort
// chains without rules left out.
func comparableDump(dump string) []string {
	lines := strings.Split(strings.TrimSpace(dump), "\n")
	used := map[string]bool{}
	for _, l := range lines {
		if f := strings.Fields(l); len(f) > 4 && f[1] == "rule" {
			used[f[4]] = true
		}
	}
	var out, elems []string
	for _, l := range lines {
		f := strings.Fields(l)
		switch {
		case len(f) == 5 && f[1] == "chain" && isNFTServiceChain(f[4]) && !used[f[4]]:
		case f[1] == "element":
			elems = append(elems, l)
		default:
			out = append(out, l)
		}
	}
	slices.Sort(elems)
	return append(out, elems...)
}

// TestNFTablesApplierNetlinkNamespace: the applier sends over netlink into
// the namespace nft programs, when it knows which.
func TestNFTablesApplierNetlinkNamespace(t *testing.T) {
	inNetNS := func(context.Context, []byte, string, ...string) ([]byte, error) { return nil, nil }
	for _, tc := range []struct {
		name    string
		a       NFTablesApplier
		netns   string
		netlink bool
	}{
		{"nft on this host", NFTablesApplier{}, "", true},
		{"host said", NFTablesApplier{Exec: inNetNS, NetNS: "host"}, "", true},
		{"a namespace said", NFTablesApplier{Exec: inNetNS, NetNS: "/run/netns/x"}, "/run/netns/x", true},
		{"nft elsewhere, namespace unknown", NFTablesApplier{Exec: inNetNS}, "", false},
	} {
		if netns, ok := tc.a.netlinkNamespace(); netns != tc.netns || ok != tc.netlink {
			t.Errorf("%s: netlinkNamespace() = %q, %v; want %q, %v", tc.name, netns, ok, tc.netns, tc.netlink)
		}
	}
}

// TestNFTablesApplierForgetsWhenUnsure: when ctx stops nft, the kernel may
// or may not have taken the sync; the next Apply starts over.
func TestNFTablesApplierForgetsWhenUnsure(t *testing.T) {
	exec := func(ctx context.Context, _ []byte, _ string, _ ...string) ([]byte, error) { return nil, ctx.Err() }
	a := &NFTablesApplier{Exec: exec}
	svcs, eps := cluster(3, 2)
	m := mustModel(t, DefaultConfig("node1"), svcs, eps)
	if _, err := a.Apply(context.Background(), m, false); err != nil || a.NFTables.committed == nil {
		t.Fatalf("first apply: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := a.Apply(ctx, m, true); err == nil {
		t.Fatal("apply with a stopped nft succeeded")
	}
	if a.started || a.NFTables.committed != nil {
		t.Fatal("the applier still trusts what it committed before")
	}
}

// TestNFTablesTransactionLeavesSyncAlone: running a sync's transaction
// (knftables' Fake writes Handles into the objects it gets) does not
// change the sync.
func TestNFTablesTransactionLeavesSyncAlone(t *testing.T) {
	cfg := DefaultConfig("node1")
	svcs, eps := cluster(2, 1)
	s := new(NFTables).Sync(mustModel(t, cfg, svcs, eps), true)
	before := string(s.Script())
	if err := newNFTFake(cfg.Family).Run(context.Background(), s.Transaction()); err != nil {
		t.Fatal(err)
	}
	if after := string(s.Script()); after != before {
		t.Fatalf("the sync changed when its transaction ran:\n%s", firstDiff(after, before))
	}
}

// TestNFTablesSyncIndependentOfGOMAXPROCS: ports are written by as many
// goroutines as GOMAXPROCS allows; the transactions are the same byte for
// byte whatever it is, for a first sync and for partial and full syncs
// of many changes.
func TestNFTablesSyncIndependentOfGOMAXPROCS(t *testing.T) {
	scripts := func(procs int) []string {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
		cfg := DefaultConfig("node1")
		svcs, eps := cluster(3000, 4)
		g := NFTables{Clock: clocktesting.NewFakePassiveClock(time.Unix(1000, 0))}
		g.Adopt(nil, nil)
		var out []string
		sync := func(full bool) {
			s := g.Sync(mustModel(t, cfg, svcs, eps), full)
			out = append(out, string(s.Script()))
			s.Commit()
		}
		sync(false)
		for step := range 4 {
			// Every third Service's endpoints shrink or grow, and
			// every other step a seventh of the Services go.
			for i := step % 3; i < len(eps); i += 3 {
				eps[i] = eps[i].DeepCopy()
				if step%2 == 0 {
					eps[i].Endpoints = eps[i].Endpoints[:2]
				} else {
					eps[i].Endpoints = append(eps[i].Endpoints, endpointSlice(fmt.Sprintf("s%d", i), 8080, corev1.ProtocolTCP, ep{ip: fmt.Sprintf("10.251.%d.%d", i/250, i%250+1)}).Endpoints...)
				}
			}
			if step%2 == 0 {
				svcs = slices.Delete(slices.Clone(svcs), 0, len(svcs)/7)
			}
			sync(step == 3)
		}
		return out
	}
	want := scripts(1)
	for _, procs := range []int{2, 8} {
		got := scripts(procs)
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("GOMAXPROCS %d, sync %d differs from GOMAXPROCS 1's:\n%s", procs, i, firstDiff(got[i], want[i]))
			}
		}
	}
}

// TestNFTablesFirstSyncBlocksAreItsOperations: a sync into a new table
// writes its ports' chains as text while it writes them and keeps no
// operations for them; the operations it gives when asked (written again
// from its records) are the same, text for text, as are their number and
// the transaction's own text.
func TestNFTablesFirstSyncBlocksAreItsOperations(t *testing.T) {
	svcs, eps := cluster(300, 4)
	svcs = append(svcs, service("sticky", "10.96.9.9", 80, clientIPAffinity(60), loadBalancer(30999, 31999, "203.0.113.9"), sourceRanges("192.0.2.0/24")))
	eps = append(eps, endpointSlice("sticky", 8080, corev1.ProtocolTCP, ep{ip: "10.244.9.1", node: "node1"}, ep{ip: "10.244.9.2"}))
	m := mustModel(t, DefaultConfig("node1"), svcs, eps)
	for _, layout := range nftLayouts {
		g := NFTables{Layout: layout}
		g.Adopt(nil, nil)
		s := g.Sync(m, true)
		if s.blocks == nil || s.ports != nil {
			t.Fatalf("%v: a first sync into no table kept its ports' operations", layout)
		}
		asOps := *s
		asOps.blocks, asOps.ports = nil, s.portOps()
		if got, want := string(s.Script()), string(asOps.blockScript(false)); got != want {
			t.Fatalf("%v: the written blocks differ from their operations':\n%s", layout, firstDiff(got, want))
		}
		if got, want := s.NumOperations(), len(s.operations()); got != want {
			t.Fatalf("%v: NumOperations = %d, the operations are %d", layout, got, want)
		}
	}
}

// TestNFTablesUnsortedModelSharedElement: a Model built by hand with its
// ports out of name order still gives a shared key the first owner's
// value (in name order), as later partial syncs assume: when that owner
// goes, the key goes to the next, as a fresh sync would write it.
func TestNFTablesUnsortedModelSharedElement(t *testing.T) {
	cfg := DefaultConfig("node1")
	svcs := []*corev1.Service{service("a", "10.96.0.1", 80), service("b", "10.96.0.1", 80)}
	eps := []*discoveryv1.EndpointSlice{
		endpointSlice("a", 8080, corev1.ProtocolTCP, ep{ip: "10.244.0.1"}),
		endpointSlice("b", 8080, corev1.ProtocolTCP, ep{ip: "10.244.0.2"}),
	}
	m := mustModel(t, cfg, svcs, eps)
	reversed := &Model{Config: m.Config, Ports: []*PortState{m.Ports[1], m.Ports[0]}}
	var g NFTables
	fake := newNFTFake(cfg.Family)
	runNFT(t, &g, fake, reversed, true)
	onlyA := mustModel(t, cfg, svcs[:1], eps[:1])
	runNFT(t, &g, fake, onlyA, false)
	fresh := newNFTFake(cfg.Family)
	runNFT(t, &NFTables{}, fresh, onlyA, true)
	serviceIPs := func(dump string) []string {
		var out []string
		for _, l := range strings.Split(dump, "\n") {
			if strings.Contains(l, nftServiceIPs+" {") {
				out = append(out, l)
			}
		}
		return out
	}
	if got, want := serviceIPs(fake.Dump()), serviceIPs(fresh.Dump()); !slices.Equal(got, want) {
		t.Fatalf("service-ips after the partial sync:\n%q\nwant\n%q", got, want)
	}
}

// TestNFTablesReplacedRecordsLetGo: records are allocated in blocks; one
// that a sync replaces lets go of its PortState (and with it the older
// model's endpoints) although others of its block are still in use.
func TestNFTablesReplacedRecordsLetGo(t *testing.T) {
	cfg := DefaultConfig("node1")
	svcs, eps := cluster(640, 3)
	tr := trackerOf(t, cfg, svcs, eps)
	g := NFTables{}
	g.Adopt(nil, nil)
	m, _ := tr.Model()
	var freed, watched atomic.Int64
	keep := map[string]bool{} // a port of each block
	for i, p := range m.Ports {
		if i%parallelChunk == 0 {
			keep[p.Name.Name] = true
		} else {
			watched.Add(1)
			runtime.SetFinalizer(p, func(*PortState) { freed.Add(1) })
		}
	}
	g.Sync(m, false).Commit()
	m = nil
	for _, es := range eps {
		if !keep[es.Labels[discoveryv1.LabelServiceName]] {
			es = es.DeepCopy()
			es.Endpoints = es.Endpoints[:2]
			tr.SetEndpointSlice(es)
		}
	}
	m2, _ := tr.Model()
	g.Sync(m2, false).Commit()
	for range 5 {
		runtime.GC()
		time.Sleep(20 * time.Millisecond)
	}
	runtime.KeepAlive(&g) // its records, and their blocks, are in use
	if freed.Load() < watched.Load()*9/10 {
		t.Errorf("replaced records keep their PortStates: %d of %d freed", freed.Load(), watched.Load())
	}
}
