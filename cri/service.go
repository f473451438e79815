package cri

import (
	"context"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// RuntimeService is the part of the CRI runtime service a node agent's
// loops use: sandbox and container lifecycle, status and ExecSync. The
// signatures are the kubelet's (k8s.io/cri-api/pkg/apis/services.go), so
// code written against the kubelet's interface ports over. *Client and
// critest.Runtime implement it.
type RuntimeService interface {
	Version(ctx context.Context) (*runtimeapi.VersionResponse, error)
	Status(ctx context.Context, verbose bool) (*runtimeapi.StatusResponse, error)

	RunPodSandbox(ctx context.Context, config *runtimeapi.PodSandboxConfig, runtimeHandler string) (string, error)
	StopPodSandbox(ctx context.Context, podSandboxID string) error
	RemovePodSandbox(ctx context.Context, podSandboxID string) error
	PodSandboxStatus(ctx context.Context, podSandboxID string, verbose bool) (*runtimeapi.PodSandboxStatusResponse, error)
	ListPodSandbox(ctx context.Context, filter *runtimeapi.PodSandboxFilter) ([]*runtimeapi.PodSandbox, error)

	CreateContainer(ctx context.Context, podSandboxID string, config *runtimeapi.ContainerConfig, sandboxConfig *runtimeapi.PodSandboxConfig) (string, error)
	StartContainer(ctx context.Context, containerID string) error
	StopContainer(ctx context.Context, containerID string, timeout int64) error
	RemoveContainer(ctx context.Context, containerID string) error
	ListContainers(ctx context.Context, filter *runtimeapi.ContainerFilter) ([]*runtimeapi.Container, error)
	ContainerStatus(ctx context.Context, containerID string, verbose bool) (*runtimeapi.ContainerStatusResponse, error)
	UpdateContainerResources(ctx context.Context, containerID string, resources *runtimeapi.ContainerResources) error

	// ExecSync runs cmd in the container and waits for it. A command that
	// exits non-zero returns its output and an *ExitError; one that runs
	// longer than timeout (0: no limit) returns ErrCommandTimedOut.
	ExecSync(ctx context.Context, containerID string, cmd []string, timeout time.Duration) (stdout, stderr []byte, err error)
}

// ImageService is the CRI image service.
type ImageService interface {
	ListImages(ctx context.Context, filter *runtimeapi.ImageFilter) ([]*runtimeapi.Image, error)
	// ImageStatus returns a nil Image in the response, and no error, when
	// the image is not present.
	ImageStatus(ctx context.Context, image *runtimeapi.ImageSpec, verbose bool) (*runtimeapi.ImageStatusResponse, error)
	PullImage(ctx context.Context, image *runtimeapi.ImageSpec, auth *runtimeapi.AuthConfig, podSandboxConfig *runtimeapi.PodSandboxConfig) (string, error)
	RemoveImage(ctx context.Context, image *runtimeapi.ImageSpec) error
	ImageFsInfo(ctx context.Context) (*runtimeapi.ImageFsInfoResponse, error)
}

// Streamer asks the runtime for the URLs of its streaming server, which a
// caller (the kubelet proxies the apiserver's exec/attach/portforward) then
// speaks SPDY or WebSocket to.
type Streamer interface {
	Exec(ctx context.Context, req *runtimeapi.ExecRequest) (*runtimeapi.ExecResponse, error)
	Attach(ctx context.Context, req *runtimeapi.AttachRequest) (*runtimeapi.AttachResponse, error)
	PortForward(ctx context.Context, req *runtimeapi.PortForwardRequest) (*runtimeapi.PortForwardResponse, error)
}

// EventSource opens the runtime's GetContainerEvents stream. Use
// WatchContainerEvents to consume it with reconnects.
type EventSource interface {
	// ContainerEventStream opens one stream, which lives until ctx is
	// cancelled or the runtime ends it. Recv returns the next event, or the
	// error that ended the stream.
	ContainerEventStream(ctx context.Context) (EventStream, error)
}

// EventStream is one open GetContainerEvents stream.
type EventStream interface {
	Recv() (*runtimeapi.ContainerEventResponse, error)
}

var (
	_ RuntimeService = (*Client)(nil)
	_ ImageService   = (*Client)(nil)
	_ Streamer       = (*Client)(nil)
	_ EventSource    = (*Client)(nil)
)
