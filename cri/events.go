package cri

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/utils/clock"
)

// Defaults of WatchContainerEvents.
const (
	// DefaultEventMaxRetries is the kubelet's eventedPlegMaxStreamRetries
	// (pkg/kubelet/kubelet.go).
	DefaultEventMaxRetries = 5
	// DefaultEventInitialBackoff and DefaultEventMaxBackoff bound the wait
	// between attempts: 200ms doubling to 5s, about 6s in all before
	// giving up, long enough for a runtime restart.
	DefaultEventInitialBackoff = 200 * time.Millisecond
	DefaultEventMaxBackoff     = 5 * time.Second
)

// ContainerEventStream opens the runtime's GetContainerEvents stream. A
// runtime without it (containerd 1.6) opens fine and fails on the first
// Recv with ErrUnimplemented.
func (c *Client) ContainerEventStream(ctx context.Context) (EventStream, error) {
	s, err := c.rt.GetContainerEvents(ctx, &runtimeapi.GetEventsRequest{})
	if err != nil {
		return nil, wrapErr("GetContainerEvents", "", err)
	}
	return grpcEventStream{s}, nil
}

type grpcEventStream struct {
	s interface {
		Recv() (*runtimeapi.ContainerEventResponse, error)
	}
}

func (g grpcEventStream) Recv() (*runtimeapi.ContainerEventResponse, error) {
	ev, err := g.s.Recv()
	if err == io.EOF {
		return nil, err
	}
	return ev, wrapErr("GetContainerEvents", "", err)
}

// asError makes an error of any EventSource an *Error, so callers can test
// it with errors.Is against the sentinels.
func asError(err error) error {
	var e *Error
	if err == nil || err == io.EOF || errors.As(err, &e) {
		return err
	}
	return wrapErr("GetContainerEvents", "", err)
}

// WatchOptions configures WatchContainerEvents. The zero value is usable.
type WatchOptions struct {
	// OnDisconnect is called when an open stream ends (the runtime went
	// away or closed it). Until OnReconnect, events are not seen: a PLEG
	// should relist on its own meanwhile.
	OnDisconnect func(err error)
	// OnReconnect is called when a stream is open again after a
	// disconnect. Events between the two are lost (containerd replays its
	// queue only to the first subscriber after it starts), so the caller
	// must relist to catch up.
	OnReconnect func()
	// MaxRetries is how many attempts in a row may fail before the watch
	// gives up; 0 means DefaultEventMaxRetries, negative means forever. An
	// attempt whose stream delivered an event, or stayed open for
	// MaxBackoff, resets the count.
	MaxRetries int
	// InitialBackoff and MaxBackoff bound the wait between attempts;
	// zero means the defaults above.
	InitialBackoff, MaxBackoff time.Duration
	// Clock drives the backoff; nil means the real clock.
	Clock clock.Clock
}

// WatchContainerEvents consumes the container event stream of src until ctx
// is cancelled, calling handle for every event, in order, on the calling
// goroutine. It reopens the stream when it breaks, with exponential
// backoff, and tells the caller through opts when events may have been
// lost. It returns nil when ctx is cancelled, an error wrapping
// ErrUnimplemented at once if the runtime lacks the call (the caller should
// fall back to relisting), and the last error after MaxRetries failed
// attempts in a row.
func WatchContainerEvents(ctx context.Context, src EventSource, opts WatchOptions, handle func(*runtimeapi.ContainerEventResponse)) error {
	opts = opts.withDefaults()
	failures := 0
	backoff := opts.InitialBackoff
	disconnected := false // a stream was open and broke; reconnect is pending
	for {
		if ctx.Err() != nil {
			return nil
		}
		opened, delivered, err := watchOnce(ctx, src, opts, disconnected, handle)
		err = asError(err)
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, ErrUnimplemented) && !delivered {
			return fmt.Errorf("cri: the runtime does not support GetContainerEvents: %w", err)
		}
		if err == nil || err == io.EOF {
			err = errors.New("cri: the runtime closed the container event stream")
		}
		if opened {
			disconnected = true
			if opts.OnDisconnect != nil {
				opts.OnDisconnect(err)
			}
		}
		if delivered {
			failures, backoff = 0, opts.InitialBackoff
		}
		failures++
		if opts.MaxRetries >= 0 && failures > opts.MaxRetries {
			return fmt.Errorf("cri: container event stream failed %d times in a row: %w", failures, err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-opts.Clock.After(backoff):
		}
		backoff = min(2*backoff, opts.MaxBackoff)
	}
}

// watchOnce opens one stream and reads it until it fails. opened reports
// whether the stream opened, delivered whether it carried an event or
// stayed up long enough to count as healthy.
func watchOnce(ctx context.Context, src EventSource, opts WatchOptions, reconnecting bool, handle func(*runtimeapi.ContainerEventResponse)) (opened, delivered bool, err error) {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s, err := src.ContainerEventStream(sctx)
	if err != nil {
		return false, false, err
	}
	if reconnecting && opts.OnReconnect != nil {
		opts.OnReconnect()
	}
	start := opts.Clock.Now()
	for {
		ev, err := s.Recv()
		if err != nil {
			if opts.Clock.Since(start) >= opts.MaxBackoff {
				delivered = true
			}
			return true, delivered, err
		}
		delivered = true
		if ev != nil {
			handle(ev)
		}
	}
}

func (o WatchOptions) withDefaults() WatchOptions {
	if o.MaxRetries == 0 {
		o.MaxRetries = DefaultEventMaxRetries
	}
	if o.InitialBackoff <= 0 {
		o.InitialBackoff = DefaultEventInitialBackoff
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = DefaultEventMaxBackoff
	}
	if o.MaxBackoff < o.InitialBackoff {
		o.MaxBackoff = o.InitialBackoff
	}
	if o.Clock == nil {
		o.Clock = clock.RealClock{}
	}
	return o
}
