package proxyrules

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kube-nodekit/nodekit/internal/testenv"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

// TestIPTablesStagedLoadMatchesOneRestore: a first load with iptables-nft
// is staged, and leaves in the kernel exactly the rules one restore does.
func TestIPTablesStagedLoadMatchesOneRestore(t *testing.T) {
	v6 := DefaultConfig("node1")
	v6.Family = corev1.IPv6Protocol
	v6.ClusterCIDR = netip.MustParsePrefix("fd00:244::/64")
	svcs, eps := cluster(300, 10)
	// Three IPv6 Services, one with a NodePort and externalTrafficPolicy
	// Local, two endpoints each.
	var v6Svcs []*corev1.Service
	var v6Eps []*discoveryv1.EndpointSlice
	for i := range 3 {
		name := fmt.Sprintf("v6-%d", i)
		var opts []func(*corev1.Service)
		if i == 1 {
			opts = append(opts, nodePort(30100), externalLocal)
		}
		svc := service(name, fmt.Sprintf("fd00:96::%d", i+1), 80, opts...)
		svc.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv6Protocol}
		es := endpointSlice(name, 8080, corev1.ProtocolTCP,
			ep{ip: fmt.Sprintf("fd00:244::%d:1", i), node: "node1"}, ep{ip: fmt.Sprintf("fd00:244::%d:2", i), node: "other"})
		es.AddressType = discoveryv1.AddressTypeIPv6
		v6Svcs, v6Eps = append(v6Svcs, svc), append(v6Eps, es)
	}
	for _, c := range []struct {
		name       string
		model      *Model
		stageLines int // for the staged load
	}{
		{"IPv4, 300 Services, default stages", mustModel(t, DefaultConfig("node1"), svcs, eps), 0},
		{"IPv6, a ServicePort a stage", mustModel(t, v6, v6Svcs, v6Eps), 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			ipv6 := c.model.Config.Family == corev1.IPv6Protocol
			dumps := map[bool]string{}
			for _, staged := range []bool{false, true} {
				ns := testenv.NetNSes(t, "node")[0]
				restores := 0
				run := func(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error) {
					if strings.HasSuffix(name, "-restore") {
						restores++
					}
					return HostExec(ctx, stdin, "ip", append([]string{"netns", "exec", ns.Name, name}, args...)...)
				}
				a := &IPTablesApplier{Exec: run, IPv6: ipv6, stageLines: -1}
				if staged {
					a.stageLines = c.stageLines
				}
				if _, err := a.Apply(ctx, c.model, true); err != nil {
					t.Fatalf("staged=%v: %v", staged, err)
				}
				if staged != (restores > 1) {
					t.Fatalf("staged=%v: %d restores", staged, restores)
				}
				dumps[staged] = byChain(ns.Run(t, IPTablesNFT.tool(ipv6, "-save")))
			}
			if !strings.Contains(dumps[true], "-j "+prefixSEP) {
				t.Fatalf("no endpoint rules loaded:\n%s", dumps[true])
			}
			if dumps[false] != dumps[true] {
				t.Fatalf("a staged load left other rules than one restore:\none:\n%.3000s\nstaged:\n%.3000s", dumps[false], dumps[true])
			}
		})
	}
}

