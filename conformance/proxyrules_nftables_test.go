package conformance

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/kube-nodekit/nodekit/internal/testenv"
	"github.com/kube-nodekit/nodekit/proxyrules"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/knftables"
)

// TestNFTablesMatchesKubeProxy builds the nftables ruleset for random
// Service sets with nodekit and with kube-proxy 1.37's nftables proxier
// (pkg/proxy/nftables/proxier.go), runs both transactions on knftables'
// Fake and requires the same table: the same chains with the same rules in
// the same order, the same sets and maps with the same elements (compared
// as sets: kube-proxy adds them in map-iteration order).
func TestNFTablesMatchesKubeProxy(t *testing.T) {
	compareNFTLayout(t, 500, 0x1337, proxyrules.NFTablesKubeProxy, func(dump string) string { return dump })
}

// compareNFTLayout compares nodekit's full sync in layout with kube-proxy's
// on seeds random Service sets, after fold writes nodekit's table in
// kube-proxy's layout.
func compareNFTLayout(t *testing.T, seeds, stream uint64, layout proxyrules.NFTablesLayout, fold func(string) string) {
	t.Helper()
	ns := testenv.NetNSes(t, "kubeproxy")[0]
	for seed := range seeds {
		r := rand.New(rand.NewPCG(seed, stream))
		set := genServiceSet(r, 1+r.IntN(12))
		up := newUpstreamNFTProxier(t, ns, set.cfg, true)
		up.fullSync(t, ns, set.services, set.slices)
		ours := runOurs(t, &proxyrules.NFTables{Layout: layout}, nil, set.cfg, set.services, set.slices, true)
		if diff := diffNFT(up.nft.Dump(), fold(ours.Dump())); diff != "" {
			t.Fatalf("seed %d (%d services, config %+v):\n%s", seed, len(set.services), set.cfg, diff)
		}
	}
}

// TestNFTablesPartialSyncsMatchKubeProxy changes random Service sets step
// by step (endpoints change, Services go and come) and requires that after
// each of kube-proxy's partial syncs and nodekit's the two tables are
// still the same, stale chains (emptied, deleted a second later by both)
// included.
//
// In nodekit's default layout (NFTablesEndpointMaps) a chain keeps its
// endpoints' keys across changes, so the tables are compared with each
// endpoint list folded back to kube-proxy's rule and sorted.
func TestNFTablesPartialSyncsMatchKubeProxy(t *testing.T) {
	for _, layout := range []proxyrules.NFTablesLayout{proxyrules.NFTablesKubeProxy, proxyrules.NFTablesEndpointMaps} {
		t.Run(layout.String(), func(t *testing.T) { testNFTablesPartialSyncsMatchKubeProxy(t, layout) })
	}
}

func testNFTablesPartialSyncsMatchKubeProxy(t *testing.T, layout proxyrules.NFTablesLayout) {
	ns := testenv.NetNSes(t, "kubeproxy")[0]
	seeds := uint64(300)
	upView, ourView := func(d string) string { return d }, func(d string) string { return d }
	if layout == proxyrules.NFTablesEndpointMaps {
		seeds = 150
		upView = sortNumgenMaps
		ourView = func(d string) string { return foldEndpointMaps(d, true) }
	}
	for seed := range seeds {
		r := rand.New(rand.NewPCG(seed, 0xbeef))
		set := genServiceSet(r, 2+r.IntN(10))
		up := newUpstreamNFTProxier(t, ns, set.cfg, true)
		up.fullSync(t, ns, set.services, set.slices)
		g := proxyrules.NFTables{Layout: layout}
		ours := runOurs(t, &g, nil, set.cfg, set.services, set.slices, true)
		added := 0
		for step := range 4 {
			op := r.IntN(3)
			if len(set.services) == 0 {
				op = 2
			}
			i := r.IntN(max(len(set.services), 1))
			var svc *corev1.Service
			if op < 2 {
				svc = set.services[i]
			}
			switch op {
			case 0: // the Service's endpoints change
				// An address in two slices keeps its conditions: which copy
				// wins when both are (or both are not) terminating is left
				// to map order upstream.
				seen, shared := map[string]bool{}, map[string]bool{}
				for _, es := range set.slices {
					if es.Namespace == svc.Namespace && es.Labels[discoveryv1.LabelServiceName] == svc.Name {
						for _, e := range es.Endpoints {
							shared[e.Addresses[0]] = seen[e.Addresses[0]]
							seen[e.Addresses[0]] = true
						}
					}
				}
				for j, es := range set.slices {
					if es.Namespace == svc.Namespace && es.Labels[discoveryv1.LabelServiceName] == svc.Name {
						added++
						set.slices[j] = mutateSlice(r, es, shared, added)
						up.OnEndpointSliceUpdate(es, set.slices[j])
					}
				}
			case 1: // the Service goes
				up.OnServiceDelete(svc)
				set.services = slices.Delete(set.services, i, i+1)
			default: // a new Service comes
				fresh, slices := genService(r, 100+step)
				up.OnServiceAdd(fresh)
				for _, es := range slices {
					up.OnEndpointSliceAdd(es)
				}
				set.services = append(set.services, fresh)
				set.slices = append(set.slices, slices...)
			}
			syncIn(t, ns, up.OnServiceSynced)
			runOurs(t, &g, ours, set.cfg, set.services, set.slices, false)
			// Each deletes an emptied chain a second after it emptied it,
			// timed by its own clock: which of them has done so already
			// is not compared.
			if diff := diffNFT(dropEmptyServiceChains(upView(up.nft.Dump())), dropEmptyServiceChains(ourView(ours.Dump()))); diff != "" {
				t.Fatalf("seed %d step %d:\n%s", seed, step, diff)
			}
		}
	}
}

