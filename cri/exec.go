package cri

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ExecSync runs cmd in the container and waits for it to exit. The runtime
// is given timeout (whole seconds; 0 means none) and the call a deadline of
// Options.Timeout on top, so the runtime has time to clean up, as in
// k8s.io/cri-client. A non-zero exit returns the output and an *ExitError;
// a command that outlives timeout returns ErrCommandTimedOut.
func (c *Client) ExecSync(ctx context.Context, containerID string, cmd []string, timeout time.Duration) (stdout, stderr []byte, err error) {
	var cancel context.CancelFunc
	if timeout != 0 {
		ctx, cancel = context.WithTimeout(ctx, c.opts.Timeout+timeout)
	} else {
		ctx, cancel = context.WithCancel(ctx)
	}
	defer cancel()
	resp, err := c.rt.ExecSync(ctx, &runtimeapi.ExecSyncRequest{
		ContainerId: containerID,
		Cmd:         cmd,
		Timeout:     int64(timeout.Seconds()),
	})
	if err != nil {
		err = wrapErr("ExecSync", containerID, err)
		if Code(err) == codes.DeadlineExceeded {
			err = fmt.Errorf("%w: %q timed out after %s: %w", ErrCommandTimedOut, strings.Join(cmd, " "), timeout, err)
		}
		return nil, nil, err
	}
	if resp.ExitCode != 0 {
		return resp.Stdout, resp.Stderr, &ExitError{Cmd: cmd, Code: resp.ExitCode, Stderr: resp.Stderr}
	}
	return resp.Stdout, resp.Stderr, nil
}

// Exec asks the runtime for a streaming URL that runs req.Cmd in a
// container. The runtime rejects a request without any of stdin, stdout
// and stderr (codes.InvalidArgument).
func (c *Client) Exec(ctx context.Context, req *runtimeapi.ExecRequest) (*runtimeapi.ExecResponse, error) {
	resp, err := call(ctx, c, 1, "Exec", req.GetContainerId(), func(ctx context.Context) (*runtimeapi.ExecResponse, error) {
		return c.rt.Exec(ctx, req)
	})
	if err == nil && resp.Url == "" {
		err = fmt.Errorf("cri: Exec %s: %w", req.ContainerId, errEmptyURL)
	}
	return resp, err
}

// Attach asks the runtime for a streaming URL attached to a running
// container's stdio.
func (c *Client) Attach(ctx context.Context, req *runtimeapi.AttachRequest) (*runtimeapi.AttachResponse, error) {
	resp, err := call(ctx, c, 1, "Attach", req.GetContainerId(), func(ctx context.Context) (*runtimeapi.AttachResponse, error) {
		return c.rt.Attach(ctx, req)
	})
	if err == nil && resp.Url == "" {
		err = fmt.Errorf("cri: Attach %s: %w", req.ContainerId, errEmptyURL)
	}
	return resp, err
}

// PortForward asks the runtime for a streaming URL that forwards to ports
// in the sandbox's network namespace.
func (c *Client) PortForward(ctx context.Context, req *runtimeapi.PortForwardRequest) (*runtimeapi.PortForwardResponse, error) {
	resp, err := call(ctx, c, 1, "PortForward", req.GetPodSandboxId(), func(ctx context.Context) (*runtimeapi.PortForwardResponse, error) {
		return c.rt.PortForward(ctx, req)
	})
	if err == nil && resp.Url == "" {
		err = fmt.Errorf("cri: PortForward %s: %w", req.PodSandboxId, errEmptyURL)
	}
	return resp, err
}

var errEmptyURL = errors.New("the runtime returned an empty streaming URL")

// secondsDuration converts CRI seconds to a Duration without overflowing.
func secondsDuration(s int64) time.Duration {
	if s <= 0 {
		return 0
	}
	if s > math.MaxInt64/int64(time.Second) {
		return math.MaxInt64
	}
	return time.Duration(s) * time.Second
}
