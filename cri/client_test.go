package cri

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// fakeServer is an in-process CRI server on a unix socket whose answers a
// test sets; everything it does not set is Unimplemented.
type fakeServer struct {
	runtimeapi.UnimplementedRuntimeServiceServer
	runtimeapi.UnimplementedImageServiceServer
	version *runtimeapi.VersionResponse
	block   chan struct{} // ContainerStatus waits on it
	statErr error
}

func (f *fakeServer) Version(context.Context, *runtimeapi.VersionRequest) (*runtimeapi.VersionResponse, error) {
	return f.version, nil
}

func (f *fakeServer) ContainerStatus(ctx context.Context, req *runtimeapi.ContainerStatusRequest) (*runtimeapi.ContainerStatusResponse, error) {
	if f.block != nil {
		select {
		case <-f.block:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if f.statErr != nil {
		return nil, f.statErr
	}
	return &runtimeapi.ContainerStatusResponse{}, nil
}

func serve(t *testing.T, f *fakeServer) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "cri.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	runtimeapi.RegisterRuntimeServiceServer(s, f)
	runtimeapi.RegisterImageServiceServer(s, f)
	go s.Serve(l)
	t.Cleanup(s.Stop)
	return "unix://" + sock
}

var v1 = &runtimeapi.VersionResponse{Version: "0.1.0", RuntimeName: "fake", RuntimeVersion: "1.0", RuntimeApiVersion: "v1"}

func TestParseEndpoint(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"unix:///run/containerd/containerd.sock", "unix:///run/containerd/containerd.sock", true},
		{"/run/containerd/containerd.sock", "unix:///run/containerd/containerd.sock", true},
		{"", "", false},
		{"unix://relative.sock", "", false},
		{"tcp://127.0.0.1:1234", "", false},
		{"npipe:////./pipe/containerd", "", false},
		{"relative.sock", "", false},
	} {
		got, err := parseEndpoint(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parseEndpoint(%q) = %q, %v; want %q, ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

// TestDialChecksVersion pins the kubelet's validation of Version: CRI v1
// with every field set (k8s.io/cri-client versionV1).
func TestDialChecksVersion(t *testing.T) {
	for _, tc := range []struct {
		name    string
		v       *runtimeapi.VersionResponse
		wantErr string
		is      error
	}{
		{"v1", v1, "", nil},
		{"v1alpha2", &runtimeapi.VersionResponse{Version: "0.1.0", RuntimeName: "old", RuntimeVersion: "1.0", RuntimeApiVersion: "v1alpha2"}, `speaks "v1alpha2"`, ErrUnsupportedVersion},
		{"missing fields", &runtimeapi.VersionResponse{RuntimeApiVersion: "v1"}, "missing Version, RuntimeName, RuntimeVersion", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Dial(context.Background(), serve(t, &fakeServer{version: tc.v}), Options{})
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Dial: %v", err)
				}
				defer c.Close()
				if c.RuntimeVersion().RuntimeName != "fake" {
					t.Errorf("RuntimeVersion = %v", c.RuntimeVersion())
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Dial: err = %v, want it to contain %q", err, tc.wantErr)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("Dial: err = %v, want errors.Is %v", err, tc.is)
			}
		})
	}
}

// TestDialNoRuntime: a socket nobody listens on fails fast and clearly.
func TestDialNoRuntime(t *testing.T) {
	ep := "unix://" + filepath.Join(t.TempDir(), "absent.sock")
	_, err := Dial(context.Background(), ep, Options{ConnectTimeout: 30 * time.Second})
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), ep) {
		t.Fatalf("Dial to a missing socket: err = %v, want ErrUnavailable naming %s", err, ep)
	}
}

// TestTypedErrors: runtime errors keep their gRPC code and match the
// sentinels, and name the call and object.
func TestTypedErrors(t *testing.T) {
	for _, tc := range []struct {
		err  error
		is   error
		code codes.Code
	}{
		{status.Error(codes.NotFound, `container "abc" not found`), ErrNotFound, codes.NotFound},
		{status.Error(codes.Unimplemented, "no"), ErrUnimplemented, codes.Unimplemented},
		{status.Error(codes.Unavailable, "connection refused"), ErrUnavailable, codes.Unavailable},
		{status.Error(codes.DeadlineExceeded, "slow"), ErrDeadlineExceeded, codes.DeadlineExceeded},
		{status.Error(codes.Unknown, "boom"), nil, codes.Unknown},
	} {
		f := &fakeServer{version: v1, statErr: tc.err}
		c, err := Dial(context.Background(), serve(t, f), Options{})
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.ContainerStatus(context.Background(), "abc", false)
		c.Close()
		if tc.is != nil && !errors.Is(err, tc.is) {
			t.Errorf("%v: errors.Is(%v) = false", tc.err, tc.is)
		}
		for _, s := range []error{ErrNotFound, ErrUnimplemented, ErrUnavailable, ErrDeadlineExceeded} {
			if s != tc.is && errors.Is(err, s) {
				t.Errorf("%v: matches %v too", tc.err, s)
			}
		}
		if got := status.Code(err); got != tc.code {
			t.Errorf("%v: status.Code = %v, want %v", tc.err, got, tc.code)
		}
		if Code(err) != tc.code {
			t.Errorf("%v: Code = %v, want %v", tc.err, Code(err), tc.code)
		}
		if !strings.Contains(err.Error(), "ContainerStatus abc") {
			t.Errorf("error %q does not name the call and id", err)
		}
	}
}

// TestCallTimeout: a runtime that does not answer hits Options.Timeout.
func TestCallTimeout(t *testing.T) {
	f := &fakeServer{version: v1, block: make(chan struct{})}
	defer close(f.block)
	c, err := Dial(context.Background(), serve(t, f), Options{Timeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.ContainerStatus(context.Background(), "slow", false); !errors.Is(err, ErrDeadlineExceeded) {
		t.Fatalf("err = %v, want ErrDeadlineExceeded", err)
	}
}

// TestStatusWithoutStatus: an empty ContainerStatus answer is an error,
// not a nil dereference later.
func TestStatusWithoutStatus(t *testing.T) {
	c, err := Dial(context.Background(), serve(t, &fakeServer{version: v1}), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.ContainerStatus(context.Background(), "x", false); err == nil || !strings.Contains(err.Error(), "no status") {
		t.Fatalf("err = %v, want 'no status'", err)
	}
}

func TestUnimplementedCall(t *testing.T) {
	c, err := Dial(context.Background(), serve(t, &fakeServer{version: v1}), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.ListImages(context.Background(), nil)
	if !errors.Is(err, ErrUnimplemented) {
		t.Fatalf("ListImages on a server without it: err = %v, want ErrUnimplemented", err)
	}
	var e *Error
	if !errors.As(err, &e) || e.Op != "ListImages" {
		t.Fatalf("err = %#v, want *Error with Op ListImages", err)
	}
}

func TestWrapContextErrors(t *testing.T) {
	if err := wrapErr("Op", "id", context.DeadlineExceeded); !errors.Is(err, ErrDeadlineExceeded) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("wrapErr(DeadlineExceeded) = %v", err)
	}
	if err := wrapErr("Op", "id", context.Canceled); Code(err) != codes.Canceled || !errors.Is(err, context.Canceled) {
		t.Errorf("wrapErr(Canceled) = %v", err)
	}
	if wrapErr("Op", "", nil) != nil {
		t.Error("wrapErr(nil) != nil")
	}
}
