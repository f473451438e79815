package proxyrules

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func TestNFTablesRefillSlots(t *testing.T) {
	for _, tc := range []struct {
		name      string
		old, want []string
		got       []string
	}{
		{"last goes", []string{"a", "b", "c", "d"}, []string{"a", "b", "c"}, []string{"a", "b", "c"}},
		{"a middle one goes: the last takes its key", []string{"a", "b", "c", "d"}, []string{"a", "c", "d"}, []string{"a", "d", "c"}},
		{"one goes, one comes: the new one takes its key", []string{"a", "b", "c", "d"}, []string{"e", "a", "c", "d"}, []string{"a", "e", "c", "d"}},
		{"one comes", []string{"a", "b"}, []string{"c", "b", "a"}, []string{"a", "b", "c"}},
		{"all but the last go", []string{"a", "b", "c", "d"}, []string{"d"}, []string{"d"}},
		{"all but the first go", []string{"a", "b", "c", "d"}, []string{"a"}, []string{"a"}},
		{"all change", []string{"a", "b"}, []string{"c", "d", "e"}, []string{"c", "d", "e"}},
	} {
		// Endpoints named by letters; the wanted ones are new objects of
		// the same addresses, as a newer model's are.
		endpoints := func(names []string) []*Endpoint {
			eps := make([]*Endpoint, len(names))
			for i, n := range names {
				eps[i] = &Endpoint{Addr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, n[0]}), 80)}
			}
			return eps
		}
		want := endpoints(tc.want)
		slots := refillSlots(endpoints(tc.old), want)
		var got []string
		for _, ep := range slots {
			if !slices.Contains(want, ep) {
				t.Errorf("%s: slot of %v holds an endpoint not of the new ones", tc.name, ep)
			}
			got = append(got, string(ep.Addr.Addr().As4()[3]))
		}
		if !slices.Equal(got, tc.got) {
			t.Errorf("%s: refillSlots(%v, %v) = %v, want %v", tc.name, tc.old, tc.want, got, tc.got)
		}
	}
}

// TestNFTablesEndpointMapsChanges: an endpoint change that keeps their
// number is a change of map elements only (what the kernel commits
// without validating the table); a change of their number rewrites the
// chain's one rule and keeps its keys up to its capacity, past which the
// chain takes new keys. After each step the table picks among the same
// endpoints as a fresh full sync's.
func TestNFTablesEndpointMapsChanges(t *testing.T) {
	cfg := DefaultConfig("node1")
	svcs, eps := cluster(100, 10)
	var g NFTables
	fake := newNFTFake(cfg.Family)
	runNFT(t, &g, fake, mustModel(t, cfg, svcs, eps), false)
	name := ServicePortName{Namespace: "ns", Name: "s7", Port: "p", Protocol: corev1.ProtocolTCP}
	chain := NFTablesChainsFor(name).Cluster
	base := eps[7].Endpoints
	rule := regexp.MustCompile(`add rule ip kube-proxy ` + regexp.QuoteMeta(chain) + ` .* mod (\d+) offset (\d+) map @`)
	offset := strconv.FormatUint(uint64(g.committed.ports[name].slots[0].base), 10)
	for _, step := range []struct {
		name       string
		old, new   int // endpoints kept of the original ten, and new ones
		rewrite    bool
		sameOffset bool
	}{
		{"one is replaced", 9, 1, false, true},
		{"one goes", 9, 0, true, true},
		{"three come (12, the capacity: 10 + ceil(10/8))", 9, 3, true, true},
		{"one more than the capacity", 10, 3, true, false},
		{"down to 2", 2, 0, true, true},
	} {
		eps[7] = eps[7].DeepCopy()
		eps[7].Endpoints = slices.Clone(base[:step.old])
		for i := range step.new {
			eps[7].Endpoints = append(eps[7].Endpoints, endpointSlice("s7", 8080, corev1.ProtocolTCP, ep{ip: fmt.Sprintf("10.250.0.%d", i)}).Endpoints...)
		}
		m := mustModel(t, cfg, svcs, eps)
		s := runNFT(t, &g, fake, m, false)
		text := s.Transaction().String()
		if rewrote := strings.Contains(text, "chain ip kube-proxy "+chain+"\n"); rewrote != step.rewrite {
			t.Fatalf("%s: chain rewritten = %v, want %v:\n%s", step.name, rewrote, step.rewrite, text)
		}
		for _, line := range strings.Split(strings.TrimSpace(text), "\n") {
			if !strings.Contains(line, " element ip kube-proxy "+nftPrefixEndpointMap) && !strings.Contains(line, " "+chain) {
				t.Fatalf("%s: %q in a change of s7's endpoints", step.name, line)
			}
		}
		if step.rewrite {
			r := rule.FindStringSubmatch(text)
			if r == nil || r[1] != strconv.Itoa(step.old+step.new) {
				t.Fatalf("%s: no rule for %d endpoints:\n%s", step.name, step.old+step.new, text)
			}
			if (r[2] == offset) != step.sameOffset {
				t.Fatalf("%s: offset %s, was %s; want the same: %v", step.name, r[2], offset, step.sameOffset)
			}
			offset = r[2]
		}
		fresh := newNFTFake(cfg.Family)
		runNFT(t, new(NFTables), fresh, m, true)
		if got, want := foldEndpointMaps(fake.Dump(), true), foldEndpointMaps(fresh.Dump(), true); got != want {
			t.Fatalf("%s: partial syncs and a full sync pick differently:\n%s", step.name, firstDiff(got, want))
		}
	}
}

