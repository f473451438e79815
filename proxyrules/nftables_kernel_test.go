package proxyrules

import (
	"bytes"
	"context"
	"errors"
	"net/netip"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kube-nodekit/nodekit/internal/testenv"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

// nftLayouts are the layouts the kernel tests run with.
var nftLayouts = []NFTablesLayout{NFTablesEndpointMaps, NFTablesKubeProxy, NFTablesEndpointRules}

// TestNFTablesRealPackets loads the generated ruleset into a node namespace
// with the real nft and sends the lab's real connections through it, in
// every layout.
func TestNFTablesRealPackets(t *testing.T) {
	for _, layout := range nftLayouts {
		t.Run(layout.String(), func(t *testing.T) {
			lab := newNetLab(t, 3)
			services, slices := labServices(lab)
			m := mustModel(t, labConfig(lab), services, slices)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			applier := &NFTablesApplier{Exec: lab.nodeExec, NFTables: NFTables{Layout: layout}}
			if _, err := applier.Apply(ctx, m, true); err != nil {
				t.Fatal(err)
			}
			checkLabTraffic(t, lab, m)
		})
	}
}

// TestNFTablesPartialSyncInKernel: a partial sync carries only the changed
// Service's chain and elements, and traffic in the kernel follows it; a
// chain no longer used is emptied at once and deleted by a sync a second
// later. In every layout.
func TestNFTablesPartialSyncInKernel(t *testing.T) {
	for _, layout := range nftLayouts {
		t.Run(layout.String(), func(t *testing.T) { testNFTablesPartialSyncInKernel(t, layout) })
	}
}

func testNFTablesPartialSyncInKernel(t *testing.T, layout NFTablesLayout) {
	lab := newNetLab(t, 3)
	services, slices := labServices(lab)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	nftRuns := 0
	exec := func(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error) {
		if name == "nft" && argsContain(args, "-f") {
			nftRuns++
		}
		return lab.nodeExec(ctx, stdin, name, args...)
	}
	applier := &NFTablesApplier{Exec: exec, NetNS: "/run/netns/" + lab.node.Name, NFTables: NFTables{Layout: layout}}
	if _, err := applier.Apply(ctx, mustModel(t, labConfig(lab), services, slices), false); err != nil {
		t.Fatal(err)
	}
	// "web" loses be3: in the endpoint-maps layout, a new rule for its
	// service chain and map elements, which the applier sends over
	// netlink.
	slices[0] = endpointSlice("web", labTCPPort, corev1.ProtocolTCP, ep{ip: lab.backendIPs[0].String(), node: "node1"}, ep{ip: lab.backendIPs[1].String(), node: "other"})
	before := nftRuns
	s, err := applier.Apply(ctx, mustModel(t, labConfig(lab), services, slices), false)
	if err != nil {
		t.Fatal(err)
	}
	if script := string(s.Script()); layout == NFTablesEndpointMaps && (strings.Count(script, "add rule") != 1 || nftRuns != before) {
		t.Fatalf("one endpoint fewer rewrote more than one rule in the endpoint-maps layout, or ran nft (%d times):\n%s", nftRuns-before, script)
	}
	seen := lab.reached(t, "203.0.113.10:80", 40)
	if len(seen) != 2 || seen["be3"] > 0 {
		t.Fatalf("after be3 went, web reached %v, want be1 and be2", seen)
	}
	// "web" loses be1 and be3; "sticky" loses be3, whose endpoint chain
	// goes stale.
	slices[0] = endpointSlice("web", labTCPPort, corev1.ProtocolTCP, ep{ip: lab.backendIPs[1].String(), node: "other"})
	slices[1] = endpointSlice("sticky", labTCPPort, corev1.ProtocolTCP, ep{ip: lab.backendIPs[0].String(), node: "node1"}, ep{ip: lab.backendIPs[1].String(), node: "other"})
	s, err = applier.Apply(ctx, mustModel(t, labConfig(lab), services, slices), false)
	if err != nil {
		t.Fatal(err)
	}
	if s.Full || len(s.Written) != 2 || s.Written[0].Name != "sticky" || s.Written[1].Name != "web" {
		t.Fatalf("sync full=%v wrote %v, want a partial sync of ns/sticky and ns/web only", s.Full, s.Written)
	}
	if len(s.Flushed) != 1 || !strings.Contains(s.Flushed[0], "198.51.100.34/8080") {
		t.Fatalf("flushed %v, want be3's endpoint chain of sticky", s.Flushed)
	}
	if seen := lab.reached(t, "203.0.113.10:80", 20); len(seen) != 1 || seen["be2"] == 0 {
		t.Fatalf("after the change, web reached %v, want only be2", seen)
	}
	stale := s.Flushed[0]
	if out := lab.node.Run(t, "nft", "list", "chains", "ip"); !strings.Contains(out, stale) {
		t.Fatalf("emptied chain %s already gone", stale)
	}
	time.Sleep(1100 * time.Millisecond)
	s, err = applier.Apply(ctx, mustModel(t, labConfig(lab), services, slices), false)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Written) != 0 || len(s.Deleted) != 1 || s.Deleted[0] != stale {
		t.Fatalf("sync a second later wrote %v and deleted %v, want only %s deleted", s.Written, s.Deleted, stale)
	}
	if out := lab.node.Run(t, "nft", "list", "chains", "ip"); strings.Contains(out, stale) {
		t.Fatalf("chain %s not deleted", stale)
	}
}

