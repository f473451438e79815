package proxyrules

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

// modelSummary is what a model says about every port, for comparing two.
func modelSummary(m *Model) []string {
	var out []string
	for _, p := range m.Ports {
		line := fmt.Sprintf("%s %s any=%v", p.Name, p.ClusterIP, p.HasAny)
		for _, set := range [][]*Endpoint{p.Endpoints, p.Cluster, p.Local, p.Reachable} {
			line += " |"
			for _, e := range set {
				line += " " + e.String()
			}
		}
		out = append(out, line)
	}
	return out
}

// TestTrackerEqualsNewModel: after any sequence of updates and deletes, the
// Tracker's model equals NewModel's on the objects left, and Services that
// did not change keep their PortStates.
func TestTrackerEqualsNewModel(t *testing.T) {
	cfg := DefaultConfig("node1")
	r := rand.New(rand.NewPCG(1, 2))
	svcs, eps := cluster(40, 3)
	tr, err := NewTracker(cfg)
	if err != nil {
		t.Fatal(err)
	}
	liveSvc := map[string]*corev1.Service{}
	liveES := map[string]*discoveryv1.EndpointSlice{}
	for step := range 300 {
		i := r.IntN(len(svcs))
		switch r.IntN(5) {
		case 0:
			tr.DeleteService("ns", svcs[i].Name)
			delete(liveSvc, svcs[i].Name)
		case 1:
			tr.DeleteEndpointSlice("ns", eps[i].Name)
			delete(liveES, eps[i].Name)
		case 2:
			es := eps[i].DeepCopy()
			es.Endpoints = es.Endpoints[:r.IntN(len(es.Endpoints)+1)]
			tr.SetEndpointSlice(es)
			liveES[es.Name] = es
		default:
			tr.SetService(svcs[i])
			tr.SetEndpointSlice(eps[i])
			liveSvc[svcs[i].Name], liveES[eps[i].Name] = svcs[i], eps[i]
		}
		before, _ := tr.Model()
		got, _ := tr.Model()
		for j := range got.Ports {
			if got.Ports[j] != before.Ports[j] {
				t.Fatalf("step %d: a Model without updates rebuilt %s", step, got.Ports[j].Name)
			}
		}
		var ss []*corev1.Service
		var es []*discoveryv1.EndpointSlice
		for _, s := range liveSvc {
			ss = append(ss, s)
		}
		for _, e := range liveES {
			es = append(es, e)
		}
		want, _ := NewModel(cfg, ss, es)
		if g, w := modelSummary(got), modelSummary(want); !slices.Equal(g, w) {
			t.Fatalf("step %d: tracker model\n%q\nwant NewModel's\n%q", step, g, w)
		}
	}
}

// TestIPTablesReusesUnchangedPorts: with a Tracker, a partial sync after
// one change writes what a sync from a fresh NewModel would, and a full
// sync from cached ports equals one generated from scratch.
func TestIPTablesReusesUnchangedPorts(t *testing.T) {
	cfg := DefaultConfig("node1")
	svcs, eps := cluster(50, 4)
	tr := trackerOf(t, cfg, svcs, eps)
	var cached, fresh IPTables
	m, _ := tr.Model()
	cached.Sync(m, false).Commit()
	fresh.Sync(mustModel(t, cfg, svcs, eps), false).Commit()

	changed := eps[7].DeepCopy()
	changed.Endpoints = changed.Endpoints[:2]
	tr.SetEndpointSlice(changed)
	eps[7] = changed
	m, _ = tr.Model()
	a := cached.Sync(m, false)
	b := fresh.Sync(mustModel(t, cfg, svcs, eps), false)
	if string(a.Payload) != string(b.Payload) || !slices.Equal(a.Written, b.Written) {
		t.Fatalf("partial sync from cached ports differs from a fresh one:\n%s\n---\n%s", a.Payload, b.Payload)
	}
	a.Commit()
	b.Commit()
	if full, want := cached.Sync(m, true), fresh.Sync(mustModel(t, cfg, svcs, eps), true); string(full.Payload) != string(want.Payload) {
		t.Fatal("full sync from cached ports differs from a fresh one")
	}
}