// TestNFTablesLargeClusterMatchesKubeProxy: one large set, ClientIP
// affinity and every policy included.
func TestNFTablesLargeClusterMatchesKubeProxy(t *testing.T) {
	ns := testenv.NetNSes(t, "kubeproxy")[0]
	r := rand.New(rand.NewPCG(42, 42))
	set := genServiceSet(r, 700)
	// The generator's external and load-balancer IPs repeat every 250
	// Services; two ports claiming one IP and port is a conflict that
	// kube-proxy settles by map order, so here they are made unique.
	for i, svc := range set.services {
		if len(svc.Spec.ExternalIPs) > 0 {
			svc.Spec.ExternalIPs = []string{fmt.Sprintf("203.0.%d.%d", 113+i/250, i%250+1)}
		}
		for j := range svc.Status.LoadBalancer.Ingress {
			svc.Status.LoadBalancer.Ingress[j].IP = fmt.Sprintf("198.51.%d.%d", 100+i/250, i%250+1)
		}
	}
	up := newUpstreamNFTProxier(t, ns, set.cfg, true)
	up.fullSync(t, ns, set.services, set.slices)
	ours := runOurs(t, &proxyrules.NFTables{Layout: proxyrules.NFTablesKubeProxy}, nil, set.cfg, set.services, set.slices, true)
	if diff := diffNFT(up.nft.Dump(), ours.Dump()); diff != "" {
		t.Fatal(diff)
	}
}

// TestNFTablesEndpointRulesMatchKubeProxy: in the NFTablesEndpointRules
// layout (one rule per endpoint instead of a numgen map, a deliberate
// difference for load time), the table is kube-proxy's once each run of per-endpoint
// rules is written back as the map rule it replaces.
func TestNFTablesEndpointRulesMatchKubeProxy(t *testing.T) {
	compareNFTLayout(t, 200, 0x5eed, proxyrules.NFTablesEndpointRules, foldEndpointRules)
}

// runOurs syncs nodekit's generator and runs the transaction on fake (a
// new Fake when nil), committing it.
func runOurs(t *testing.T, g *proxyrules.NFTables, fake *knftables.Fake, cfg proxyrules.Config, services []*corev1.Service, slices []*discoveryv1.EndpointSlice, full bool) *knftables.Fake {
	t.Helper()
	if fake == nil {
		fake = knftables.NewFake(knftables.IPv4Family, proxyrules.NFTablesTable)
	}
	m, _ := proxyrules.NewModel(cfg, services, slices)
	s := g.Sync(m, full)
	tx := fake.NewTransaction()
	s.AddTo(tx)
	if err := fake.Run(context.Background(), tx); err != nil {
		t.Fatalf("nodekit transaction refused by knftables' Fake: %v\n%s", err, tx)
	}
	s.Commit()
	return fake
}