// foldEndpointMaps writes each endpoint-map rule in a Fake dump
// as the kube-proxy rule it stands for (`dnat ... to numgen random mod n
// map { 0 : a . p , ... }`, or `dnat to a:p` for one endpoint), with the
// endpoints in key order, or sorted with sortEndpoints, and leaves the
// endpoint maps out. What remains is kube-proxy's table. A key a rule
// needs and its map lacks, or an element no rule reaches, is written as a
// line of its own, which no kube-proxy table has.
func foldEndpointMaps(dump string, sortEndpoints bool) string {
	lines := strings.Split(strings.TrimSpace(dump), "\n")
	values := map[string]string{} // "map key" -> value
	for _, l := range lines {
		if head, body, ok := strings.Cut(l, " { "); ok && strings.HasPrefix(head, "add element ") && strings.Contains(head, " "+nftPrefixEndpointMap) {
			f := strings.Fields(head)
			key, value, _ := strings.Cut(strings.TrimSuffix(body, " }"), " : ")
			values[f[len(f)-1]+" "+key] = value
		}
	}
	var out []string
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) > 3 && (f[1] == "map" || f[1] == "element") && strings.HasPrefix(f[4], nftPrefixEndpointMap) {
			continue
		}
		i := strings.Index(l, " addr . port to numgen random mod ")
		if f[1] != "rule" || i < 0 || !strings.Contains(l, " map @"+nftPrefixEndpointMap) {
			out = append(out, l)
			continue
		}
		// "... meta l4proto P dnat ip addr . port to numgen random mod M offset B map @MAP"
		g := strings.Fields(l[i:])
		n, _ := strconv.Atoi(g[7])
		b, _ := strconv.Atoi(g[9])
		name := strings.TrimPrefix(g[11], "@")
		var eps []string
		for k := b; k < b+n; k++ {
			key := name + " " + strconv.Itoa(k)
			v, ok := values[key]
			if !ok {
				out = append(out, "missing element "+key)
			}
			delete(values, key)
			eps = append(eps, v)
		}
		if sortEndpoints {
			slices.Sort(eps)
		}
		prefix := l[:i] // "add rule ... meta l4proto P dnat ip"
		if len(eps) == 1 {
			addr, port, _ := strings.Cut(eps[0], " . ")
			if strings.Contains(addr, ":") {
				addr = "[" + addr + "]"
			}
			out = append(out, strings.TrimSuffix(strings.TrimSuffix(prefix, " ip"), " ip6")+" to "+addr+":"+port)
			continue
		}
		var m strings.Builder
		for k, v := range eps {
			if k > 0 {
				m.WriteString(" , ")
			}
			m.WriteString(strconv.Itoa(k) + " : " + v)
		}
		out = append(out, prefix+" addr . port to numgen random mod "+strconv.Itoa(len(eps))+" map { "+m.String()+" }")
	}
	for _, key := range slices.Sorted(maps.Keys(values)) {
		out = append(out, "unreached element "+key)
	}
	return strings.Join(out, "\n") + "\n"
}

