package conformance

import (
	"fmt"
	"testing"

	"github.com/kube-nodekit/nodekit/internal/testenv"
	"github.com/kube-nodekit/nodekit/proxyrules"
	discoveryv1 "k8s.io/api/discovery/v1"
)

// BenchmarkNFTablesFullSync: a full sync from Services and EndpointSlices
// to the text nft reads, generation only (no nft): nodekit against
// kube-proxy's nftables syncProxyRules (change tracking and the knftables
// transaction, recorded by a Fake that does not apply it) and the
// transaction's text, which knftables writes to nft. Upstream's proxier is
// fed its informer events outside the timing (OnServiceAdd reads each
// Service, OnEndpointSliceAdd each slice, into its change trackers), so
// nodekit is timed both ways: from a Tracker fed the same events outside
// the timing (input=tracker: Model, Sync and Script, what upstream's sync
// does), and from the objects themselves (input=objects: NewModel, Sync
// and Script, the event handlers' work included).
func BenchmarkNFTablesFullSync(b *testing.B) {
	ns := testenv.NetNSes(b, "kubeproxy")[0]
	for _, n := range []int{1000, 10000} {
		set := benchCluster(n)
		for _, layout := range []proxyrules.NFTablesLayout{proxyrules.NFTablesEndpointMaps, proxyrules.NFTablesKubeProxy} {
			for _, input := range []string{"tracker", "objects"} {
				b.Run(fmt.Sprintf("impl=nodekit/layout=%s/input=%s/services=%d/endpoints=10", layout, input, n), func(b *testing.B) {
					b.ReportAllocs()
					var ops, size int
					for b.Loop() {
						m := benchModel(b, set, input)
						// A proxy's first sync, into a new table (as upstream's
						// is): NFTablesApplier finds no table and says so.
						g := proxyrules.NFTables{Layout: layout}
						g.Adopt(nil, nil)
						s := g.Sync(m, true)
						ops, size = s.NumOperations(), len(s.Script())
					}
					b.ReportMetric(float64(ops), "ops")
					b.ReportMetric(float64(size), "script-bytes")
				})
			}
		}
		b.Run(fmt.Sprintf("impl=upstream/services=%d/endpoints=10", n), func(b *testing.B) {
			b.ReportAllocs()
			var ops, size int
			for b.Loop() {
				b.StopTimer()
				u := newUpstreamNFTProxier(b, ns, set.cfg, false)
				u.feed(set.services, set.slices)
				b.StartTimer()
				syncIn(b, ns, u.OnEndpointSlicesSynced)
				ops, size = u.last(b).NumOperations(), len(u.last(b).String())
			}
			b.ReportMetric(float64(ops), "ops")
			b.ReportMetric(float64(size), "script-bytes")
		})
	}
}

// BenchmarkNFTablesOneServiceChange: one Service's endpoints change among
// 10000; the partial sync that follows.
func BenchmarkNFTablesOneServiceChange(b *testing.B) {
	ns := testenv.NetNSes(b, "kubeproxy")[0]
	set := benchCluster(10000)
	before := set.slices[5000]
	after := before.DeepCopy()
	after.Endpoints = after.Endpoints[:9]
	for _, layout := range []proxyrules.NFTablesLayout{proxyrules.NFTablesEndpointMaps, proxyrules.NFTablesKubeProxy} {
		b.Run(fmt.Sprintf("impl=nodekit/layout=%s/services=10000/endpoints=10", layout), func(b *testing.B) {
			// As a running proxy: a Tracker fed by informer events.
			b.ReportAllocs()
			tr := trackerFor(b, set)
			g := proxyrules.NFTables{Layout: layout}
			m, _ := tr.Model()
			g.Sync(m, true).Commit()
			var ops int
			for i := 0; b.Loop(); i++ {
				tr.SetEndpointSlice([]*discoveryv1.EndpointSlice{after, before}[i%2])
				m, _ := tr.Model()
				s := g.Sync(m, false)
				_ = s.Script()
				s.Commit()
				ops = s.NumOperations()
			}
			b.ReportMetric(float64(ops), "ops")
		})
	}
	b.Run("impl=upstream/services=10000/endpoints=10", func(b *testing.B) {
		b.ReportAllocs()
		u := newUpstreamNFTProxier(b, ns, set.cfg, false)
		u.fullSync(b, ns, set.services, set.slices)
		var ops int
		for i := 0; b.Loop(); i++ {
			b.StopTimer()
			u.OnEndpointSliceUpdate(nil, []*discoveryv1.EndpointSlice{after, before}[i%2])
			b.StartTimer()
			// OnServiceSynced runs syncProxyRules synchronously; after the
			// first sync it is a partial one.
			syncIn(b, ns, u.OnServiceSynced)
			ops = u.last(b).NumOperations()
			_ = u.last(b).String() // the text knftables writes to nft, as Script is
		}
		b.ReportMetric(float64(ops), "ops")
	})
}
