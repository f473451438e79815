package proxyrules

import (
	"context"
	"regexp"
)

// IPTablesBackend is the kernel interface the iptables tools program. A
// node uses one: kubelet and kube-proxy must write their rules where the
// node's other components (CNI plugins, firewalls) write theirs, or the two
// rule sets both hook the same packets without seeing each other.
type IPTablesBackend string

const (
	// IPTablesNFT runs iptables-nft-restore and friends: the rules live in
	// nf_tables tables named like the iptables tables. The default of
	// current distributions and of IPTablesApplier.
	IPTablesNFT IPTablesBackend = "nft"
	// IPTablesLegacy runs iptables-legacy-restore and friends: the rules
	// live in the kernel's x_tables, each table replaced as a whole blob.
	IPTablesLegacy IPTablesBackend = "legacy"
)

// tool names the backend's variant of an iptables tool: suffix is "",
// "-save" or "-restore".
func (b IPTablesBackend) tool(v6 bool, suffix string) string {
	name := "iptables-"
	if v6 {
		name = "ip6tables-"
	}
	if b == "" {
		b = IPTablesNFT
	}
	return name + string(b) + suffix
}

// kubeletHint matches the chains kubelet creates in the mangle table of the
// backend it uses (KUBE-IPTABLES-HINT, and KUBE-KUBELET-CANARY for its
// rule-flush monitor; pkg/kubelet/kubelet_network_linux.go).
var kubeletHint = regexp.MustCompile(`(?m)^:(KUBE-IPTABLES-HINT|KUBE-KUBELET-CANARY) `)

// DetectIPTablesBackend says which backend the node's kubelet uses, as
// kube-proxy's image decides it (its iptables wrapper,
// kubernetes-sigs/iptables-wrappers pkg/xtables/detect.go): kubelet's
// chains in the nf_tables mangle table (IPv4, then IPv6) mean IPTablesNFT,
// in the legacy tables IPTablesLegacy; neither means IPTablesNFT. The
// legacy tables are read whole, as upstream does, because asking the
// legacy tools for one table loads that table into the kernel. Errors are
// ignored, as upstream does: a tool that fails has no hint. run nil means
// HostExec.
func DetectIPTablesBackend(ctx context.Context, run Exec) IPTablesBackend {
	if run == nil {
		run = HostExec
	}
	for _, c := range []struct {
		b    IPTablesBackend
		args []string
	}{
		{IPTablesNFT, []string{"-t", "mangle"}},
		{IPTablesLegacy, nil},
	} {
		for _, v6 := range []bool{false, true} {
			if out, err := run(ctx, nil, c.b.tool(v6, "-save"), c.args...); err == nil && kubeletHint.Match(out) {
				return c.b
			}
		}
	}
	return IPTablesNFT
}
