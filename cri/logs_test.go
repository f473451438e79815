package cri_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/utils/ptr"

	"github.com/kube-nodekit/nodekit/cri"
	"github.com/kube-nodekit/nodekit/cri/critest"
)

// Cases from the CRI log format as k8s.io/cri-client/pkg/logs parses it.
func TestParseLogLine(t *testing.T) {
	ts := time.Date(2016, 10, 6, 0, 17, 9, 669794202, time.UTC)
	for _, tc := range []struct {
		name, in string
		want     cri.LogLine
		err      string
	}{
		{"full line keeps its newline", "2016-10-06T00:17:09.669794202Z stdout F log content 1\n",
			cri.LogLine{Time: ts, Stream: runtimeapi.Stdout, Log: []byte("log content 1\n")}, ""},
		{"partial line loses its newline", "2016-10-06T00:17:09.669794202Z stderr P log content 2\n",
			cri.LogLine{Time: ts, Stream: runtimeapi.Stderr, Partial: true, Log: []byte("log content 2")}, ""},
		{"no newline", "2016-10-06T00:17:09.669794202Z stdout F x",
			cri.LogLine{Time: ts, Stream: runtimeapi.Stdout, Log: []byte("x")}, ""},
		{"empty content", "2016-10-06T00:17:09.669794202Z stdout F \n",
			cri.LogLine{Time: ts, Stream: runtimeapi.Stdout, Log: []byte("\n")}, ""},
		{"extra tags after ':'", "2016-10-06T00:17:09.669794202Z stdout P:future x\n",
			cri.LogLine{Time: ts, Stream: runtimeapi.Stdout, Partial: true, Log: []byte("x")}, ""},
		{"unknown tag is full", "2016-10-06T00:17:09.669794202Z stdout X x\n",
			cri.LogLine{Time: ts, Stream: runtimeapi.Stdout, Log: []byte("x\n")}, ""},
		{"spaces in content stay", "2016-10-06T00:17:09.669794202Z stdout F  a  b \n",
			cri.LogLine{Time: ts, Stream: runtimeapi.Stdout, Log: []byte(" a  b \n")}, ""},
		{"offset timestamp", "2016-10-06T02:17:09.669794202+02:00 stdout F x\n",
			cri.LogLine{Time: ts, Stream: runtimeapi.Stdout, Log: []byte("x\n")}, ""},
		{"no timestamp", "stdout", cri.LogLine{}, "timestamp is not found"},
		{"bad timestamp", "yesterday stdout F x", cri.LogLine{}, "unexpected timestamp format"},
		{"no stream", "2016-10-06T00:17:09.669794202Z stdout", cri.LogLine{}, "stream type is not found"},
		{"bad stream", "2016-10-06T00:17:09.669794202Z stdin F x", cri.LogLine{}, "unexpected stream type"},
		{"no tag", "2016-10-06T00:17:09.669794202Z stdout F", cri.LogLine{}, "log tag is not found"},
		{"empty", "", cri.LogLine{}, "timestamp is not found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := cri.ParseLogLine([]byte(tc.in))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !got.Time.Equal(tc.want.Time) || got.Stream != tc.want.Stream || got.Partial != tc.want.Partial || !bytes.Equal(got.Log, tc.want.Log) {
				t.Fatalf("got %+v (%q), want %+v (%q)", got, got.Log, tc.want, tc.want.Log)
			}
		})
	}
}