// TestNFTablesFailedApplyKeepsRules: a transaction the kernel refuses
// leaves the loaded rules forwarding, the error quotes the refused command,
// and the next sync, once the conflict is gone, carries the change again.
// The refusal is a real one: an element the applier does not own (added by
// hand) holds the address a new Service needs.
func TestNFTablesFailedApplyKeepsRules(t *testing.T) {
	lab := newNetLab(t, 3)
	services, slices := labServices(lab)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	applier := &NFTablesApplier{Exec: lab.nodeExec}
	if _, err := applier.Apply(ctx, mustModel(t, labConfig(lab), services, slices), false); err != nil {
		t.Fatal(err)
	}
	squatter := "add element ip kube-proxy service-ips { 203.0.113.30 . tcp . 80 : goto reject-chain }"
	lab.node.Run(t, "nft", squatter)

	services = append(services, service("late", "203.0.113.30", 80))
	slices = append(slices, endpointSlice("late", labTCPPort, corev1.ProtocolTCP, ep{ip: lab.backendIPs[2].String(), node: "other"}))
	slices[0] = endpointSlice("web", labTCPPort, corev1.ProtocolTCP, ep{ip: lab.backendIPs[1].String(), node: "other"})
	_, err := applier.Apply(ctx, mustModel(t, labConfig(lab), services, slices), false)
	if err == nil || !strings.Contains(err.Error(), "203.0.113.30 . tcp . 80") || !strings.Contains(err.Error(), "File exists") {
		t.Fatalf("apply over a conflicting element: err = %v, want an error quoting the refused element", err)
	}
	// The old rules still route web to all three backends.
	seen := lab.reached(t, "203.0.113.10:80", 40)
	if len(seen) != 3 {
		t.Fatalf("after a failed apply web reached %v, want the old rules' three backends", seen)
	}

	lab.node.Run(t, "nft", strings.Replace(squatter, "add", "delete", 1))
	s, err := applier.Apply(ctx, mustModel(t, labConfig(lab), services, slices), false)
	if err != nil {
		t.Fatalf("sync after the failure: %v", err)
	}
	if s.Full || len(s.Written) != 2 {
		t.Fatalf("sync after the failure: full=%v wrote %v, want the failed sync's late and web again", s.Full, s.Written)
	}
	for range 10 {
		if r, err := lab.dialTCP(t, addrPort("203.0.113.10:80")); err != nil || r.backend != "be2" {
			t.Fatalf("after recovery web reached %+v, %v; want be2", r, err)
		}
	}
	if r, err := lab.dialTCP(t, addrPort("203.0.113.30:80")); err != nil || r.backend != "be3" {
		t.Fatalf("after recovery the new Service reached %+v, %v; want be3", r, err)
	}
}