// mutateSlice changes a slice as a rollout does: an endpoint goes, one
// comes (the n-th new address of the test), others start or stop
// terminating, but for the addresses in keep.
func mutateSlice(r *rand.Rand, es *discoveryv1.EndpointSlice, keep map[string]bool, n int) *discoveryv1.EndpointSlice {
	es = es.DeepCopy()
	if n := len(es.Endpoints); n > 0 && r.IntN(2) == 0 {
		i := r.IntN(n)
		es.Endpoints = append(es.Endpoints[:i], es.Endpoints[i+1:]...)
	}
	for i := range es.Endpoints {
		if r.IntN(3) == 0 && !keep[es.Endpoints[i].Addresses[0]] {
			c := &es.Endpoints[i].Conditions
			ready := c.Ready == nil || *c.Ready
			c.Ready, c.Serving, c.Terminating = ptr.To(!ready), ptr.To(true), ptr.To(ready)
		}
	}
	if r.IntN(2) == 0 {
		es.Endpoints = append(es.Endpoints, discoveryv1.Endpoint{
			Addresses: []string{fmt.Sprintf("10.245.%d.%d", n/250, n%250+1)},
			NodeName:  ptr.To(pick(r, genNode, "node-b")),
		})
	}
	return es
}

// diffNFT compares two Fake dumps: lines in order, except elements, which
// are compared as a sorted list. It returns "" when they are the same.
func diffNFT(upstream, nodekit string) string {
	u, n := normalizeNFT(upstream), normalizeNFT(nodekit)
	if slices.Equal(u, n) {
		return ""
	}
	var b strings.Builder
	onlyU, onlyN := minus(u, n), minus(n, u)
	fmt.Fprintf(&b, "only upstream (%d):\n", len(onlyU))
	for _, l := range onlyU[:min(len(onlyU), 15)] {
		fmt.Fprintf(&b, "  %s\n", l)
	}
	fmt.Fprintf(&b, "only nodekit (%d):\n", len(onlyN))
	for _, l := range onlyN[:min(len(onlyN), 15)] {
		fmt.Fprintf(&b, "  %s\n", l)
	}
	if len(onlyU) == 0 && len(onlyN) == 0 {
		b.WriteString("same lines in another order\n")
	}
	return b.String()
}

// dropEmptyServiceChains removes per-ServicePort chains without rules.
func dropEmptyServiceChains(dump string) string {
	used := map[string]bool{}
	for _, l := range strings.Split(dump, "\n") {
		if m := ruleLine.FindStringSubmatch(l); m != nil {
			used[m[2]] = true
		}
	}
	var out []string
	for _, l := range strings.Split(dump, "\n") {
		if f := strings.Fields(l); len(f) == 5 && f[0] == "add" && f[1] == "chain" && strings.Contains(f[4], "/") && !used[f[4]] {
			continue
		}
		out = append(out, l)
	}
	return strings.Join(out, "\n")
}

func normalizeNFT(dump string) []string {
	var lines, elems []string
	for _, l := range strings.Split(strings.TrimSpace(dump), "\n") {
		if strings.HasPrefix(l, "add element ") {
			elems = append(elems, l)
		} else {
			lines = append(lines, l)
		}
	}
	slices.Sort(elems)
	return append(lines, elems...)
}

// An EndpointRules run: "numgen random mod k 0 meta l4proto P dnat to A"
// for k = n..2, then "meta l4proto P dnat to A".
var (
	ruleLine   = regexp.MustCompile(`^add rule (\S+ \S+) (\S+) (.*)$`)
	cascadeArm = regexp.MustCompile(`^numgen random mod (\d+) 0 (meta l4proto \S+) dnat to (\S+):(\d+)$`)
	plainDNAT  = regexp.MustCompile(`^(meta l4proto \S+) dnat to (\S+):(\d+)$`)
)

