package testenv

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Runtime is a CRI runtime of the test bed.
type Runtime struct {
	// Name is "containerd" (2.x, built by hack/build.sh) or "containerd16"
	// (Debian's 1.6).
	Name string
	// Endpoint is the CRI endpoint, "unix:///path/to/socket".
	Endpoint string
	// ContainerEvents reports whether the runtime implements the CRI
	// GetContainerEvents stream (containerd 2.x does, 1.6 does not).
	ContainerEvents bool
	// PauseImage and BusyboxImage are the locally built images the runtime
	// holds; no registry is reachable from the test bed.
	PauseImage, BusyboxImage string
}

// The images hack/containerd-up.sh builds and imports into every runtime.
const (
	PauseImage   = "registry.k8s.io/pause:3.10.2"
	BusyboxImage = "docker.io/library/busybox:1.36"
)

// CRIEndpoint returns the endpoint of the test bed's main runtime,
// containerd 2.x, after checking that it answers the CRI Version call.
func CRIEndpoint(t testing.TB) string {
	t.Helper()
	return containerd(t).Endpoint
}

// Runtimes returns every runtime of the test bed: containerd 2.x and
// Debian's containerd 1.6, for tests of code paths that differ between
// runtimes with and without CRI container events.
func Runtimes(t testing.TB) []Runtime {
	t.Helper()
	return []Runtime{containerd(t), containerd16(t)}
}

func containerd(t testing.TB) Runtime {
	t.Helper()
	return checkRuntime(t, Runtime{
		Name:            "containerd",
		Endpoint:        fromEnv("NODEKIT_CRI_ENDPOINT", "cri", "containerd.sock"),
		ContainerEvents: true,
		PauseImage:      PauseImage,
		BusyboxImage:    BusyboxImage,
	}, "hack/containerd-up.sh")
}

func containerd16(t testing.TB) Runtime {
	t.Helper()
	return checkRuntime(t, Runtime{
		Name:         "containerd16",
		Endpoint:     fromEnv("NODEKIT_CRI16_ENDPOINT", "cri16", "containerd.sock"),
		PauseImage:   PauseImage,
		BusyboxImage: BusyboxImage,
	}, "RUNTIME=containerd16 hack/containerd-up.sh")
}

func checkRuntime(t testing.TB, r Runtime, start string) Runtime {
	t.Helper()
	if !strings.Contains(r.Endpoint, "://") {
		r.Endpoint = "unix://" + r.Endpoint
	}
	conn, err := DialCRI(r.Endpoint)
	if err != nil {
		unavailable(t, start, "%s at %s: %v", r.Name, r.Endpoint, err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := runtimeapi.NewRuntimeServiceClient(conn).Version(ctx, &runtimeapi.VersionRequest{}); err != nil {
		unavailable(t, start, "%s at %s does not answer CRI Version: %v", r.Name, r.Endpoint, err)
	}
	return r
}

// DialCRI opens a plain gRPC connection to a CRI endpoint, for tests that
// need the raw cri-api client.
func DialCRI(endpoint string) (*grpc.ClientConn, error) {
	return grpc.NewClient(endpoint,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(16<<20)))
}