func argsContain(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// TestNFTablesNetlinkRefusalKeepsRules: a netlink batch the kernel refuses
// (here: it deletes an element someone removed by hand) changes nothing,
// names the refused element, is not committed, and goes through once the
// element is back.
func TestNFTablesNetlinkRefusalKeepsRules(t *testing.T) {
	lab := newNetLab(t, 3)
	services, slices := labServices(lab)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	applier := &NFTablesApplier{Exec: lab.nodeExec, NetNS: "/run/netns/" + lab.node.Name}
	if _, err := applier.Apply(ctx, mustModel(t, labConfig(lab), services, slices), false); err != nil {
		t.Fatal(err)
	}
	// web loses be1: its key is deleted (and the last key's endpoint
	// moves in).
	var web *nftPortRecord
	for name, rec := range applier.NFTables.committed.ports {
		if name.Name == "web" {
			web = rec
		}
	}
	sl := web.slots[0]
	i := -1 // be1's slot
	for k, ep := range sl.eps {
		if ep.Addr == netip.AddrPortFrom(lab.backendIPs[0], 8080) {
			i = k
		}
	}
	key := nftEndpointMapNames[int(sl.proto)*nftEndpointMaps+int(sl.shard)] + " { " + strconv.FormatUint(uint64(sl.base)+uint64(len(sl.eps)-1), 10) + " }"
	lab.node.Run(t, "nft", "delete element ip kube-proxy "+key)
	slices[0] = endpointSlice("web", labTCPPort, corev1.ProtocolTCP, ep{ip: lab.backendIPs[1].String(), node: "other"}, ep{ip: lab.backendIPs[2].String(), node: "other"})
	m := mustModel(t, labConfig(lab), services, slices)
	if _, err := applier.Apply(ctx, m, false); err == nil || !strings.Contains(err.Error(), "delete element") || !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("apply over a missing element: err = %v, want ENOENT naming the element (slot %d)", err, i)
	}
	if out := lab.node.Run(t, "nft", "list", "table", "ip", NFTablesTable); !strings.Contains(out, lab.backendIPs[0].String()+" . 8080") {
		t.Fatal("the refused batch changed the table")
	}
	lab.node.Run(t, "nft", "add element ip kube-proxy "+strings.Replace(key, " }", " : "+string(appendSlotValue(nil, sl.eps[len(sl.eps)-1]))+" }", 1))
	if _, err := applier.Apply(ctx, m, false); err != nil {
		t.Fatalf("the same change once the element is back: %v", err)
	}
	for range 20 {
		if r, err := lab.dialTCP(t, addrPort("203.0.113.10:80")); err != nil || r.backend == "be1" {
			t.Fatalf("after the change web reached %+v, %v; want be2 or be3", r, err)
		}
	}
}