// foldEndpointRules rewrites each EndpointRules run in a dump as the one
// numgen-map rule kube-proxy writes for it (IPv4).
func foldEndpointRules(dump string) string {
	in := strings.Split(dump, "\n")
	var out []string
	for i := 0; i < len(in); i++ {
		m := ruleLine.FindStringSubmatch(in[i])
		var arm []string
		if m != nil {
			arm = cascadeArm.FindStringSubmatch(m[3])
		}
		if arm == nil {
			out = append(out, in[i])
			continue
		}
		n, _ := strconv.Atoi(arm[1])
		var targets []string
		for k := range n {
			rm := ruleLine.FindStringSubmatch(in[i+k])
			var ip, port string
			if k < n-1 {
				a := cascadeArm.FindStringSubmatch(rm[3])
				ip, port = a[3], a[4]
			} else {
				a := plainDNAT.FindStringSubmatch(rm[3])
				ip, port = a[2], a[3]
			}
			targets = append(targets, fmt.Sprintf("%d : %s . %s", k, ip, port))
		}
		out = append(out, fmt.Sprintf("add rule %s %s %s dnat ip addr . port to numgen random mod %d map { %s }",
			m[1], m[2], arm[2], n, strings.Join(targets, " , ")))
		i += n - 1
	}
	return strings.Join(out, "\n")
}

// TestNFTablesIPv6MatchesKubeProxy: the random sets are IPv4; this one is
// IPv6, with every kind of Service, so that the ip6 family, ipv6_addr
// sets, bracketed DNAT targets and dotted endpoint chain names are
// compared too.
func TestNFTablesIPv6MatchesKubeProxy(t *testing.T) {
	ns := testenv.NetNSes(t, "kubeproxy")[0]
	cfg := proxyrules.DefaultConfig(genNode)
	cfg.Family = corev1.IPv6Protocol
	cfg.NodeIP = netip.MustParseAddr("fd00:192:168::10")
	cfg.ClusterCIDR = netip.MustParsePrefix("fd00:10::/64")
	r := rand.New(rand.NewPCG(6, 6))
	for seed := range 50 {
		set := genServiceSet(r, 1+r.IntN(10))
		set.cfg = cfg
		set.cfg.MasqueradeAll = seed%7 == 0
		toIPv6(set)
		up := newUpstreamNFTProxier(t, ns, set.cfg, true)
		up.fullSync(t, ns, set.services, set.slices)
		ours := knftables.NewFake(knftables.IPv6Family, proxyrules.NFTablesTable)
		g := proxyrules.NFTables{Layout: proxyrules.NFTablesKubeProxy}
		m, _ := proxyrules.NewModel(set.cfg, set.services, set.slices)
		s := g.Sync(m, true)
		if err := ours.Run(context.Background(), s.Transaction()); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(ours.Dump(), "add table ip6 kube-proxy") {
			t.Fatal("no ip6 table")
		}
		if diff := diffNFT(up.nft.Dump(), ours.Dump()); diff != "" {
			t.Fatalf("seed %d:\n%s", seed, diff)
		}
	}
}

// toIPv6 moves a generated set into IPv6: every address a.b.c.d becomes
// fd00:a:b:c::d, prefixes keep their length plus 96.
func toIPv6(set serviceSet) {
	v6 := func(s string) string {
		s = strings.TrimSpace(s)
		addr, bits, isPrefix := strings.Cut(s, "/")
		p := strings.Split(addr, ".")
		if len(p) != 4 {
			return s
		}
		out := fmt.Sprintf("fd00:%s:%s:%s::%s", p[0], p[1], p[2], p[3])
		if isPrefix {
			n, _ := strconv.Atoi(bits)
			out = netip.PrefixFrom(netip.MustParseAddr(out), 96+n).Masked().String()
		}
		return out
	}
	for _, svc := range set.services {
		svc.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv6Protocol}
		svc.Spec.ClusterIP = v6(svc.Spec.ClusterIP)
		svc.Spec.ClusterIPs = []string{svc.Spec.ClusterIP}
		for i := range svc.Spec.ExternalIPs {
			svc.Spec.ExternalIPs[i] = v6(svc.Spec.ExternalIPs[i])
		}
		for i := range svc.Spec.LoadBalancerSourceRanges {
			svc.Spec.LoadBalancerSourceRanges[i] = v6(svc.Spec.LoadBalancerSourceRanges[i])
		}
		for i := range svc.Status.LoadBalancer.Ingress {
			svc.Status.LoadBalancer.Ingress[i].IP = v6(svc.Status.LoadBalancer.Ingress[i].IP)
		}
	}
	for _, es := range set.slices {
		es.AddressType = discoveryv1.AddressTypeIPv6
		for i := range es.Endpoints {
			for j := range es.Endpoints[i].Addresses {
				es.Endpoints[i].Addresses[j] = v6(es.Endpoints[i].Addresses[j])
			}
		}
	}
}
