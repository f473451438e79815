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

	// stageLines is about how many lines (rules and chain declarations)
	// a stage of a staged first load carries (see stagePayload): 0 means
	// defaultStageLines, a negative value never stages. For tests.
	stageLines int

	gen     IPTables
	started bool
}

// defaultStageLines keeps each iptables-nft-restore of a staged load short
// enough that its chain list stays small, and long enough that starting
// the tool (a few ms) does not dominate: 1,000 Services x 10 endpoints
// load in 23 restores, 10,000 in 211 (1,000 and 4,000 lines measured
// within noise of it at 10,000 Services; 8,000 was a third slower).
const defaultStageLines = 2000

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

// stagePayload cuts a full payload into inputs for several
// iptables-restore --noflush runs that together load the same rules.
//
// Why: for each command of its input, iptables-nft-restore (1.8.9 here,
// Debian 12's) inserts the chain the command names and the chain it jumps
// to into a sorted linked list, walking the list from its start
// (cache_chain_list_insert in iptables/nft-cache.c: the chains whose cache
// it will fetch); perf shows 85% of a load there. A load is thus
// quadratic in the chains of one input: 1,000 Services x 10 endpoints
// (11k chains) take about 5 s, 3,000 about 3 minutes, and 10,000 did not
// finish in 5 minutes (nor did kube-proxy's own payload in 15). No order
// of the lines avoids it, since finding a name already listed costs as
// much as inserting it; fewer chains per input does.
//
// The stages:
//
//  1. the nat chains that per-ServicePort chains jump to (KUBE-MARK-MASQ);
//  2. the per-ServicePort chains (KUBE-SVC/SVL/EXT/FW/SEP), the chains of
//     one ServicePort always in the same stage, about perStage lines each;
//  3. the other tables, the other nat chains (KUBE-SERVICES,
//     KUBE-NODEPORTS, KUBE-POSTROUTING) and the deletions of stale chains.
//
// Nothing jumps to a chain of stage 2 until stage 3 commits, so when
// nothing jumped to Service chains before, traffic sees the new rules at
// once, as with one restore. Over rules in use it would not, and Apply
// does not stage then. A payload that fits one stage 2 is returned whole.
func stagePayload(payload []byte, perStage int) [][]byte {
	type chain struct {
		decl  []byte
		rules [][]byte
	}
	var (
		others bytes.Buffer // tables other than nat, whole
		nat    = map[string]*chain{}
		order  []string // nat chains as first seen
		tail   [][]byte // deletions of stale chains, and anything else
		inNAT  bool
	)
	get := func(name string) *chain {
		c := nat[name]
		if c == nil {
			c = &chain{}
			nat[name] = c
			order = append(order, name)
		}
		return c
	}
	for line := range bytes.Lines(payload) {
		if line[0] == '*' {
			inNAT = string(bytes.TrimSpace(line)) == "*nat"
		}
		if !inNAT {
			others.Write(line)
			continue
		}
		f := bytes.Fields(line)
		switch {
		case len(f) == 0 || line[0] == '*' || string(f[0]) == "COMMIT":
		case line[0] == ':':
			get(string(f[0][1:])).decl = line
		case len(f) > 1 && string(f[0]) == "-A":
			c := get(string(f[1]))
			c.rules = append(c.rules, line)
		default:
			tail = append(tail, line)
		}
	}

	// The chains of one ServicePort are those its chains jump among.
	group := map[string]string{}
	var root func(string) string
	root = func(n string) string {
		if g, ok := group[n]; ok && g != n {
			group[n] = root(g)
			return group[n]
		}
		group[n] = n
		return n
	}
	jumpedTo := map[string]bool{}
	for _, name := range order {
		if !perPortChain(name) {
			continue
		}
		root(name)
		for _, r := range nat[name].rules {
			switch t := jumpTarget(r); {
			case perPortChain(t):
				group[root(t)] = root(name)
			case nat[t] != nil:
				jumpedTo[t] = true
			}
		}
	}
	var first, last, roots []string
	members := map[string][]string{}
	for _, name := range order {
		switch {
		case perPortChain(name):
			r := root(name)
			if members[r] == nil {
				roots = append(roots, r)
			}
			members[r] = append(members[r], name)
		case jumpedTo[name]:
			first = append(first, name)
		default:
			last = append(last, name)
		}
	}
	var stages [][]byte
	natStage := func(pre []byte, names []string, post [][]byte) {
		var buf bytes.Buffer
		buf.Write(pre)
		buf.WriteString("*nat\n")
		for _, n := range names {
			buf.Write(nat[n].decl)
		}
		for _, n := range names {
			for _, r := range nat[n].rules {
				buf.Write(r)
			}
		}
		for _, l := range post {
			buf.Write(l)
		}
		buf.WriteString("COMMIT\n")
		stages = append(stages, buf.Bytes())
	}
	if len(first) > 0 {
		natStage(nil, first, nil)
	}
	perPort := 0
	for ; len(roots) > 0; perPort++ {
		var names []string
		// Declarations count too: a stale chain is declared (flushed) and
		// has no rules, and a restart may bring many.
		for lines := 0; len(roots) > 0 && lines < perStage; roots = roots[1:] {
			for _, n := range members[roots[0]] {
				names = append(names, n)
				lines += 1 + len(nat[n].rules)
			}
		}
		natStage(nil, names, nil)
	}
	if perPort <= 1 {
		return [][]byte{payload}
	}
	natStage(others.Bytes(), last, tail)
	return stages
}

// perPortChain says whether a nat chain belongs to one ServicePort.
func perPortChain(name string) bool {
	for _, p := range []string{prefixSVC, prefixSVL, prefixEXT, prefixFW, prefixSEP} {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// jumpTarget is the chain or target a rule jumps to ("" if none).
func jumpTarget(rule []byte) string {
	_, after, ok := bytes.Cut(rule, []byte(" -j "))
	if !ok {
		return ""
	}
	if f := bytes.Fields(after); len(f) > 0 {
		return string(f[0])
	}
	return ""
}
