package cri

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// The kubelet's defaults, from k8s.io/cri-client/pkg (utils.go,
// remote_runtime.go) and the kubelet's --runtime-request-timeout.
const (
	// DefaultTimeout is the per-call timeout (--runtime-request-timeout).
	DefaultTimeout = 2 * time.Minute
	// DefaultMaxMsgSize is the largest message the client accepts (16 MiB).
	DefaultMaxMsgSize = 16 << 20
	// DefaultConnectTimeout bounds Dial's first Version call. The kubelet
	// uses its request timeout for this; a shorter one fails fast when the
	// socket exists but nobody answers.
	DefaultConnectTimeout = 30 * time.Second

	// gRPC reconnect backoff of k8s.io/cri-client: 100ms doubling to 3s,
	// and at least 5s for each connection attempt.
	baseBackoffDelay     = 100 * time.Millisecond
	maxBackoffDelay      = 3 * time.Second
	minConnectionTimeout = 5 * time.Second
)

// Options configures a Client. The zero value means the kubelet's defaults.
type Options struct {
	// Timeout bounds every unary call; RunPodSandbox gets twice as long and
	// PullImage none, as in the kubelet. Zero means DefaultTimeout.
	Timeout time.Duration
	// ConnectTimeout bounds Dial's version check. Zero means
	// DefaultConnectTimeout.
	ConnectTimeout time.Duration
	// MaxMsgSize is the largest message received. Zero means
	// DefaultMaxMsgSize.
	MaxMsgSize int
	// ImageEndpoint serves the ImageService when it differs from the
	// runtime endpoint (the kubelet's --image-service-endpoint).
	ImageEndpoint string
}

// DefaultOptions returns the kubelet's defaults.
func DefaultOptions() Options {
	return Options{Timeout: DefaultTimeout, ConnectTimeout: DefaultConnectTimeout, MaxMsgSize: DefaultMaxMsgSize}
}

func (o Options) withDefaults() Options {
	d := DefaultOptions()
	if o.Timeout <= 0 {
		o.Timeout = d.Timeout
	}
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = d.ConnectTimeout
	}
	if o.MaxMsgSize <= 0 {
		o.MaxMsgSize = d.MaxMsgSize
	}
	return o
}

// Client talks to a CRI runtime over gRPC. It implements RuntimeService,
// ImageService, Streamer and EventSource. It is safe for concurrent use;
// when the runtime goes away its calls fail with ErrUnavailable and it
// reconnects by itself when the runtime comes back.
type Client struct {
	opts     Options
	endpoint string
	conn     *grpc.ClientConn
	iconn    *grpc.ClientConn // == conn unless Options.ImageEndpoint differs
	rt       runtimeapi.RuntimeServiceClient
	img      runtimeapi.ImageServiceClient
	version  *runtimeapi.VersionResponse
}

// Dial connects to the CRI runtime at endpoint ("unix:///run/containerd/containerd.sock"
// or a bare absolute socket path) and checks that it speaks CRI v1: the
// runtime's Version must answer with RuntimeApiVersion "v1" and every field
// set, as the kubelet requires. On failure nothing is left open.
func Dial(ctx context.Context, endpoint string, opts Options) (*Client, error) {
	opts = opts.withDefaults()
	target, err := parseEndpoint(endpoint)
	if err != nil {
		return nil, err
	}
	conn, err := newConn(target, opts)
	if err != nil {
		return nil, fmt.Errorf("cri: dial %s: %w", endpoint, err)
	}
	c := &Client{opts: opts, endpoint: target, conn: conn, iconn: conn}
	if opts.ImageEndpoint != "" && opts.ImageEndpoint != endpoint {
		itarget, err := parseEndpoint(opts.ImageEndpoint)
		if err != nil {
			conn.Close()
			return nil, err
		}
		if c.iconn, err = newConn(itarget, opts); err != nil {
			conn.Close()
			return nil, fmt.Errorf("cri: dial image endpoint %s: %w", opts.ImageEndpoint, err)
		}
	}
	c.rt = runtimeapi.NewRuntimeServiceClient(c.conn)
	c.img = runtimeapi.NewImageServiceClient(c.iconn)

	vctx, cancel := context.WithTimeout(ctx, opts.ConnectTimeout)
	defer cancel()
	v, err := c.rt.Version(vctx, &runtimeapi.VersionRequest{})
	if err == nil {
		err = checkVersion(v)
	} else {
		err = wrapErr("Version", "", err)
	}
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("cri: %s does not answer as a CRI v1 runtime: %w", endpoint, err)
	}
	c.version = v
	return c, nil
}

