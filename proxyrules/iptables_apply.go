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

	// stageLines is about how many lines (rules and chain declarations)
	// a stage of a staged first load carries (see stagePayload): 0 means
	// defaultStageLines, a negative value never stages. For tests.
	stageLines int

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
//
// With IPTablesNFT, the first load into a nat table where nothing jumps to
// Service chains yet (KUBE-SERVICES and KUBE-NODEPORTS empty or missing) is
// staged: the per-ServicePort chains go in first, about two thousand lines
// per iptables-restore, and the chains that jump to them last, so traffic
// sees the new rules all at once. One restore would take time quadratic in
// the chains it names (see stagePayload). If a stage fails, the chains of
// the stages before it stay in the kernel, unreachable, and the next Apply
// adopts them and loads everything again. Every later sync is one restore,
// as kube-proxy's.
func (a *IPTablesApplier) Apply(ctx context.Context, m *Model, full bool) (*IPTablesSync, error) {
	run := a.Exec
	if run == nil {
		run = HostExec
	}
	b, v6 := a.Backend, a.IPv6
	if b != "" && b != IPTablesNFT && b != IPTablesLegacy {
		return nil, fmt.Errorf("proxyrules: unknown IPTablesBackend %q (want %q or %q)", b, IPTablesNFT, IPTablesLegacy)
	}
	iptables, restore, save := b.tool(v6, ""), b.tool(v6, "-restore"), b.tool(v6, "-save")
	stage := 0
	if !a.started {
		out, err := run(ctx, nil, save, "-t", "nat")
		if err != nil {
			return nil, fmt.Errorf("proxyrules: %s -t nat: %w: %s", save, err, out)
		}
		chains, dispatching := natState(out)
		a.gen.Adopt(chains)
		full = true
		if !dispatching && (b == "" || b == IPTablesNFT) {
			stage = a.stageLines
			if stage == 0 {
				stage = defaultStageLines
			}
		}
	}
	s := a.gen.Sync(m, full)
	if s.Full {
		if err := ensureJumps(ctx, run, iptables); err != nil {
			return s, err
		}
	}
	payloads := [][]byte{s.Payload}
	if stage > 0 {
		payloads = stagePayload(s.Payload, stage)
	}
	for i, p := range payloads {
		out, err := run(ctx, p, restore, "-w", "5", "--noflush", "--counters")
		if err != nil {
			tool := restore
			if len(payloads) > 1 {
				tool = fmt.Sprintf("%s (first load, stage %d of %d)", restore, i+1, len(payloads))
			}
			return s, restoreError(tool, p, out, err)
		}
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

// natState reads an iptables-save dump of the nat table: its chains, and
// whether KUBE-SERVICES or KUBE-NODEPORTS hold rules (then Service chains
// may be in use, and a load over them is not staged).
func natState(dump []byte) (chains []string, dispatching bool) {
	for line := range bytes.Lines(dump) {
		switch {
		case len(line) > 1 && line[0] == ':':
			if f := bytes.Fields(line[1:]); len(f) > 0 {
				chains = append(chains, string(f[0]))
			}
		case bytes.HasPrefix(line, []byte("-A "+chainServices+" ")), bytes.HasPrefix(line, []byte("-A "+chainNodePorts+" ")):
			dispatching = true
		}
	}
	return chains, dispatching
}
