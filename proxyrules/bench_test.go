package proxyrules

import (
	"fmt"
	"testing"
)

// BenchmarkNewModel measures turning Services and EndpointSlices into the
// model (what kube-proxy's change trackers and CategorizeEndpoints do).
func BenchmarkNewModel(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		svcs, eps := cluster(n, 10)
		b.Run(fmt.Sprintf("services=%d/endpoints=10", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := NewModel(DefaultConfig("node1"), svcs, eps); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkIPTablesFull measures generating a full payload from a model
// whose ports are all new to the generator (two models of the same objects,
// alternately), by a generator that has synced before, as in a running proxy.
func BenchmarkIPTablesFull(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		svcs, eps := cluster(n, 10)
		models := []*Model{mustModel(b, DefaultConfig("node1"), svcs, eps), mustModel(b, DefaultConfig("node1"), svcs, eps)}
		b.Run(fmt.Sprintf("services=%d/endpoints=10", n), func(b *testing.B) {
			b.ReportAllocs()
			var g IPTables
			g.Sync(models[1], true).Commit()
			var size int
			for i := 0; b.Loop(); i++ {
				s := g.Sync(models[i%2], true)
				s.Commit()
				size = len(s.Payload)
			}
			b.ReportMetric(float64(size), "payload-bytes")
		})
	}
}

// BenchmarkIPTablesPartial measures the payload after one Service's
// endpoints changed among 10000 (model rebuild included).
func BenchmarkIPTablesPartial(b *testing.B) {
	svcs, eps := cluster(10000, 10)
	cfg := DefaultConfig("node1")
	var g IPTables
	g.Sync(mustModel(b, cfg, svcs, eps), true).Commit()
	changed := eps[5000].DeepCopy()
	changed.Endpoints = changed.Endpoints[:9]
	before := eps[5000]
	b.Run("services=10000/endpoints=10/changed=1", func(b *testing.B) {
		b.ReportAllocs()
		var size int
		for i := 0; b.Loop(); i++ {
			// Alternate, so every iteration has one real change.
			if i%2 == 0 {
				eps[5000] = changed
			} else {
				eps[5000] = before
			}
			m, _ := NewModel(cfg, svcs, eps)
			s := g.Sync(m, false)
			s.Commit()
			size = len(s.Payload)
		}
		b.ReportMetric(float64(size), "payload-bytes")
	})
}

// BenchmarkIPTablesTrackerPartial measures what a running proxy does on one
// EndpointSlice update among 10000 Services: Tracker update, Model, partial
// Sync.
func BenchmarkIPTablesTrackerPartial(b *testing.B) {
	svcs, eps := cluster(10000, 10)
	tr := trackerOf(b, DefaultConfig("node1"), svcs, eps)
	var g IPTables
	m, _ := tr.Model()
	g.Sync(m, true).Commit()
	changed := eps[5000].DeepCopy()
	changed.Endpoints = changed.Endpoints[:9]
	b.Run("services=10000/endpoints=10/changed=1", func(b *testing.B) {
		b.ReportAllocs()
		var size int
		for i := 0; b.Loop(); i++ {
			if i%2 == 0 {
				tr.SetEndpointSlice(changed)
			} else {
				tr.SetEndpointSlice(eps[5000])
			}
			m, _ := tr.Model()
			s := g.Sync(m, false)
			s.Commit()
			size = len(s.Payload)
		}
		b.ReportMetric(float64(size), "payload-bytes")
	})
}
