package proxyrules

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/kube-nodekit/nodekit/internal/testenv"
)

// kernelLoadTimeout bounds one full load. iptables-nft-restore 1.8.9 is
// worse than quadratic in the chains of one input (every command inserts
// its chain and jump target into a sorted linked list, cache_chain_list_insert
// in iptables/nft-cache.c): 1,000 Services x 10 load in about 4 s, 3,000 in
// about 3 minutes, 10,000 would take hours. Such a load is reported as not
// finished rather than waited for.
const kernelLoadTimeout = 5 * time.Minute

// notFinished remembers the loads that timed out, so that -count N does not
// burn the timeout N times.
var notFinished = map[string]string{}

// restoreMeter runs the applier's commands in a namespace and adds up what
// the restore processes cost: wall time, CPU time (user and system, which
// a busy machine inflates less than wall time) and input bytes.
type restoreMeter struct {
	ns               *testenv.NetNS
	wall, cpu        time.Duration
	payload, restore int
}

func (r *restoreMeter) exec(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error) {
	// ip netns exec execs the tool in its own process, so the process
	// state below is the tool's.
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", r.ns.Name, name}, args...)...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if strings.HasSuffix(name, "-restore") {
		r.wall += time.Since(start)
		if cmd.ProcessState != nil {
			r.cpu += cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
		}
		r.payload += len(stdin)
		r.restore++
	}
	return out, err
}

func (r *restoreMeter) report(b *testing.B) {
	n := float64(b.N)
	b.ReportMetric(float64(r.wall.Milliseconds())/n, "restore-ms")
	b.ReportMetric(float64(r.cpu.Milliseconds())/n, "restore-cpu-ms")
	b.ReportMetric(float64(r.payload)/n, "payload-bytes")
	b.ReportMetric(float64(r.restore)/n, "restores")
}

// BenchmarkIPTablesKernel measures what a user waits for with the iptables
// backends, end to end into network namespaces:
//
//   - full: from Services and EndpointSlices to rules in force (model,
//     generation, the jump rules, iptables-restore) in a namespace that has
//     no rules yet. load=single is the applier (one iptables-restore, as
//     kube-proxy does); load=staged is an alternative measured for
//     iptables-nft, see stagePayload.
//   - changed=1: one EndpointSlice update among loaded rules: Tracker,
//     partial sync, iptables-restore --noflush.
//
// 10,000 Services load slowly: run it with -benchtime 1x. A full load that
// does not finish in kernelLoadTimeout is killed and reported with the
// metric unfinished=1 and a log line saying so; later -count runs skip it.
func BenchmarkIPTablesKernel(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		svcs, eps := cluster(n, 10)
		for _, backend := range []IPTablesBackend{IPTablesNFT, IPTablesLegacy} {
			name := fmt.Sprintf("backend=%s/services=%d/endpoints=10", backend, n)
			loads := []string{"single"}
			if backend == IPTablesNFT {
				loads = append(loads, "staged")
			}
			for _, load := range loads {
				b.Run(name+"/full/load="+load, func(b *testing.B) {
					benchFullLoad(b, backend, load == "staged", svcs, eps)
				})
			}
			b.Run(name+"/changed=1", func(b *testing.B) {
				benchOneServiceChange(b, backend, svcs, eps)
			})
		}
	}
}

func benchFullLoad(b *testing.B, backend IPTablesBackend, staged bool, svcs []*corev1.Service, eps []*discoveryv1.EndpointSlice) {
	if msg, ok := notFinished[b.Name()]; ok {
		b.Skip(msg)
	}
	r := &restoreMeter{}
	// Not b.Loop: a load that timed out ends the benchmark early.
	for range b.N {
		b.StopTimer()
		r.ns = testenv.NetNSes(b, "full")[0]
		ctx, cancel := context.WithTimeout(context.Background(), kernelLoadTimeout)
		b.StartTimer()
		m, err := NewModel(DefaultConfig("node1"), svcs, eps)
		if err != nil {
			b.Fatal(err)
		}
		a := &IPTablesApplier{Exec: r.exec, Backend: backend}
		if staged {
			_, err = stagedFullLoad(ctx, a, m)
		} else {
			_, err = a.Apply(ctx, m, true)
		}
		timedOut := errors.Is(ctx.Err(), context.DeadlineExceeded)
		cancel()
		if timedOut {
			// Logged with a result line (a skipped benchmark prints
			// nothing without -v); the times are lower bounds.
			msg := fmt.Sprintf("%s did not finish in %v and was killed", backend.tool(false, "-restore"), kernelLoadTimeout)
			notFinished[b.Name()] = msg
			b.Log(msg)
			b.ReportMetric(1, "unfinished")
			break
		}
		if err != nil {
			b.Fatal(err)
		}
	}
	r.report(b)
}

