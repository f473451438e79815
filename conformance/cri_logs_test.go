package conformance

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	critesting "k8s.io/cri-api/pkg/apis/testing"
	upstreamlogs "k8s.io/cri-client/pkg/logs"

	"github.com/kube-nodekit/nodekit/cri"
)

// criExited reports every container as exited, to both readers.
type criExited struct{}

func (criExited) ContainerStatus(context.Context, string, bool) (*runtimeapi.ContainerStatusResponse, error) {
	return &runtimeapi.ContainerStatusResponse{Status: &runtimeapi.ContainerStatus{State: runtimeapi.ContainerState_CONTAINER_EXITED}}, nil
}

// criLogFile writes a random container log: CRI records (full and
// partial, both streams, odd timestamps and tags), some malformed lines,
// and maybe an unterminated last line.
func criLogFile(t testing.TB, r *rand.Rand, dir string, i int) (string, time.Time) {
	base := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	var b []byte
	n := r.IntN(40)
	for k := range n {
		ts := base.Add(time.Duration(k) * 137 * time.Millisecond)
		switch r.IntN(12) {
		case 0:
			b = append(b, "garbage without structure\n"...)
		case 1:
			b = fmt.Appendf(b, "%s stdin F wrong stream\n", ts.Format(time.RFC3339Nano))
		case 2:
			b = fmt.Appendf(b, "%s stdout P:x tagged part\n", ts.In(time.FixedZone("", 3600)).Format(time.RFC3339Nano))
		case 3:
			b = fmt.Appendf(b, "%s stderr F \n", ts.Format(time.RFC3339))
		default:
			stream := []runtimeapi.LogStreamType{runtimeapi.Stdout, runtimeapi.Stderr}[r.IntN(2)]
			content := bytes.Repeat([]byte{byte('a' + k%26)}, r.IntN(30))
			b = cri.AppendLogLine(b, ts, stream, r.IntN(4) == 0, content)
		}
	}
	if r.IntN(4) == 0 {
		b = append(b, base.Add(time.Hour).Format(time.RFC3339Nano)+" stdout F unterminated"...)
	}
	p := filepath.Join(dir, fmt.Sprintf("%d.log", i))
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p, base
}

// TestCriLogsMatchUpstream reads random log files with random options
// through nodekit's ReadLogs and k8s.io/cri-client's (the kubelet's) and
// wants the same bytes on stdout and stderr, and the same error-ness.
func TestCriLogsMatchUpstream(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 13))
	dir := t.TempDir()
	fake := critesting.NewFakeRuntimeService()
	fake.Containers["c"] = &critesting.FakeContainer{ContainerStatus: runtimeapi.ContainerStatus{Id: "c", State: runtimeapi.ContainerState_CONTAINER_EXITED}}
	nonEmpty := 0
	for i := range 3000 {
		path, base := criLogFile(t, r, dir, i)
		var opts cri.LogOptions
		if r.IntN(3) == 0 {
			opts.TailLines = new(int64(r.IntN(12)))
		}
		if r.IntN(3) == 0 {
			opts.LimitBytes = new(int64(r.IntN(200)))
		}
		if r.IntN(3) == 0 {
			opts.Since = base.Add(time.Duration(r.IntN(5000)) * time.Millisecond)
		}
		opts.Timestamps = r.IntN(2) == 0
		opts.Follow = r.IntN(4) == 0
		noStderr := r.IntN(5) == 0
		up := &upstreamlogs.LogOptions{TailLines: opts.TailLines, LimitBytes: opts.LimitBytes, Since: opts.Since, Follow: opts.Follow, Timestamp: opts.Timestamps}

		var gotOut, gotErr, wantOut, wantErr bytes.Buffer
		var gotErrW, wantErrW = &gotErr, &wantErr
		var err1, err2 error
		if noStderr {
			err1 = cri.ReadLogs(context.Background(), path, "c", opts, criExited{}, &gotOut, nil)
			err2 = upstreamlogs.ReadLogs(context.Background(), path, "c", up, fake, &wantOut, nil)
		} else {
			err1 = cri.ReadLogs(context.Background(), path, "c", opts, criExited{}, &gotOut, gotErrW)
			err2 = upstreamlogs.ReadLogs(context.Background(), path, "c", up, fake, &wantOut, wantErrW)
		}
		if (err1 != nil) != (err2 != nil) || gotOut.String() != wantOut.String() || gotErr.String() != wantErr.String() {
			content, _ := os.ReadFile(path)
			t.Fatalf("log %d, options %+v (no stderr: %v):\nnodekit:  %q %q %v\nupstream: %q %q %v\nfile:\n%s",
				i, opts, noStderr, gotOut.String(), gotErr.String(), err1, wantOut.String(), wantErr.String(), err2, content)
		}
		if gotOut.Len()+gotErr.Len() > 0 {
			nonEmpty++
		}
	}
	if nonEmpty < 1000 {
		t.Fatalf("only %d reads produced output: the comparison is too weak", nonEmpty)
	}
}
