package conformance

import (
	"math/rand/v2"
	"testing"

	"github.com/kube-nodekit/nodekit/internal/testenv"
	"github.com/kube-nodekit/nodekit/proxyrules"
)

// TestIPTablesMatchesKubeProxy builds rules for random Service sets with
// nodekit and with kube-proxy 1.37's iptables proxier
// (pkg/proxy/iptables/proxier.go) and requires the same chains with the same
// rules: in order wherever order matters, as multisets in the top-level
// chains whose order upstream leaves to map iteration.
func TestIPTablesMatchesKubeProxy(t *testing.T) {
	ns := testenv.NetNSes(t, "kubeproxy")[0]
	for seed := range uint64(1000) {
		r := rand.New(rand.NewPCG(seed, 0x1337))
		set := genServiceSet(r, 1+r.IntN(12))
		compareIPTables(t, ns, seed, set)
	}
}

// TestIPTablesLargeClusterMatchesKubeProxy crosses kube-proxy's large-cluster
// threshold (over 1000 endpoints), where per-endpoint comments are dropped.
func TestIPTablesLargeClusterMatchesKubeProxy(t *testing.T) {
	ns := testenv.NetNSes(t, "kubeproxy")[0]
	r := rand.New(rand.NewPCG(42, 42))
	set := genServiceSet(r, 700)
	compareIPTables(t, ns, 42, set)
}

func compareIPTables(t *testing.T, ns *testenv.NetNS, seed uint64, set serviceSet) {
	t.Helper()
	up := newUpstreamProxier(t, ns, set.cfg).fullSync(t, ns, set.services, set.slices)
	m, _ := proxyrules.NewModel(set.cfg, set.services, set.slices)
	ours := (&proxyrules.IPTables{}).Sync(m, true).Payload
	ud, err := parseRestore(up)
	if err != nil {
		t.Fatalf("seed %d: upstream payload: %v", seed, err)
	}
	nd, err := parseRestore(ours)
	if err != nil {
		t.Fatalf("seed %d: nodekit payload: %v", seed, err)
	}
	if diffs := diffDumps(ud, nd); len(diffs) > 0 {
		t.Errorf("seed %d (%d services, config %+v): %d differences, first: %s", seed, len(set.services), set.cfg, len(diffs), diffs[0])
	}
}