func benchOneServiceChange(b *testing.B, backend IPTablesBackend, svcs []*corev1.Service, eps []*discoveryv1.EndpointSlice) {
	tr, err := NewTracker(DefaultConfig("node1"))
	if err != nil {
		b.Fatal(err)
	}
	for i := range svcs {
		tr.SetService(svcs[i])
		tr.SetEndpointSlice(eps[i])
	}
	r := &restoreMeter{ns: testenv.NetNSes(b, "change")[0]}
	a := &IPTablesApplier{Exec: r.exec, Backend: backend}
	m, _ := tr.Model()
	ctx, cancel := context.WithTimeout(context.Background(), kernelLoadTimeout)
	defer cancel()
	// The rules the change lands on; with iptables-nft only a staged load
	// gets 10,000 Services in within the timeout. The state is the same.
	if backend == IPTablesNFT {
		_, err = stagedFullLoad(ctx, a, m)
	} else {
		_, err = a.Apply(ctx, m, true)
	}
	if err != nil {
		b.Fatalf("loading the rules to change: %v", err)
	}
	*r = restoreMeter{ns: r.ns}
	before := eps[len(eps)/2]
	changed := before.DeepCopy()
	changed.Endpoints = changed.Endpoints[:9]
	for i := 0; b.Loop(); i++ {
		tr.SetEndpointSlice([]*discoveryv1.EndpointSlice{changed, before}[i%2])
		m, _ := tr.Model()
		s, err := a.Apply(ctx, m, false)
		if err != nil {
			b.Fatal(err)
		}
		if s.Full || len(s.Written) != 1 {
			b.Fatalf("sync full=%v wrote %v, want a partial sync of one Service", s.Full, s.Written)
		}
	}
	r.report(b)
}

// stageRules is about how many rules a stage of a staged load carries:
// small enough that iptables-nft-restore's chain list stays short, large
// enough that starting the tool (a few ms) does not dominate.
const stageRules = 2000

// stagedFullLoad is Apply's full load with the payload cut by stagePayload
// and loaded by one iptables-restore per stage.
func stagedFullLoad(ctx context.Context, a *IPTablesApplier, m *Model) (*IPTablesSync, error) {
	restore := a.Backend.tool(a.IPv6, "-restore")
	s := a.gen.Sync(m, true)
	if err := ensureJumps(ctx, a.Exec, a.Backend.tool(a.IPv6, "")); err != nil {
		return s, err
	}
	for _, stage := range stagePayload(s.Payload, stageRules) {
		if out, err := a.Exec(ctx, stage, restore, "-w", "5", "--noflush", "--counters"); err != nil {
			return s, restoreError(restore, stage, out, err)
		}
	}
	s.Commit()
	a.started = true
	return s, nil
}