// parseEndpoint accepts "unix:///abs/path" and "/abs/path" and returns the
// gRPC target for it.
func parseEndpoint(endpoint string) (string, error) {
	switch {
	case endpoint == "":
		return "", errors.New("cri: empty endpoint")
	case strings.HasPrefix(endpoint, "unix://"):
		p := strings.TrimPrefix(endpoint, "unix://")
		if !filepath.IsAbs(p) {
			return "", fmt.Errorf("cri: endpoint %q: want unix:///absolute/path", endpoint)
		}
		return "unix://" + p, nil
	case filepath.IsAbs(endpoint):
		return "unix://" + endpoint, nil
	case strings.Contains(endpoint, "://"):
		return "", fmt.Errorf("cri: endpoint %q: only unix sockets are supported", endpoint)
	default:
		return "", fmt.Errorf("cri: endpoint %q: want unix:///absolute/path or an absolute socket path", endpoint)
	}
}

func newConn(target string, opts Options) (*grpc.ClientConn, error) {
	bo := backoff.DefaultConfig
	bo.BaseDelay = baseBackoffDelay
	bo.MaxDelay = maxBackoffDelay
	return grpc.NewClient(target,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithAuthority("localhost"),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(opts.MaxMsgSize)),
		grpc.WithConnectParams(grpc.ConnectParams{Backoff: bo, MinConnectTimeout: minConnectionTimeout}),
	)
}

// checkVersion is the kubelet's validation of a VersionResponse
// (k8s.io/cri-client/pkg/remote_runtime.go versionV1), plus the v1 check.
func checkVersion(v *runtimeapi.VersionResponse) error {
	var missing []string
	if v.GetVersion() == "" {
		missing = append(missing, "Version")
	}
	if v.GetRuntimeName() == "" {
		missing = append(missing, "RuntimeName")
	}
	if v.GetRuntimeApiVersion() == "" {
		missing = append(missing, "RuntimeApiVersion")
	}
	if v.GetRuntimeVersion() == "" {
		missing = append(missing, "RuntimeVersion")
	}
	if len(missing) > 0 {
		return fmt.Errorf("not all fields are set in VersionResponse (missing %s)", strings.Join(missing, ", "))
	}
	if v.RuntimeApiVersion != "v1" {
		return fmt.Errorf("%w: runtime %s %s speaks %q, want \"v1\"", ErrUnsupportedVersion, v.RuntimeName, v.RuntimeVersion, v.RuntimeApiVersion)
	}
	return nil
}

// Close closes the connections. Calls in flight fail.
func (c *Client) Close() error {
	err := c.conn.Close()
	if c.iconn != c.conn {
		err = errors.Join(err, c.iconn.Close())
	}
	return err
}

// Endpoint returns the gRPC target the client talks to.
func (c *Client) Endpoint() string { return c.endpoint }

// RuntimeVersion returns the Version answer Dial checked.
func (c *Client) RuntimeVersion() *runtimeapi.VersionResponse { return c.version }

// call runs a unary call under the per-call timeout (scaled by mult; 0
// means only the caller's context) and wraps its error.
func call[T any](ctx context.Context, c *Client, mult int, op, id string, f func(context.Context) (T, error)) (T, error) {
	if mult > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(mult)*c.opts.Timeout)
		defer cancel()
	}
	v, err := f(ctx)
	return v, wrapErr(op, id, err)
}

// Version asks the runtime for its name and versions.
func (c *Client) Version(ctx context.Context) (*runtimeapi.VersionResponse, error) {
	return call(ctx, c, 1, "Version", "", func(ctx context.Context) (*runtimeapi.VersionResponse, error) {
		return c.rt.Version(ctx, &runtimeapi.VersionRequest{})
	})
}

// Status returns the runtime's conditions (RuntimeReady, NetworkReady).
func (c *Client) Status(ctx context.Context, verbose bool) (*runtimeapi.StatusResponse, error) {
	return call(ctx, c, 1, "Status", "", func(ctx context.Context) (*runtimeapi.StatusResponse, error) {
		return c.rt.Status(ctx, &runtimeapi.StatusRequest{Verbose: verbose})
	})
}
