package proxyrules

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kube-nodekit/nodekit/internal/testenv"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

// BenchmarkNFTablesFull measures a full sync from a built model up to the
// nft script the applier loads: by a generator that has synced before (as
// in a running proxy's periodic full sync, which writes unchanged ports'
// operations again from their records), and by a new one.
func BenchmarkNFTablesFull(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		svcs, eps := cluster(n, 10)
		m := mustModel(b, DefaultConfig("node1"), svcs, eps)
		b.Run(fmt.Sprintf("services=%d/endpoints=10/generator=new", n), func(b *testing.B) {
			b.ReportAllocs()
			var ops, size int
			for b.Loop() {
				var g NFTables
				s := g.Sync(m, true)
				ops, size = s.NumOperations(), len(s.Script())
			}
			b.ReportMetric(float64(ops), "ops")
			b.ReportMetric(float64(size), "script-bytes")
		})
		b.Run(fmt.Sprintf("services=%d/endpoints=10/generator=synced", n), func(b *testing.B) {
			b.ReportAllocs()
			var g NFTables
			g.Sync(m, true).Commit()
			var ops, size int
			for b.Loop() {
				s := g.Sync(m, true)
				ops, size = s.NumOperations(), len(s.Script())
			}
			b.ReportMetric(float64(ops), "ops")
			b.ReportMetric(float64(size), "script-bytes")
		})
	}
}

// BenchmarkNFTablesPartial measures the sync after one Service's endpoints
// changed among 10000, the model built by a Tracker as a running proxy
// builds it (included).
func BenchmarkNFTablesPartial(b *testing.B) {
	svcs, eps := cluster(10000, 10)
	cfg := DefaultConfig("node1")
	changed := eps[5000].DeepCopy()
	changed.Endpoints = changed.Endpoints[:9]
	before := eps[5000]
	for _, layout := range nftLayouts {
		b.Run("services=10000/endpoints=10/changed=1/layout="+layout.String(), func(b *testing.B) {
			b.ReportAllocs()
			tr := trackerOf(b, cfg, svcs, eps)
			g := NFTables{Layout: layout}
			m, _ := tr.Model()
			g.Sync(m, true).Commit()
			var ops, size int
			for i := 0; b.Loop(); i++ {
				tr.SetEndpointSlice([]*discoveryv1.EndpointSlice{changed, before}[i%2])
				m, _ := tr.Model()
				s := g.Sync(m, false)
				s.Commit()
				ops, size = s.NumOperations(), len(s.Script())
			}
			b.ReportMetric(float64(ops), "ops")
			b.ReportMetric(float64(size), "script-bytes")
		})
	}
}

// nftLoadVariants are the alternatives measured for loading into the
// kernel: each layout, written as knftables writes a transaction (a
// command per operation), with the elements of each set or map batched
// into one command, or with the per-port chains written as one table block
// (what Script does into a new table), with elements batched or not.
var nftLoadVariants = []struct {
	name   string
	layout NFTablesLayout
	script string
}{
	{"layout=endpoint-maps/script=block", NFTablesEndpointMaps, "block"},
	{"layout=endpoint-maps/script=knftables", NFTablesEndpointMaps, "knftables"},
	{"layout=kube-proxy/script=knftables", NFTablesKubeProxy, "knftables"},
	{"layout=kube-proxy/script=batched", NFTablesKubeProxy, "batched"},
	{"layout=kube-proxy/script=block", NFTablesKubeProxy, "block"},
	{"layout=endpoint-rules/script=knftables", NFTablesEndpointRules, "knftables"},
	{"layout=endpoint-rules/script=batched", NFTablesEndpointRules, "batched"},
	{"layout=endpoint-rules/script=block+batched", NFTablesEndpointRules, "block+batched"},
	{"layout=endpoint-rules/script=block", NFTablesEndpointRules, "block"},
}

func renderNFT(s *NFTablesSync, how string) []byte {
	switch how {
	case "knftables":
		return s.script(false)
	case "batched":
		return s.script(true)
	case "block+batched":
		return s.blockScript(true)
	}
	return s.blockScript(false)
}

