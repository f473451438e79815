package proxyrules

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kube-nodekit/nodekit/internal/testenv"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"sigs.k8s.io/knftables"
)

// formatNFTEndpointRule writes r as endpointSlots (nftables_layout.go)
// writes its rules.
func formatNFTEndpointRule(family knftables.Family, r nftEndpointRule) string {
	proto := nftSlotProtocols[r.proto]
	return "meta l4proto " + proto + " dnat " + string(family) + " addr . port to numgen random mod " +
		strconv.FormatUint(uint64(r.modulus), 10) + " offset " + strconv.FormatUint(uint64(r.offset), 10) +
		" map @" + nftEndpointMapName(r.proto, r.shard)
}

// TestNFTablesEndpointRuleParse: the parser takes the endpoint-map rule
// exactly as the generator writes it, in both families and for each
// protocol, and nothing else: a near miss goes through nft.
func TestNFTablesEndpointRuleParse(t *testing.T) {
	for _, family := range []knftables.Family{knftables.IPv4Family, knftables.IPv6Family} {
		for p, proto := range nftSlotProtocols {
			text := "meta l4proto " + proto + " dnat " + string(family) + " addr . port to numgen random mod 12 offset 1234 map @endpoints-" + proto + "-6b"
			r, ok := parseNFTEndpointRule(family, text)
			if want := (nftEndpointRule{proto: uint8(p), shard: 0x6b, modulus: 12, offset: 1234}); !ok || r != want {
				t.Errorf("%s: %q = %+v, %v; want %+v", family, text, r, ok, want)
			}
		}
	}
	const good = "meta l4proto tcp dnat ip addr . port to numgen random mod 12 offset 1234 map @endpoints-tcp-6b"
	for _, c := range []struct {
		name   string
		family knftables.Family
		text   string
	}{
		{"the other family's rule", knftables.IPv6Family, good},
		{"an inet table", knftables.InetFamily, good},
		{"ip6 rule in an ip table", knftables.IPv4Family, strings.Replace(good, "dnat ip ", "dnat ip6 ", 1)},
		{"modulus 0 (the kernel refuses it)", knftables.IPv4Family, strings.Replace(good, "mod 12", "mod 0", 1)},
		{"modulus past uint32", knftables.IPv4Family, strings.Replace(good, "mod 12", "mod 4294967296", 1)},
		{"offset past uint32", knftables.IPv4Family, strings.Replace(good, "offset 1234", "offset 4294967296", 1)},
		{"leading zero", knftables.IPv4Family, strings.Replace(good, "mod 12", "mod 012", 1)},
		{"sign", knftables.IPv4Family, strings.Replace(good, "offset 1234", "offset +1234", 1)},
		{"hex number", knftables.IPv4Family, strings.Replace(good, "mod 12", "mod 0xc", 1)},
		{"no offset", knftables.IPv4Family, strings.Replace(good, " offset 1234", "", 1)},
		{"no addr . port", knftables.IPv4Family, strings.Replace(good, " addr . port", "", 1)},
		{"another protocol's map", knftables.IPv4Family, strings.Replace(good, "@endpoints-tcp-", "@endpoints-udp-", 1)},
		{"a protocol without endpoint maps", knftables.IPv4Family, strings.ReplaceAll(good, "tcp", "dccp")},
		{"upper-case shard", knftables.IPv4Family, strings.Replace(good, "-6b", "-6B", 1)},
		{"three-digit shard", knftables.IPv4Family, strings.Replace(good, "-6b", "-06b", 1)},
		{"one-digit shard", knftables.IPv4Family, strings.Replace(good, "-6b", "-6", 1)},
		{"another map", knftables.IPv4Family, strings.Replace(good, "@endpoints-tcp-6b", "@service-ips", 1)},
		{"an anonymous map", knftables.IPv4Family, strings.Replace(good, "@endpoints-tcp-6b", "{ 0 : 10.0.0.1 . 80 }", 1)},
		{"a comment", knftables.IPv4Family, good + ` comment "x"`},
		{"a counter", knftables.IPv4Family, strings.Replace(good, "meta l4proto tcp ", "meta l4proto tcp counter ", 1)},
		{"trailing space", knftables.IPv4Family, good + " "},
		{"double space", knftables.IPv4Family, strings.Replace(good, "mod 12", "mod  12", 1)},
		{"kube-proxy's DNAT to one endpoint", knftables.IPv4Family, "meta l4proto tcp dnat to 10.0.0.1:80"},
		{"empty", knftables.IPv4Family, ""},
	} {
		if r, ok := parseNFTEndpointRule(c.family, c.text); ok {
			t.Errorf("%s: %q parsed as %+v", c.name, c.text, r)
		}
	}
}