// TestNFTablesBlockScriptLoadsTheSameTable: written as one table block
// (into a new table) or as knftables' commands, a sync gives the kernel
// the same table.
func TestNFTablesBlockScriptLoadsTheSameTable(t *testing.T) {
	nss := testenv.NetNSes(t, "block", "commands")
	svcs, eps := cluster(300, 4)
	svcs = append(svcs, service("sticky", "10.96.9.9", 80, clientIPAffinity(60), loadBalancer(30999, 31999, "203.0.113.9"), sourceRanges("192.0.2.0/24")))
	eps = append(eps, endpointSlice("sticky", 8080, corev1.ProtocolTCP, ep{ip: "10.244.9.1", node: "node1"}, ep{ip: "10.244.9.2"}))
	cfg := DefaultConfig("node1")
	cfg.ClusterCIDR = netip.MustParsePrefix("10.128.0.0/9")
	for _, layout := range nftLayouts {
		var listings []string
		for i, ns := range nss {
			g := NFTables{Layout: layout}
			g.Adopt(nil, nil)
			s := g.Sync(mustModel(t, cfg, svcs, eps), true)
			script := s.Script()
			if i == 1 {
				script = []byte(s.Transaction().String())
			} else if !s.fresh || !bytes.Contains(script, []byte("\ntable ip kube-proxy {\n")) {
				t.Fatal("a first sync into no table is not written as a block")
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			if out, err := HostExec(ctx, script, "ip", "netns", "exec", ns.Name, "nft", "-f", "-"); err != nil {
				t.Fatalf("%s: nft -f: %v: %s", ns.Role, err, out)
			}
			cancel()
			listings = append(listings, ns.Run(t, "nft", "list", "table", "ip", NFTablesTable))
			ns.Run(t, "nft", "delete", "table", "ip", NFTablesTable)
		}
		if listings[0] != listings[1] {
			t.Fatalf("%v: block and commands load different tables:\n%s", layout, firstDiff(listings[0], listings[1]))
		}
	}
}

// TestNFTablesIPv6Loads: an IPv6 ruleset with every kind of Service loads
// into the kernel (family ip6), and so does a partial sync after it.
func TestNFTablesIPv6Loads(t *testing.T) {
	ns := testenv.NetNSes(t, "node6")[0]
	cfg := DefaultConfig("node1")
	cfg.Family = corev1.IPv6Protocol
	cfg.ClusterCIDR = netip.MustParsePrefix("fd00:10::/64")
	cfg.NodeIP = netip.MustParseAddr("fd00:192::10")
	v6 := func(s *corev1.Service) { s.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv6Protocol} }
	svcs := []*corev1.Service{
		service("web", "fd00:96::1", 80, v6, nodePort(30080), externalIPs("2001:db8::20")),
		service("sticky", "fd00:96::2", 80, v6, clientIPAffinity(600)),
		service("empty", "fd00:96::3", 80, v6, nodePort(30082)),
		service("lb", "fd00:96::4", 80, v6, loadBalancer(30083, 32000, "2001:db8::30"), externalLocal, sourceRanges("fd00:192::/64")),
	}
	var eps []*discoveryv1.EndpointSlice
	for _, name := range []string{"web", "sticky", "lb"} {
		es := endpointSlice(name, 8080, corev1.ProtocolTCP, ep{ip: "fd00:10::1", node: "node1"}, ep{ip: "fd00:10::2", node: "other"})
		es.AddressType = discoveryv1.AddressTypeIPv6
		eps = append(eps, es)
	}
	nftRuns := 0
	exec := func(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error) {
		if name == "nft" && argsContain(args, "-f") {
			nftRuns++
		}
		return HostExec(ctx, stdin, "ip", append([]string{"netns", "exec", ns.Name, name}, args...)...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	web := eps[0]
	for _, layout := range nftLayouts {
		eps[0] = web
		applier := &NFTablesApplier{Exec: exec, NetNS: "/run/netns/" + ns.Name, NFTables: NFTables{Layout: layout}}
		if _, err := applier.Apply(ctx, mustModel(t, cfg, svcs, eps), true); err != nil {
			t.Fatal(err)
		}
		// fd00:10::2 is replaced by fd00:10::3, the node's fd00:10::1 by
		// fd00:10::4 (in the endpoint-maps layout, over netlink: IPv6
		// map values and hairpin elements).
		eps[0] = eps[0].DeepCopy()
		eps[0].Endpoints[1].Addresses = []string{"fd00:10::3"}
		eps[0].Endpoints[0].Addresses = []string{"fd00:10::4"}
		before := nftRuns
		if s, err := applier.Apply(ctx, mustModel(t, cfg, svcs, eps), false); err != nil || s.Full || len(s.Written) != 1 {
			t.Fatalf("partial sync: %v, %+v", err, s)
		}
		if layout == NFTablesEndpointMaps && nftRuns != before {
			t.Fatal("an endpoint change in the endpoint-maps layout ran nft")
		}
		out := ns.Run(t, "nft", "list", "table", "ip6", NFTablesTable)
		endpoint := "fd00:10::3 . 8080"
		if layout == NFTablesEndpointRules {
			endpoint = "dnat to [fd00:10::3]:8080"
		}
		if !strings.Contains(out, endpoint) || !strings.Contains(out, "fd00:10::4 . fd00:10::4 . tcp . 8080") || !strings.Contains(out, "fd00:192::/64") {
			t.Fatalf("the kernel's table lacks the IPv6 rules:\n%s", out)
		}
		ns.Run(t, "nft", "delete", "table", "ip6", NFTablesTable)
	}
}