// NFT_BENCH_LAYOUTS, when set, limits the kernel benchmarks to the layouts
// named in it (as in NFT_BENCH_LAYOUTS=endpoint-maps,endpoint-rules):
// kube-proxy's layout takes minutes at 10,000 Services.
func nftBenchLayout(b *testing.B, l NFTablesLayout) {
	if want := os.Getenv("NFT_BENCH_LAYOUTS"); want != "" && !slices.Contains(strings.Split(want, ","), l.String()) {
		b.Skip("layout not in NFT_BENCH_LAYOUTS")
	}
}

// BenchmarkNFTablesKernelLoad measures what a user waits for: from Services
// and EndpointSlices to rules in force, into a table that does not exist
// yet (the node namespace is fresh; the table is deleted before each
// iteration). It reports the model, generation and nft phases.
func BenchmarkNFTablesKernelLoad(b *testing.B) {
	ns := testenv.NetNSes(b, "load")[0]
	for _, n := range []int{1000, 10000} {
		svcs, eps := cluster(n, 10)
		cfg := DefaultConfig("node1")
		for _, v := range nftLoadVariants {
			b.Run(fmt.Sprintf("services=%d/endpoints=10/%s", n, v.name), func(b *testing.B) {
				nftBenchLayout(b, v.layout)
				var phases [4]time.Duration
				for b.Loop() {
					b.StopTimer()
					_, _ = ns.Exec(context.Background(), "nft", "delete", "table", "ip", NFTablesTable)
					b.StartTimer()
					t0 := time.Now()
					m, _ := NewModel(cfg, svcs, eps)
					t1 := time.Now()
					g := NFTables{Layout: v.layout}
					g.Adopt(nil, nil) // a new table, as NFTablesApplier finds
					s := g.Sync(m, true)
					script := renderNFT(s, v.script)
					t2 := time.Now()
					phases[3] += loadNFT(b, ns, script)
					addPhases(&phases, t0, t1, t2)
				}
				reportPhases(b, phases)
			})
		}
	}
}

// BenchmarkNFTablesKernelChange measures a one-Service change among
// loaded rules, end to end as a running proxy makes it: the Tracker told
// of the changed EndpointSlice builds the model, the partial sync is
// generated and loaded. The Service loses one of its ten endpoints and
// gets it back (in the endpoint-maps layout a new rule and map elements),
// or has one replaced by another (map elements only, as in a rolling
// update).
func BenchmarkNFTablesKernelChange(b *testing.B) {
	ns := testenv.NetNSes(b, "change")[0]
	for _, n := range []int{1000, 10000} {
		svcs, eps := cluster(n, 10)
		variants := []struct {
			name    string
			layout  NFTablesLayout
			netlink bool // NFTablesApplier.NetNS set: endpoint changes over netlink
		}{
			{"layout=endpoint-maps/apply=netlink", NFTablesEndpointMaps, true},
			{"layout=endpoint-maps/apply=nft", NFTablesEndpointMaps, false},
			{"layout=kube-proxy/apply=nft", NFTablesKubeProxy, false},
			{"layout=endpoint-rules/apply=nft", NFTablesEndpointRules, false},
		}
		for _, v := range variants {
			b.Run(fmt.Sprintf("services=%d/endpoints=10/changed=1/%s", n, v.name), func(b *testing.B) {
				nftBenchLayout(b, v.layout)
				benchNFTChange(b, ns, v.layout, v.netlink, svcs, eps, keepEndpoints(9))
			})
			if v.layout == NFTablesEndpointMaps {
				b.Run(fmt.Sprintf("services=%d/endpoints=10/replaced=1/%s", n, v.name), func(b *testing.B) {
					benchNFTChange(b, ns, v.layout, v.netlink, svcs, eps, func(es *discoveryv1.EndpointSlice) {
						es.Endpoints[1].Addresses = []string{"10.250.250.250"}
					})
				})
			}
		}
	}
}