func TestAppendLogLineRoundTrip(t *testing.T) {
	at := time.Date(2024, 2, 29, 23, 59, 59, 5, time.UTC)
	line := cri.AppendLogLine(nil, at, runtimeapi.Stderr, true, []byte("half"))
	if string(line) != "2024-02-29T23:59:59.000000005Z stderr P half\n" {
		t.Fatalf("AppendLogLine = %q", line)
	}
	got, err := cri.ParseLogLine(line)
	if err != nil || !got.Time.Equal(at) || got.Stream != runtimeapi.Stderr || !got.Partial || string(got.Log) != "half" {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
}

func writeLog(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "0.log")
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

const criLog = "2020-09-27T11:18:01.000000000Z stdout F line1\n" +
	"2020-09-27T11:18:02.000000000Z stderr F err1\n" +
	"2020-09-27T11:18:03.000000000Z stdout P li\n" +
	"2020-09-27T11:18:03.500000000Z stdout F ne2\n" +
	"2020-09-27T11:18:04.000000000Z stdout F line3\n"

// TestReadLogs pins the kubelet's options (cri-client/pkg/logs/logs_test.go
// uses the same ones): tail, limit, since, timestamps on line starts only,
// and a dropped stream that neither writes nor counts.
func TestReadLogs(t *testing.T) {
	path := writeLog(t, criLog)
	for _, tc := range []struct {
		name        string
		opts        cri.LogOptions
		out, errOut string
		noStderr    bool
	}{
		{"all", cri.LogOptions{}, "line1\nline2\nline3\n", "err1\n", false},
		{"tail 2 counts records", cri.LogOptions{TailLines: ptr.To[int64](2)}, "ne2\nline3\n", "", false},
		{"tail 0", cri.LogOptions{TailLines: ptr.To[int64](0)}, "", "", false},
		{"tail more than there is", cri.LogOptions{TailLines: ptr.To[int64](99)}, "line1\nline2\nline3\n", "err1\n", false},
		{"limit 9 bytes across streams", cri.LogOptions{LimitBytes: ptr.To[int64](9)}, "line1\n", "err", false},
		{"limit 0", cri.LogOptions{LimitBytes: ptr.To[int64](0)}, "", "", false},
		{"since", cri.LogOptions{Since: time.Date(2020, 9, 27, 11, 18, 3, 0, time.UTC)}, "line2\nline3\n", "", false},
		{"timestamps only at line starts", cri.LogOptions{Timestamps: true},
			"2020-09-27T11:18:01.000000000Z line1\n2020-09-27T11:18:03.000000000Z line2\n2020-09-27T11:18:04.000000000Z line3\n",
			"2020-09-27T11:18:02.000000000Z err1\n", false},
		{"no stderr: not counted in limit", cri.LogOptions{LimitBytes: ptr.To[int64](9)}, "line1\nlin", "", true},
		{"follow a stopped container", cri.LogOptions{Follow: true}, "line1\nline2\nline3\n", "err1\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			var stderr = &errOut
			rs := critest.New(nil) // unknown container: following ends at EOF
			var err error
			if tc.noStderr {
				err = cri.ReadLogs(context.Background(), path, "gone", tc.opts, exitedStatus{rs}, &out, nil)
			} else {
				err = cri.ReadLogs(context.Background(), path, "gone", tc.opts, exitedStatus{rs}, &out, stderr)
			}
			if err != nil {
				t.Fatal(err)
			}
			if out.String() != tc.out || errOut.String() != tc.errOut {
				t.Fatalf("stdout %q, stderr %q; want %q, %q", out.String(), errOut.String(), tc.out, tc.errOut)
			}
		})
	}
}

// exitedStatus reports every container as exited.
type exitedStatus struct{ *critest.Runtime }

func (exitedStatus) ContainerStatus(context.Context, string, bool) (*runtimeapi.ContainerStatusResponse, error) {
	return &runtimeapi.ContainerStatusResponse{Status: &runtimeapi.ContainerStatus{State: runtimeapi.ContainerState_CONTAINER_EXITED}}, nil
}

