package proxyrules

import (
	"context"
	"strings"
	"testing"

	"github.com/kube-nodekit/nodekit/internal/testenv"
)

// TestDetectIPTablesBackend: kubelet's hint chain decides, nf_tables first,
// as in kube-proxy's iptables wrapper (kubernetes-sigs/iptables-wrappers
// pkg/xtables/detect.go); a node without one gets nft.
func TestDetectIPTablesBackend(t *testing.T) {
	for _, c := range []struct {
		name  string
		hints []IPTablesBackend // a KUBE-IPTABLES-HINT chain in each one's mangle table
		want  IPTablesBackend
	}{
		{"no hint means nft", nil, IPTablesNFT},
		{"kubelet on legacy", []IPTablesBackend{IPTablesLegacy}, IPTablesLegacy},
		{"kubelet on nft", []IPTablesBackend{IPTablesNFT}, IPTablesNFT},
		{"both: nft is asked first", []IPTablesBackend{IPTablesLegacy, IPTablesNFT}, IPTablesNFT},
	} {
		t.Run(c.name, func(t *testing.T) {
			ns := testenv.NetNSes(t, "node")[0]
			for _, b := range c.hints {
				ns.Run(t, b.tool(false, ""), "-t", "mangle", "-N", "KUBE-IPTABLES-HINT")
			}
			run := func(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error) {
				return ns.Exec(ctx, name, args...)
			}
			if got := DetectIPTablesBackend(context.Background(), run); got != c.want {
				t.Fatalf("DetectIPTablesBackend = %q, want %q", got, c.want)
			}
		})
	}
}

// TestIPTablesUnknownBackendRunsNothing: a misspelt backend is an error,
// not a search for a tool named after it.
func TestIPTablesUnknownBackendRunsNothing(t *testing.T) {
	a := &IPTablesApplier{Backend: "Legacy", Exec: func(_ context.Context, _ []byte, name string, _ ...string) ([]byte, error) {
		t.Fatalf("ran %s", name)
		return nil, nil
	}}
	if _, err := a.Apply(context.Background(), mustModel(t, DefaultConfig("node1"), nil, nil), true); err == nil || !strings.Contains(err.Error(), `"Legacy"`) {
		t.Fatalf("err = %v, want one naming the unknown backend", err)
	}
}