// BenchmarkNFTablesKernelRewrite measures a one-Service change that
// rewrites its chain in the endpoint-maps layout and moves its endpoints
// to new keys (they go from 10 to 3 and back, past the keys 3's chain
// reserved), over netlink and through nft: both make the kernel
// re-validate the table for the DNAT rule added; nft also starts and reads
// the table.
func BenchmarkNFTablesKernelRewrite(b *testing.B) {
	ns := testenv.NetNSes(b, "rewrite")[0]
	for _, n := range []int{1000, 10000} {
		svcs, eps := cluster(n, 10)
		for _, apply := range []string{"netlink", "nft"} {
			b.Run(fmt.Sprintf("services=%d/endpoints=10/changed=1/to=3/apply=%s", n, apply), func(b *testing.B) {
				benchNFTChange(b, ns, NFTablesEndpointMaps, apply == "netlink", svcs, eps, keepEndpoints(3))
			})
		}
	}
}

// benchNFTChange loads svcs and eps into ns, then has the Service in the
// middle alternate between its EndpointSlice and the slice change makes of
// a copy, each change synced and loaded (over netlink when netlink is set;
// the sync must allow it).
func benchNFTChange(b *testing.B, ns *testenv.NetNS, layout NFTablesLayout, netlink bool, svcs []*corev1.Service, eps []*discoveryv1.EndpointSlice, change func(*discoveryv1.EndpointSlice)) {
	_, _ = ns.Exec(context.Background(), "nft", "delete", "table", "ip", NFTablesTable)
	cfg := DefaultConfig("node1")
	g := NFTables{Layout: layout}
	tr := trackerOf(b, cfg, svcs, eps)
	m, _ := tr.Model()
	s := g.Sync(m, true)
	loadNFT(b, ns, s.Script())
	s.Commit()
	before := eps[len(eps)/2]
	changed := before.DeepCopy()
	change(changed)
	var phases [4]time.Duration
	for i := 0; b.Loop(); i++ {
		t0 := time.Now()
		tr.SetEndpointSlice([]*discoveryv1.EndpointSlice{changed, before}[i%2])
		m, _ := tr.Model()
		t1 := time.Now()
		s := g.Sync(m, false)
		if netlink && s.netlinkApplicable() {
			t2 := time.Now()
			if err := s.applyNetlink("/run/netns/" + ns.Name); err != nil {
				b.Fatal(err)
			}
			s.Commit()
			addPhases(&phases, t0, t1, t2)
			continue
		}
		if netlink {
			b.Fatalf("the sync does not go over netlink:\n%s", s.Script())
		}
		loadTimed(b, ns, s, &phases, t0, t1)
	}
	reportPhases(b, phases)
}

// loadTimed writes s's script, loads it into ns and commits it, and adds
// the phases of that sync (model from t0, generation from t1) to phases.
func loadTimed(b *testing.B, ns *testenv.NetNS, s *NFTablesSync, phases *[4]time.Duration, t0, t1 time.Time) {
	script := s.Script()
	t2 := time.Now()
	phases[3] += loadNFT(b, ns, script)
	s.Commit()
	addPhases(phases, t0, t1, t2)
}

// keepEndpoints is a change that keeps a slice's first n endpoints.
func keepEndpoints(n int) func(*discoveryv1.EndpointSlice) {
	return func(es *discoveryv1.EndpointSlice) { es.Endpoints = es.Endpoints[:n] }
}