// TestNFTablesEndpointRuleRoundTrip: parse(format(r)) == r over the whole
// range of the numbers, and every endpoint-map rule of a generated table parses
// and formats back to its text.
func TestNFTablesEndpointRuleRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 2000 {
		family := []knftables.Family{knftables.IPv4Family, knftables.IPv6Family}[i%2]
		r := nftEndpointRule{proto: uint8(rng.IntN(len(nftSlotProtocols))), shard: uint8(rng.Uint32()), modulus: max(1, rng.Uint32()), offset: rng.Uint32()}
		switch i % 5 {
		case 0:
			r.modulus, r.offset = 1, 0
		case 1:
			r.modulus, r.offset = math.MaxUint32, math.MaxUint32
		case 2:
			r.modulus, r.offset = uint32(rng.IntN(20)+1), uint32(rng.IntN(1000))
		}
		text := formatNFTEndpointRule(family, r)
		if got, ok := parseNFTEndpointRule(family, text); !ok || got != r {
			t.Fatalf("%q = %+v, %v; want %+v", text, got, ok, r)
		}
	}
	for _, f := range []corev1.IPFamily{corev1.IPv4Protocol, corev1.IPv6Protocol} {
		cfg, svcs, eps := nftRewriteCluster(f, nftRewriteSteps[0].counts)
		s := new(NFTables).Sync(mustModel(t, cfg, svcs, eps), true)
		rules := 0
		for _, op := range s.operations() {
			if op.kind != nftRule || !strings.Contains(op.text, " map @"+nftPrefixEndpointMap) {
				continue
			}
			rules++
			r, ok := parseNFTEndpointRule(s.family, op.text)
			if !ok || formatNFTEndpointRule(s.family, r) != op.text {
				t.Fatalf("%s: generated rule %q parsed as %+v, %v", f, op.text, r, ok)
			}
		}
		if rules == 0 {
			t.Fatalf("%s: no endpoint-map rules generated", f)
		}
	}
}

// FuzzNFTablesEndpointRule: whatever the parser takes is written exactly
// as the generator would write it, so nothing but that shape reaches the
// netlink encoding.
func FuzzNFTablesEndpointRule(f *testing.F) {
	f.Add(false, "meta l4proto tcp dnat ip addr . port to numgen random mod 12 offset 1234 map @endpoints-tcp-6b")
	f.Add(true, "meta l4proto sctp dnat ip6 addr . port to numgen random mod 1 offset 0 map @endpoints-sctp-00")
	f.Add(false, "meta l4proto udp dnat ip addr . port to numgen random mod 4294967295 offset 4294967295 map @endpoints-udp-ff")
	f.Fuzz(func(t *testing.T, ip6 bool, text string) {
		family := knftables.IPv4Family
		if ip6 {
			family = knftables.IPv6Family
		}
		if r, ok := parseNFTEndpointRule(family, text); ok && formatNFTEndpointRule(family, r) != text {
			t.Fatalf("%q parsed as %+v, which is written %q", text, r, formatNFTEndpointRule(family, r))
		}
	})
}