// TestNFTablesEndpointMapsFoldToKubeProxy: a full sync in the
// endpoint-maps layout, its rules folded back, is kube-proxy's layout's
// table, for every kind of Service and both families.
func TestNFTablesEndpointMapsFoldToKubeProxy(t *testing.T) {
	svcs, eps := cluster(300, 4)
	svcs = append(svcs, service("sticky", "10.96.9.9", 80, clientIPAffinity(60), loadBalancer(30999, 31999, "203.0.113.9"), sourceRanges("192.0.2.0/24")))
	eps = append(eps, endpointSlice("sticky", 8080, corev1.ProtocolTCP, ep{ip: "10.244.9.1", node: "node1"}, ep{ip: "10.244.9.2"}))
	svcs = append(svcs, service("dns", "10.96.9.10", 53, func(s *corev1.Service) { s.Spec.Ports[0].Protocol = corev1.ProtocolUDP }))
	eps = append(eps, endpointSlice("dns", 53, corev1.ProtocolUDP, ep{ip: "10.244.9.3"}, ep{ip: "10.244.9.4", node: "node1"}))
	cfg := DefaultConfig("node1")
	dump := func(layout NFTablesLayout) string {
		fake := newNFTFake(cfg.Family)
		runNFT(t, &NFTables{Layout: layout}, fake, mustModel(t, cfg, svcs, eps), true)
		return fake.Dump()
	}
	if got, want := foldEndpointMaps(dump(NFTablesEndpointMaps), false), dump(NFTablesKubeProxy); got != want {
		t.Fatalf("folded endpoint-maps table differs from kube-proxy's:\n%s", firstDiff(got, want))
	}
}

// TestNFTablesTrackerPartialEqualsFull: fed by a Tracker, which hands
// unchanged ports over as the same PortStates (skipped without hashing),
// partial syncs still build the table a full sync builds, in every layout.
func TestNFTablesTrackerPartialEqualsFull(t *testing.T) {
	cfg := DefaultConfig("node1")
	for _, layout := range nftLayouts {
		r := rand.New(rand.NewPCG(uint64(layout), 9))
		svcs, eps := cluster(40, 4)
		tr := trackerOf(t, cfg, svcs, eps)
		g := NFTables{Layout: layout}
		fake := newNFTFake(cfg.Family)
		m, _ := tr.Model()
		runNFT(t, &g, fake, m, false)
		for step := range 40 {
			i := r.IntN(len(svcs))
			switch r.IntN(4) {
			case 0: // an endpoint goes
				eps[i] = eps[i].DeepCopy()
				if n := len(eps[i].Endpoints); n > 0 {
					eps[i].Endpoints = eps[i].Endpoints[:n-1]
				}
				tr.SetEndpointSlice(eps[i])
			case 1: // endpoints come
				eps[i] = eps[i].DeepCopy()
				for k := range 1 + r.IntN(4) {
					eps[i].Endpoints = append(eps[i].Endpoints, endpointSlice(svcs[i].Name, 8080, corev1.ProtocolTCP, ep{ip: fmt.Sprintf("10.250.%d.%d", step, k+1)}).Endpoints...)
				}
				tr.SetEndpointSlice(eps[i])
			case 2: // the Service goes
				tr.DeleteService(svcs[i].Namespace, svcs[i].Name)
				tr.DeleteEndpointSlice(eps[i].Namespace, eps[i].Name)
				svcs, eps = slices.Delete(svcs, i, i+1), slices.Delete(eps, i, i+1)
			default: // a Service comes
				name := fmt.Sprintf("new%d", step)
				svcs = append(svcs, service(name, fmt.Sprintf("10.97.0.%d", step+1), 80, nodePort(int32(31000+step))))
				eps = append(eps, endpointSlice(name, 8080, corev1.ProtocolTCP, ep{ip: fmt.Sprintf("10.251.0.%d", step+1), node: "node1"}))
				tr.SetService(svcs[len(svcs)-1])
				tr.SetEndpointSlice(eps[len(eps)-1])
			}
			m, _ := tr.Model()
			runNFT(t, &g, fake, m, false)
			fresh := newNFTFake(cfg.Family)
			runNFT(t, &NFTables{Layout: layout}, fresh, mustModel(t, cfg, svcs, eps), true)
			got, want := fake.Dump(), fresh.Dump()
			if layout == NFTablesEndpointMaps {
				got, want = foldEndpointMaps(got, true), foldEndpointMaps(want, true)
			}
			if got, want := comparableDump(got), comparableDump(want); !slices.Equal(got, want) {
				t.Fatalf("%v step %d: partial syncs and a full sync differ:\n%s", layout, step, firstDiff(strings.Join(got, "\n"), strings.Join(want, "\n")))
			}
		}
	}
}

func TestNFTablesSlotValue(t *testing.T) {
	for addr, want := range map[string]string{
		"10.0.0.1:8080":      "10.0.0.1 . 8080",
		"[fd00::1]:53":       "fd00::1 . 53",
		"[::ffff:1.2.3.4]:1": "::ffff:1.2.3.4 . 1",
	} {
		ep := &Endpoint{Addr: netip.MustParseAddrPort(addr)}
		if got := string(appendSlotValue(nil, ep)); got != want {
			t.Errorf("appendSlotValue(%s) = %q, want %q", addr, got, want)
		}
	}
}
