package proxyrules

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/kube-nodekit/nodekit/internal/testenv"
)

// kernelLoadTimeout bounds one full load. With one iptables-nft-restore,
// 10,000 Services would take hours (see stagePayload); such a load is
// reported as not finished rather than waited for.
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
//     no rules yet. load=one-restore loads the payload with one
//     iptables-restore, as kube-proxy does; load=staged is what the applier
//     does with iptables-nft (see stagePayload).
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
			loads := []string{"one-restore"}
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
		if !staged {
			a.stageLines = -1
		}
		_, err = a.Apply(ctx, m, true)
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
	tr := trackerOf(b, DefaultConfig("node1"), svcs, eps)
	r := &restoreMeter{ns: testenv.NetNSes(b, "change")[0]}
	a := &IPTablesApplier{Exec: r.exec, Backend: backend}
	m, _ := tr.Model()
	ctx, cancel := context.WithTimeout(context.Background(), kernelLoadTimeout)
	defer cancel()
	// The rules the change lands on (with iptables-nft, a staged load).
	if _, err := a.Apply(ctx, m, true); err != nil {
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