// TestNFTablesNetlinkApplicable: a sync of endpoint map and hairpin
// elements, per-ServicePort chains added and flushed, and endpoint-map
// rules goes over netlink; any other operation sends it through nft.
func TestNFTablesNetlinkApplicable(t *testing.T) {
	const chain = "service-KLGTZVRZ-ns/s5/tcp/p"
	rule := nftOp{verb: nftAdd, kind: nftRule, name: chain, text: "meta l4proto tcp dnat ip addr . port to numgen random mod 6 offset 12 map @endpoints-tcp-f9"}
	base := nftOps{
		{verb: nftAdd, kind: nftChain, name: chain},
		{verb: nftFlush, kind: nftChain, name: chain},
		rule,
		{verb: nftDelete, kind: nftMapElem, name: "endpoints-tcp-f9", text: "0"},
		{verb: nftAdd, kind: nftMapElem, name: "endpoints-tcp-f9", text: "12", value: "10.0.0.1 . 8080"},
		{verb: nftAdd, kind: nftSetElem, name: nftHairpin, text: "10.0.0.1 . 10.0.0.1 . tcp . 8080"},
	}
	if s := (&NFTablesSync{family: knftables.IPv4Family, ops: base}); !s.netlinkApplicable() {
		t.Fatalf("a chain rewrite with its elements is not netlink-applicable:\n%s", s.Script())
	}
	withComment, other, notService := rule, rule, rule
	withComment.comment = "x"
	other.text = "meta l4proto tcp dnat to 10.0.0.1:8080"
	notService.name = nftServices
	for _, c := range []struct {
		name string
		op   nftOp
	}{
		{"a rule with a comment", withComment},
		{"another rule", other},
		{"a rule in a chain of the table's own", notService},
		{"a chain deleted", nftOp{verb: nftDelete, kind: nftChain, name: chain}},
		{"a chain of the table's own flushed", nftOp{verb: nftFlush, kind: nftChain, name: nftServices}},
		{"a verdict map element", nftOp{verb: nftAdd, kind: nftMapElem, name: nftServiceIPs, text: "10.96.0.1 . tcp . 80", value: "goto " + chain}},
		{"an object", nftOp{verb: nftAdd, kind: nftObject, obj: &knftables.Set{Name: "affinity-x/y", Type: "ipv4_addr"}}},
	} {
		s := &NFTablesSync{family: knftables.IPv4Family, ops: append(base[:len(base):len(base)], c.op)}
		if s.netlinkApplicable() {
			t.Errorf("%s: netlink-applicable:\n%s", c.name, s.Script())
		}
	}
	if s := (&NFTablesSync{family: knftables.IPv6Family, ops: base[:3]}); s.netlinkApplicable() {
		t.Error("an ip rule in an ip6 table is netlink-applicable")
	}
	if s := (&NFTablesSync{family: knftables.IPv4Family, ops: base, Full: true}); s.netlinkApplicable() {
		t.Error("a full sync is netlink-applicable")
	}
}

// nftRewriteCluster is a small cluster of family f: a Service of each
// protocol the endpoint maps hold ("t", "u", "s"), one with
// internalTrafficPolicy Local ("il", a local chain), one with
// externalTrafficPolicy Local ("lb", a cluster, a local and an external
// chain) and a bystander ("w"), with the numbers of endpoints counts
// gives (in all and on this node).
func nftRewriteCluster(f corev1.IPFamily, counts map[string][2]int) (Config, []*corev1.Service, []*discoveryv1.EndpointSlice) {
	cfg := DefaultConfig("node1")
	addr := func(a, b int) string { return fmt.Sprintf("10.%d.0.%d", a, b) }
	if f == corev1.IPv6Protocol {
		cfg.Family = corev1.IPv6Protocol
		cfg.ClusterCIDR = netip.MustParsePrefix("fd00:10::/64")
		cfg.NodeIP = netip.MustParseAddr("fd00:192::10")
		addr = func(a, b int) string { return fmt.Sprintf("fd00:%d::%d", a, b) }
	}
	family := func(s *corev1.Service) { s.Spec.IPFamilies = []corev1.IPFamily{f} }
	sctp := func(s *corev1.Service) { s.Spec.Ports[0].Protocol = corev1.ProtocolSCTP }
	var svcs []*corev1.Service
	var eps []*discoveryv1.EndpointSlice
	for i, c := range []struct {
		name  string
		proto corev1.Protocol
		opts  []func(*corev1.Service)
	}{
		{"t", corev1.ProtocolTCP, nil},
		{"u", corev1.ProtocolUDP, []func(*corev1.Service){udp}},
		{"s", corev1.ProtocolSCTP, []func(*corev1.Service){sctp}},
		{"il", corev1.ProtocolTCP, []func(*corev1.Service){internalLocal}},
		{"lb", corev1.ProtocolTCP, []func(*corev1.Service){loadBalancer(30009, 32009, addr(203, 9)), externalLocal}},
		{"w", corev1.ProtocolTCP, nil},
	} {
		svcs = append(svcs, service(c.name, addr(96, i+1), 80, append(c.opts, family)...))
		var list []ep
		for e := range counts[c.name][0] {
			node := "other"
			if e < counts[c.name][1] {
				node = "node1"
			}
			list = append(list, ep{ip: addr(100+i, e+1), node: node})
		}
		es := endpointSlice(c.name, 8080, c.proto, list...)
		if f == corev1.IPv6Protocol {
			es.AddressType = discoveryv1.AddressTypeIPv6
		}
		eps = append(eps, es)
	}
	return cfg, svcs, eps
}