// stagePayload cuts a full payload into inputs for several
// iptables-restore --noflush runs that together load the same rules, so
// that no one run carries many chains:
//
//  1. the nat chains the per-ServicePort chains jump to (KUBE-MARK-MASQ);
//  2. the per-ServicePort chains (KUBE-SVC/SVL/EXT/FW/SEP), a ServicePort's
//     chains always in the same stage, about perStage rules a stage;
//  3. the filter table, the other nat chains (KUBE-SERVICES,
//     KUBE-NODEPORTS, KUBE-POSTROUTING) and the deletions of stale chains.
//
// Nothing jumps to a per-ServicePort chain written in stage 2 until stage
// 3 commits, so on a first load traffic sees the new rules at once, as
// with one restore. On a resync over loaded rules it would not: a
// ServicePort's rewritten chains would be in force before the dispatch
// rules that go with them, and a failure halfway would leave a mix.
func stagePayload(payload []byte, perStage int) [][]byte {
	type chain struct {
		decl  string
		rules []string
	}
	var (
		filter  []string
		nat     = map[string]*chain{}
		order   []string // nat chains by first appearance
		deletes []string
		table   string
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
	for line := range strings.Lines(string(payload)) {
		switch {
		case strings.HasPrefix(line, "*"):
			table = strings.TrimSpace(line[1:])
			continue
		case line == "COMMIT\n":
			continue
		}
		if table != "nat" {
			filter = append(filter, line)
			continue
		}
		switch {
		case strings.HasPrefix(line, ":"):
			get(strings.Fields(line[1:])[0]).decl = line
		case strings.HasPrefix(line, "-A "):
			c := get(strings.Fields(line)[1])
			c.rules = append(c.rules, line)
		default:
			deletes = append(deletes, line)
		}
	}
	perPort := func(name string) bool {
		for _, p := range []string{prefixSVC, prefixSVL, prefixEXT, prefixFW, prefixSEP} {
			if strings.HasPrefix(name, p) {
				return true
			}
		}
		return false
	}
	target := func(rule string) string {
		_, t, _ := strings.Cut(rule, " -j ")
		return strings.Fields(t + " ")[0]
	}

	// A ServicePort's chains: the per-port chains joined by jumps.
	root := map[string]string{}
	var find func(string) string
	find = func(x string) string {
		if r, ok := root[x]; ok && r != x {
			root[x] = find(r)
			return root[x]
		}
		root[x] = x
		return x
	}
	first := map[string]bool{} // nat chains the per-port chains jump to
	for _, name := range order {
		if !perPort(name) {
			continue
		}
		find(name)
		for _, r := range nat[name].rules {
			switch t := target(r); {
			case perPort(t):
				root[find(t)] = find(name)
			case nat[t] != nil:
				first[t] = true
			}
		}
	}
	write := func(buf *bytes.Buffer, names []string) {
		for _, n := range names {
			buf.WriteString(nat[n].decl)
		}
		for _, n := range names {
			for _, r := range nat[n].rules {
				buf.WriteString(r)
			}
		}
	}
	var stages [][]byte
	var prep, last []string
	for _, name := range order {
		switch {
		case first[name]:
			prep = append(prep, name)
		case !perPort(name):
			last = append(last, name)
		}
	}
	if len(prep) > 0 {
		var buf bytes.Buffer
		buf.WriteString("*nat\n")
		write(&buf, prep)
		buf.WriteString("COMMIT\n")
		stages = append(stages, buf.Bytes())
	}
	groups := map[string][]string{}
	var roots []string
	for _, name := range order {
		if perPort(name) {
			r := find(name)
			if groups[r] == nil {
				roots = append(roots, r)
			}
			groups[r] = append(groups[r], name)
		}
	}
	for len(roots) > 0 {
		var names []string
		rules := 0
		for len(roots) > 0 && rules < perStage {
			for _, n := range groups[roots[0]] {
				names = append(names, n)
				rules += len(nat[n].rules)
			}
			roots = roots[1:]
		}
		var buf bytes.Buffer
		buf.WriteString("*nat\n")
		write(&buf, names)
		buf.WriteString("COMMIT\n")
		stages = append(stages, buf.Bytes())
	}
	var buf bytes.Buffer
	if len(filter) > 0 {
		buf.WriteString("*filter\n")
		for _, l := range filter {
			buf.WriteString(l)
		}
		buf.WriteString("COMMIT\n")
	}
	buf.WriteString("*nat\n")
	write(&buf, last)
	for _, l := range deletes {
		buf.WriteString(l)
	}
	buf.WriteString("COMMIT\n")
	return append(stages, buf.Bytes())
}

// TestIPTablesStagedLoadMatchesSingle: the staged load the benchmark
// measures puts in the kernel exactly the rules one restore does.
func TestIPTablesStagedLoadMatchesSingle(t *testing.T) {
	svcs, eps := cluster(300, 10)
	m := mustModel(t, DefaultConfig("node1"), svcs, eps)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dumps := map[bool]string{}
	for _, staged := range []bool{false, true} {
		ns := testenv.NetNSes(t, "node")[0]
		run := func(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error) {
			return HostExec(ctx, stdin, "ip", append([]string{"netns", "exec", ns.Name, name}, args...)...)
		}
		a := &IPTablesApplier{Exec: run}
		var err error
		if staged {
			var s *IPTablesSync
			s, err = stagedFullLoad(ctx, a, m)
			if n := len(stagePayload(s.Payload, stageRules)); err == nil && n < 3 {
				t.Fatalf("%d stages, want several", n)
			}
		} else {
			_, err = a.Apply(ctx, m, true)
		}
		if err != nil {
			t.Fatalf("staged=%v: %v", staged, err)
		}
		dumps[staged] = byChain(ns.Run(t, "iptables-nft-save"))
	}
	if dumps[false] != dumps[true] {
		t.Fatalf("a staged load left other rules than one restore:\nsingle:\n%.3000s\nstaged:\n%.3000s", dumps[false], dumps[true])
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