// BenchmarkNFTablesKernelResync measures a periodic full sync (kube-proxy
// runs one every hour) over the loaded rules, nothing having changed: the
// table is rewritten in one transaction, chains flushed and refilled.
func BenchmarkNFTablesKernelResync(b *testing.B) {
	ns := testenv.NetNSes(b, "resync")[0]
	for _, n := range []int{1000, 10000} {
		svcs, eps := cluster(n, 10)
		cfg := DefaultConfig("node1")
		for _, layout := range nftLayouts {
			b.Run(fmt.Sprintf("services=%d/endpoints=10/layout=%s", n, layout), func(b *testing.B) {
				nftBenchLayout(b, layout)
				_, _ = ns.Exec(context.Background(), "nft", "delete", "table", "ip", NFTablesTable)
				g := NFTables{Layout: layout}
				m := mustModel(b, cfg, svcs, eps)
				s := g.Sync(m, true)
				loadNFT(b, ns, s.Script())
				s.Commit()
				var phases [4]time.Duration
				for b.Loop() {
					t0 := time.Now()
					m, _ := NewModel(cfg, svcs, eps)
					t1 := time.Now()
					loadTimed(b, ns, g.Sync(m, true), &phases, t0, t1)
				}
				reportPhases(b, phases)
			})
		}
	}
}

// loadNFT runs nft -f in ns and returns the CPU time nft used (user and
// system), which a busy machine does not inflate as it does wall time.
func loadNFT(b *testing.B, ns *testenv.NetNS, script []byte) time.Duration {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", ns.Name, "nft", "-f", "-")
	cmd.Stdin = bytes.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("nft -f: %v: %.2000s", err, out)
	}
	return cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
}

// addPhases adds a model built from t0 to t1, generated from t1 to t2 and
// loaded from t2 until now.
func addPhases(phases *[4]time.Duration, t0, t1, t2 time.Time) {
	phases[0] += t1.Sub(t0)
	phases[1] += t2.Sub(t1)
	phases[2] += time.Since(t2)
}

func reportPhases(b *testing.B, phases [4]time.Duration) {
	for i, name := range []string{"model-ms", "generate-ms", "nft-ms", "nft-cpu-ms"} {
		b.ReportMetric(float64(phases[i].Milliseconds())/float64(b.N), name)
	}
}

// BenchmarkNFTablesKernelValidation measures what decided the default
// layout: into a loaded table of 10,000 Services, a transaction that adds
// (and removes) a goto in a verdict map, or a DNAT rule, makes the kernel
// re-validate every chain reachable from the base chains; one that adds
// (and removes) an element of a data map or a set does not. nft's own
// start and its reading of the table are in every variant (the "set"
// one is about nothing else).
func BenchmarkNFTablesKernelValidation(b *testing.B) {
	ns := testenv.NetNSes(b, "validate")[0]
	svcs, eps := cluster(10000, 10)
	g := NFTables{Layout: NFTablesEndpointMaps}
	s := g.Sync(mustModel(b, DefaultConfig("node1"), svcs, eps), true)
	loadNFT(b, ns, s.Script())
	for _, v := range []struct{ name, script string }{
		{"change=set-element", "add element ip kube-proxy cluster-ips { 10.99.99.99 }\ndelete element ip kube-proxy cluster-ips { 10.99.99.99 }\n"},
		{"change=data-map-element", "add element ip kube-proxy endpoints-tcp-00 { 4000000000 : 10.99.99.99 . 80 }\ndelete element ip kube-proxy endpoints-tcp-00 { 4000000000 }\n"},
		{"change=verdict-map-goto", "add element ip kube-proxy service-ips { 10.99.99.99 . tcp . 80 : goto reject-chain }\ndelete element ip kube-proxy service-ips { 10.99.99.99 . tcp . 80 }\n"},
		{"change=dnat-rule", "add chain ip kube-proxy zz-bench\nadd rule ip kube-proxy zz-bench meta l4proto tcp dnat to 10.99.99.99:80\ndelete chain ip kube-proxy zz-bench\n"},
	} {
		b.Run("services=10000/endpoints=10/"+v.name, func(b *testing.B) {
			var wall, cpu time.Duration
			for b.Loop() {
				t0 := time.Now()
				cpu += loadNFT(b, ns, []byte(v.script))
				wall += time.Since(t0)
			}
			b.ReportMetric(float64(wall.Microseconds())/1000/float64(b.N), "nft-ms")
			b.ReportMetric(float64(cpu.Microseconds())/1000/float64(b.N), "nft-cpu-ms")
		})
	}
}