// TestIPTablesStagedFirstLoad: a staged first load that fails in its last
// stage leaves nothing jumping to the chains its earlier stages loaded,
// names the stage and the refused line; the next Apply loads everything,
// and real packets follow the rules. The refusal is a real one: a rule the
// applier does not own jumps to a stale endpoint chain the load deletes.
func TestIPTablesStagedFirstLoad(t *testing.T) {
	lab := newNetLab(t, 3)
	services, slices := labServices(lab)
	m := mustModel(t, labConfig(lab), services, slices)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const stale = "KUBE-SEP-AAAAAAAAAAAAAAAA"
	lab.node.Run(t, "iptables-nft", "-t", "nat", "-N", stale)
	lab.node.Run(t, "iptables-nft", "-t", "nat", "-A", "OUTPUT", "-d", "192.0.2.99", "-j", stale)

	// One ServicePort a stage: KUBE-MARK-MASQ, five ServicePorts with
	// chains, the stale chain (declared to be flushed), the rest.
	applier := &IPTablesApplier{Exec: lab.nodeExec, stageLines: 1}
	_, err := applier.Apply(ctx, m, false)
	if err == nil || !strings.Contains(err.Error(), "stage 8 of 8") || !strings.Contains(err.Error(), `"-X `+stale+`"`) {
		t.Fatalf("first load deleting a chain in use: err = %v, want the last stage's error quoting -X %s", err, stale)
	}
	t.Logf("refused as expected: %v", err)
	dump := lab.node.Run(t, "iptables-nft-save", "-t", "nat")
	if !strings.Contains(dump, ":"+prefixSEP) {
		t.Fatalf("the earlier stages loaded no endpoint chain:\n%s", dump)
	}
	if strings.Contains(dump, "-A "+chainServices+" ") || strings.Contains(dump, "-A "+chainNodePorts+" ") {
		t.Fatalf("after a failed last stage, Service chains are reachable:\n%s", dump)
	}

	lab.node.Run(t, "iptables-nft", "-t", "nat", "-D", "OUTPUT", "-d", "192.0.2.99", "-j", stale)
	if _, err := applier.Apply(ctx, m, false); err != nil {
		t.Fatalf("load after the failure: %v", err)
	}
	if dump := lab.node.Run(t, "iptables-nft-save", "-t", "nat"); strings.Contains(dump, stale) {
		t.Fatalf("the stale chain is still there:\n%s", dump)
	}
	checkLabTraffic(t, lab, m)
}

// TestStagePayloadKeepsServicePortsWhole: every line of the payload is in
// exactly one stage, a ServicePort's chains all in the same one, and the
// chains that reach them in the last.
func TestStagePayloadKeepsServicePortsWhole(t *testing.T) {
	svcs, eps := cluster(100, 10)
	var g IPTables
	payload := g.Sync(mustModel(t, DefaultConfig("node1"), svcs, eps), true).Payload
	stages := stagePayload(payload, 500)
	if len(stages) < 4 {
		t.Fatalf("%d stages, want several", len(stages))
	}
	if whole := stagePayload(payload, 1<<20); len(whole) != 1 || !bytes.Equal(whole[0], payload) {
		t.Fatalf("a payload that fits one stage was cut in %d", len(whole))
	}
	content := func(p []byte) map[string]int {
		n := map[string]int{}
		for l := range strings.Lines(string(p)) {
			if !strings.HasPrefix(l, "*") && l != "COMMIT\n" {
				n[l]++
			}
		}
		return n
	}
	got := map[string]int{}
	stageOf := map[string]int{} // per-port chain -> stage
	for i, s := range stages {
		for l, n := range content(s) {
			got[l] += n
		}
		for l := range strings.Lines(string(s)) {
			if name, ok := strings.CutPrefix(l, ":"); ok && perPortChain(strings.Fields(name)[0]) {
				stageOf[strings.Fields(name)[0]] = i
			}
		}
	}
	if want := content(payload); !maps.Equal(got, want) {
		t.Fatalf("the stages carry other lines than the payload")
	}
	for i, s := range stages {
		for l := range strings.Lines(string(s)) {
			f := strings.Fields(l)
			if len(f) < 2 || f[0] != "-A" || !perPortChain(jumpTarget([]byte(l))) {
				continue
			}
			from, to := f[1], jumpTarget([]byte(l))
			switch {
			case perPortChain(from) && stageOf[to] != i:
				t.Fatalf("%s in stage %d jumps to %s in stage %d", from, i, to, stageOf[to])
			case !perPortChain(from) && i != len(stages)-1:
				t.Fatalf("%s jumps to %s in stage %d, not the last", from, to, i)
			}
		}
	}
}

// byChain is an iptables-save dump with its chains sorted by table and
// name, each chain's rules in their order: two dumps of the same rules
// loaded in a different order compare equal.
func byChain(dump string) string {
	chains := map[string][]string{}
	table := ""
	for l := range strings.Lines(dump) {
		switch {
		case strings.HasPrefix(l, "*"):
			table = l
		case strings.HasPrefix(l, ":"):
			key := table + strings.Fields(l[1:])[0]
			chains[key] = append(chains[key], l)
		case strings.HasPrefix(l, "-A "):
			key := table + strings.Fields(l)[1]
			chains[key] = append(chains[key], l)
		}
	}
	var out strings.Builder
	for _, k := range slices.Sorted(maps.Keys(chains)) {
		out.WriteString(strings.Join(chains[k], ""))
	}
	return out.String()
}
