package proxyrules

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
)

// Exec runs a command and returns its combined output. The default runs it
// on the host; to program a network namespace, wrap it with
// `ip netns exec NAME`.
type Exec func(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error)

// HostExec runs commands directly.
func HostExec(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	return cmd.CombinedOutput()
}

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

// IPTablesApplier loads generated payloads into the kernel with
// iptables-restore --noflush, so rules it does not own are never touched,
// and keeps the generator's state in step with what loaded.
type IPTablesApplier struct {
	// Exec runs the iptables tools; nil means HostExec.
	Exec Exec
	// IPv6 selects ip6tables-restore / ip6tables.
	IPv6 bool
	// Backend selects the iptables variant every command runs with
	// (restore, save, and the checks of the jumps from the built-in
	// chains); "" means IPTablesNFT. Use the node's: see
	// DetectIPTablesBackend. It must not change once Apply has run.
	Backend IPTablesBackend

	gen     IPTables
	started bool
}

// jumpRule is a rule kube-proxy keeps in a chain it does not own
// (iptablesJumpChains in pkg/proxy/iptables/proxier.go), prepended once.
type jumpRule struct {
	table, from, to, comment string
	match                    []string
}

var newConn = []string{"-m", "conntrack", "--ctstate", "NEW"}

var iptablesJumps = []jumpRule{
	{"filter", "INPUT", chainExternalServices, "kubernetes externally-visible service portals", newConn},
	{"filter", "FORWARD", chainExternalServices, "kubernetes externally-visible service portals", newConn},
	{"filter", "INPUT", chainNodePorts, "kubernetes health check service ports", nil},
	{"filter", "FORWARD", chainServices, "kubernetes service portals", newConn},
	{"filter", "OUTPUT", chainServices, "kubernetes service portals", newConn},
	{"filter", "FORWARD", chainForward, "kubernetes forwarding rules", nil},
	{"filter", "INPUT", chainProxyFirewall, "kubernetes load balancer firewall", newConn},
	{"filter", "OUTPUT", chainProxyFirewall, "kubernetes load balancer firewall", newConn},
	{"filter", "FORWARD", chainProxyFirewall, "kubernetes load balancer firewall", newConn},
	{"nat", "OUTPUT", chainServices, "kubernetes service portals", nil},
	{"nat", "PREROUTING", chainServices, "kubernetes service portals", nil},
	{"nat", "POSTROUTING", chainPostrouting, "kubernetes postrouting rules", nil},
	{"filter", "INPUT", chainKubeletFirewall, "", nil},
	{"filter", "OUTPUT", chainKubeletFirewall, "", nil},
}

// Apply generates the sync for m (full when full is true, on the first
// call, or after a failure) and loads it. On failure the rules already in
// the kernel stay as they were and the error names the rule that failed.
func (a *IPTablesApplier) Apply(ctx context.Context, m *Model, full bool) (*IPTablesSync, error) {
	run := a.Exec
	if run == nil {
		run = HostExec
	}
	b, v6 := a.Backend, a.IPv6
	iptables, restore, save := b.tool(v6, ""), b.tool(v6, "-restore"), b.tool(v6, "-save")
	if !a.started {
		out, err := run(ctx, nil, save, "-t", "nat")
		if err != nil {
			return nil, fmt.Errorf("proxyrules: %s -t nat: %w: %s", save, err, out)
		}
		a.gen.Adopt(natChainNames(out))
		full = true
	}
	s := a.gen.Sync(m, full)
	if s.Full {
		if err := ensureJumps(ctx, run, iptables); err != nil {
			return s, err
		}
	}
	out, err := run(ctx, s.Payload, restore, "-w", "5", "--noflush", "--counters")
	if err != nil {
		return s, restoreError(restore, s.Payload, out, err)
	}
	s.Commit()
	a.started = true
	return s, nil
}

// ensureJumps creates the top-level chains and prepends the jumps to them
// where missing, as kube-proxy does on a full sync.
func ensureJumps(ctx context.Context, run Exec, iptables string) error {
	for _, j := range iptablesJumps {
		if out, err := run(ctx, nil, iptables, "-w", "5", "-t", j.table, "-N", j.to); err != nil && !bytes.Contains(out, []byte("exists")) {
			return fmt.Errorf("proxyrules: %s -t %s -N %s: %w: %s", iptables, j.table, j.to, err, out)
		}
		rule := append([]string{}, j.match...)
		if j.comment != "" {
			rule = append(rule, "-m", "comment", "--comment", j.comment)
		}
		rule = append(rule, "-j", j.to)
		check := append([]string{"-w", "5", "-t", j.table, "-C", j.from}, rule...)
		if _, err := run(ctx, nil, iptables, check...); err == nil {
			continue
		}
		insert := append([]string{"-w", "5", "-t", j.table, "-I", j.from}, rule...)
		if out, err := run(ctx, nil, iptables, insert...); err != nil {
			return fmt.Errorf("proxyrules: %s %s: %w: %s", iptables, strings.Join(insert, " "), err, out)
		}
	}
	return nil
}

// iptables-restore names the failing line as "line N failed" or
// "line N: CHAIN_DEL failed ..." or "Error occurred at line: N". The nf_tables backend
// finds a jump to a missing chain only when it commits, and then names a
// line at or after the COMMIT, so that rule is found by the chain it names.
var (
	restoreFailedLine = regexp.MustCompile(`[Ll]ine:? (\d+)`)
	restoreNoChain    = regexp.MustCompile(`Chain '([^']+)' does not exist`)
)

// restoreError says which line of the payload iptables-restore refused.
func restoreError(tool string, payload, out []byte, err error) error {
	msg := strings.TrimSpace(string(out))
	lines := strings.Split(string(payload), "\n")
	n := 0
	if m := restoreFailedLine.FindSubmatch(out); m != nil {
		n, _ = strconv.Atoi(string(m[1]))
	}
	if c := restoreNoChain.FindSubmatch(out); c != nil {
		jump := " -j " + string(c[1])
		for i, l := range lines {
			if strings.HasSuffix(l, jump) || strings.Contains(l, jump+" ") {
				n = i + 1
				break
			}
		}
	}
	if n < 1 || n > len(lines) || lines[n-1] == "" {
		return fmt.Errorf("proxyrules: %s: %w: %s", tool, err, msg)
	}
	return fmt.Errorf("proxyrules: %s refused line %d %q: %w: %s", tool, n, lines[n-1], err, msg)
}

// natChainNames lists the chains of an iptables-save dump of one table.
func natChainNames(dump []byte) []string {
	var out []string
	for line := range bytes.Lines(dump) {
		if len(line) > 1 && line[0] == ':' {
			if f := bytes.Fields(line[1:]); len(f) > 0 {
				out = append(out, string(f[0]))
			}
		}
	}
	return out
}