// nftRewriteSteps change the numbers of endpoints of nftRewriteCluster's
// Services. netlink: the sync goes over netlink.
var nftRewriteSteps = []struct {
	name    string
	counts  map[string][2]int
	netlink bool
}{
	{"first", map[string][2]int{"t": {10, 0}, "u": {3, 0}, "s": {4, 0}, "il": {3, 1}, "lb": {4, 1}, "w": {10, 0}}, false},
	// t falls to 3 endpoints, u and s rise past their capacity (new
	// keys), il's local chain past its own (two new endpoints on this
	// node: hairpin elements), w loses an endpoint.
	{"rewrites", map[string][2]int{"t": {3, 0}, "u": {8, 0}, "s": {6, 0}, "il": {3, 3}, "lb": {4, 1}, "w": {9, 0}}, true},
	{"back", map[string][2]int{"t": {10, 0}, "u": {3, 0}, "s": {4, 0}, "il": {3, 1}, "lb": {4, 1}, "w": {10, 0}}, true},
	// lb's cluster and local chains rise past their capacity; its
	// external chain stays as it is.
	{"external", map[string][2]int{"t": {10, 0}, "u": {3, 0}, "s": {4, 0}, "il": {3, 1}, "lb": {6, 3}, "w": {10, 0}}, true},
}

// TestNFTablesNetlinkChainRewrite: a sync that rewrites per-ServicePort
// chains (the number of their endpoints left what they were written for)
// goes over netlink, and leaves the kernel with the table `nft -f` of the
// same sync leaves in another namespace: the same listing, and the same
// expressions in the kernel (nft --debug=netlink prints them as it reads
// them back). For ip and ip6.
func TestNFTablesNetlinkChainRewrite(t *testing.T) {
	for _, f := range []corev1.IPFamily{corev1.IPv4Protocol, corev1.IPv6Protocol} {
		t.Run(string(f), func(t *testing.T) {
			nss := testenv.NetNSes(t, "netlink", "nft")
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			applier, nftRuns := countingNFTApplier(nss[0])
			family := string(nftFamily(f))
			for i, step := range nftRewriteSteps {
				cfg, svcs, eps := nftRewriteCluster(f, step.counts)
				before := *nftRuns
				s, err := applier.Apply(ctx, mustModel(t, cfg, svcs, eps), false)
				if err != nil {
					t.Fatalf("%s: %v", step.name, err)
				}
				script := s.Script()
				if i > 0 && (!strings.Contains(string(script), "\nflush chain ") || !strings.Contains(string(script), "\nadd rule ")) {
					t.Fatalf("%s: the sync rewrites no chain:\n%s", step.name, script)
				}
				if viaNetlink := *nftRuns == before; viaNetlink != step.netlink {
					t.Fatalf("%s: went over netlink = %v, want %v:\n%s", step.name, viaNetlink, step.netlink, script)
				}
				if out, err := HostExec(ctx, script, "ip", "netns", "exec", nss[1].Name, "nft", "-f", "-"); err != nil {
					t.Fatalf("%s: nft -f: %v: %s", step.name, err, out)
				}
				for _, list := range [][]string{{"list", "table", family, NFTablesTable}, {"--debug=netlink", "list", "table", family, NFTablesTable}} {
					got, want := nss[0].Run(t, "nft", list...), nss[1].Run(t, "nft", list...)
					if list[0] == "--debug=netlink" {
						// Elements come in the kernel's hash order, which
						// differs between namespaces; the listing has them
						// sorted.
						got, want = withoutNetlinkElements(got), withoutNetlinkElements(want)
					}
					if got != want {
						t.Fatalf("%s: nft %s: the netlink batch and nft -f leave different tables:\n%s\nsync:\n%s", step.name, strings.Join(list, " "), firstDiff(got, want), script)
					}
				}
			}
		})
	}
}

// withoutNetlinkElements drops the set elements from nft --debug=netlink
// output, keeping the rules' expressions.
func withoutNetlinkElements(out string) string {
	var b strings.Builder
	for line := range strings.Lines(out) {
		if !strings.HasPrefix(line, "\telement ") {
			b.WriteString(line)
		}
	}
	return b.String()
}