func TestReadLogsFormats(t *testing.T) {
	docker := `{"log":"line1\n","stream":"stdout","time":"2020-09-27T11:18:01.00000000Z"}` + "\n" +
		`{"log":"err\n","stream":"stderr","time":"2020-09-27T11:18:02.00000000Z"}` + "\n"
	var out, errOut bytes.Buffer
	if err := cri.ReadLogs(context.Background(), writeLog(t, docker), "", cri.LogOptions{}, nil, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	if out.String() != "line1\n" || errOut.String() != "err\n" {
		t.Errorf("docker json: %q, %q", out.String(), errOut.String())
	}

	// A malformed record after the first is skipped; an incomplete last
	// line is still written.
	mixed := "2020-09-27T11:18:01.000000000Z stdout F a\ngarbage\n2020-09-27T11:18:02.000000000Z stdout F b"
	out.Reset()
	if err := cri.ReadLogs(context.Background(), writeLog(t, mixed), "", cri.LogOptions{}, nil, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	if out.String() != "a\nb" {
		t.Errorf("mixed: %q", out.String())
	}

	if err := cri.ReadLogs(context.Background(), writeLog(t, "not a log\n"), "", cri.LogOptions{}, nil, &out, &errOut); err == nil || !strings.Contains(err.Error(), "unsupported log format") {
		t.Errorf("unknown format: err = %v", err)
	}
	if err := cri.ReadLogs(context.Background(), filepath.Join(t.TempDir(), "absent.log"), "", cri.LogOptions{}, nil, &out, &errOut); err == nil {
		t.Error("missing file: no error")
	}
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestFollowLogs: a follower sees lines written while the container runs,
// including a line completed after a partial write, and returns once the
// container has exited and the file is drained.
func TestFollowLogs(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r := critest.New(nil)
	if _, err := r.AddImage("busybox", 1); err != nil {
		t.Fatal(err)
	}
	logDir := t.TempDir()
	sb, err := r.RunPodSandbox(ctx, &runtimeapi.PodSandboxConfig{Metadata: &runtimeapi.PodSandboxMetadata{Name: "p", Namespace: "n", Uid: "u"}, LogDirectory: logDir}, "")
	if err != nil {
		t.Fatal(err)
	}
	id, err := r.CreateContainer(ctx, sb, &runtimeapi.ContainerConfig{Metadata: &runtimeapi.ContainerMetadata{Name: "c"},
		Image: &runtimeapi.ImageSpec{Image: "busybox"}, LogPath: cri.ContainerLogPath("c", 0)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.StartContainer(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := r.Print(id, runtimeapi.Stdout, "first\n"); err != nil {
		t.Fatal(err)
	}
	var out syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- cri.ReadLogs(ctx, filepath.Join(logDir, "c", "0.log"), id, cri.LogOptions{Follow: true}, r, &out, &out)
	}()
	waitOutput := func(want string) {
		for out.String() != want {
			select {
			case err := <-done:
				t.Fatalf("ReadLogs returned early (%v) with %q, want %q", err, out.String(), want)
			case <-ctx.Done():
				t.Fatalf("output %q, want %q", out.String(), want)
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	waitOutput("first\n")
	if err := r.Print(id, runtimeapi.Stderr, "sec"); err != nil {
		t.Fatal(err)
	}
	if err := r.Print(id, runtimeapi.Stderr, "ond\n"); err != nil {
		t.Fatal(err)
	}
	waitOutput("first\nsecond\n")
	if err := r.Print(id, runtimeapi.Stdout, "last\n"); err != nil {
		t.Fatal(err)
	}
	if err := r.Exit(id, 0); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-ctx.Done():
		t.Fatal("ReadLogs did not return after the container exited")
	}
	if out.String() != "first\nsecond\nlast\n" {
		t.Fatalf("followed %q", out.String())
	}
}

func TestLogOptionsFor(t *testing.T) {
	now := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	since := int64(60)
	o := cri.LogOptionsFor(&corev1.PodLogOptions{SinceSeconds: &since, Follow: true}, now)
	if !o.Since.Equal(now.Add(-time.Minute)) || !o.Follow {
		t.Fatalf("LogOptionsFor = %+v", o)
	}
	// The later of sinceSeconds and sinceTime wins.
	later := metav1.NewTime(now.Add(-time.Second))
	o = cri.LogOptionsFor(&corev1.PodLogOptions{SinceSeconds: &since, SinceTime: &later}, now)
	if !o.Since.Equal(later.Time) {
		t.Fatalf("LogOptionsFor with sinceTime = %+v", o)
	}
}

// TestReadLogsLongLine: records longer than the read buffer come through
// whole.
func TestReadLogsLongLine(t *testing.T) {
	long := strings.Repeat("x", 70000)
	path := writeLog(t, "2020-09-27T11:18:01.000000000Z stdout F "+long+"\n2020-09-27T11:18:02.000000000Z stdout F short\n")
	var out bytes.Buffer
	if err := cri.ReadLogs(context.Background(), path, "", cri.LogOptions{}, nil, &out, nil); err != nil {
		t.Fatal(err)
	}
	if out.String() != long+"\nshort\n" {
		t.Fatalf("read %d bytes, want %d", out.Len(), len(long)+7)
	}
}