// TestNFTablesNetlinkChainRewriteRefused: a batch that rewrites chains
// and that the kernel refuses (here: it deletes an endpoint map element
// someone removed by hand) changes nothing, chains included, and goes
// through once the element is back.
func TestNFTablesNetlinkChainRewriteRefused(t *testing.T) {
	ns := testenv.NetNSes(t, "refused")[0]
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	applier, nftRuns := countingNFTApplier(ns)
	cfg, svcs, eps := nftRewriteCluster(corev1.IPv4Protocol, nftRewriteSteps[0].counts)
	if _, err := applier.Apply(ctx, mustModel(t, cfg, svcs, eps), false); err != nil {
		t.Fatal(err)
	}
	var sl nftSlots
	for name, rec := range applier.NFTables.committed.ports {
		if name.Name == "t" {
			sl = rec.slots[0]
		}
	}
	key := nftEndpointMapNames[int(sl.proto)*nftEndpointMaps+int(sl.shard)] + " { " + strconv.FormatUint(uint64(sl.base), 10) + " }"
	ns.Run(t, "nft", "delete element ip kube-proxy "+key)
	before := ns.Run(t, "nft", "list", "table", "ip", NFTablesTable)
	cfg, svcs, eps = nftRewriteCluster(corev1.IPv4Protocol, nftRewriteSteps[1].counts)
	m := mustModel(t, cfg, svcs, eps)
	runs := *nftRuns
	if _, err := applier.Apply(ctx, m, false); err == nil || !strings.Contains(err.Error(), "delete element") || !errors.Is(err, syscall.ENOENT) || *nftRuns != runs {
		t.Fatalf("a chain rewrite over a missing element: err = %v (nft ran %d times), want ENOENT from netlink naming the element", err, *nftRuns-runs)
	}
	if after := ns.Run(t, "nft", "list", "table", "ip", NFTablesTable); after != before {
		t.Fatalf("the refused batch changed the table:\n%s", firstDiff(after, before))
	}
	ns.Run(t, "nft", "add element ip kube-proxy "+strings.Replace(key, " }", " : "+string(appendSlotValue(nil, sl.eps[0]))+" }", 1))
	if s, err := applier.Apply(ctx, m, false); err != nil || *nftRuns != runs || !strings.Contains(string(s.Script()), "flush chain") {
		t.Fatalf("the same rewrite once the element is back: %v (nft ran %d times)", err, *nftRuns-runs)
	}
}

// TestNFTablesNetlinkLargeBatch: a change of 600 Services' endpoint counts
// at once (thousands of operations, more than a netlink socket's default
// buffers hold) goes over netlink and takes, and syncs after it still do.
func TestNFTablesNetlinkLargeBatch(t *testing.T) {
	ns := testenv.NetNSes(t, "netlink")[0]
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	applier, nftRuns := countingNFTApplier(ns)
	cfg := DefaultConfig("node1")
	svcs, eps := cluster(2000, 4)
	if _, err := applier.Apply(ctx, mustModel(t, cfg, svcs, eps), false); err != nil {
		t.Fatal(err)
	}
	const changed = 600
	for i := range changed {
		eps[i] = eps[i].DeepCopy()
		eps[i].Endpoints = eps[i].Endpoints[:3]
	}
	m := mustModel(t, cfg, svcs, eps)
	before := *nftRuns
	s, err := applier.Apply(ctx, m, false)
	if err != nil || *nftRuns != before || s.NumOperations() < 2000 {
		t.Fatalf("a change of %d Services: %d operations, nft runs %d, err %v; want it over netlink", changed, s.NumOperations(), *nftRuns-before, err)
	}
	want := strings.Count(string(new(NFTables).Sync(m, true).Script()), "random mod 3 ")
	if got := strings.Count(ns.Run(t, "nft", "list", "table", "ip", NFTablesTable), "random mod 3 "); got != want || want < changed/2 {
		t.Fatalf("%d chains pick among 3 endpoints, want %d as a full sync", got, want)
	}
	if _, err := applier.Apply(ctx, m, true); err != nil {
		t.Fatalf("full sync after it: %v", err)
	}
}

// countingNFTApplier returns an applier that programs ns (nft run in it,
// netlink into it) and the number of times it has run `nft -f`.
func countingNFTApplier(ns *testenv.NetNS) (*NFTablesApplier, *int) {
	runs := new(int)
	exec := func(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error) {
		if name == "nft" && argsContain(args, "-f") {
			*runs++
		}
		return HostExec(ctx, stdin, "ip", append([]string{"netns", "exec", ns.Name, name}, args...)...)
	}
	return &NFTablesApplier{Exec: exec, NetNS: "/run/netns/" + ns.Name}, runs
}
