package critest

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/kube-nodekit/nodekit/cri"
)

// eventQueueLimit bounds both the queue kept for the next subscriber and
// each subscriber's buffer, as containerd's 1000-event channels do.
const eventQueueLimit = 1000

// eventHub delivers container events like containerd: while nobody
// listens they are queued, and the next subscriber gets the queue before
// live events; later subscribers see only live events. A subscriber that
// falls 1000 events behind loses events.
type eventHub struct {
	mu      sync.Mutex
	queue   []*runtimeapi.ContainerEventResponse
	subs    map[*eventStream]bool
	dropped int
}

type eventStream struct {
	ctx  context.Context
	ch   chan *runtimeapi.ContainerEventResponse
	done chan struct{}
	once sync.Once
	err  error
}

func (h *eventHub) publish(ev *runtimeapi.ContainerEventResponse) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.subs) == 0 {
		if len(h.queue) == eventQueueLimit {
			h.queue = h.queue[1:]
			h.dropped++
		}
		h.queue = append(h.queue, ev)
		return
	}
	for s := range h.subs {
		select {
		case s.ch <- proto.Clone(ev).(*runtimeapi.ContainerEventResponse):
		default:
			h.dropped++
		}
	}
}

func (h *eventHub) subscribe(ctx context.Context) *eventStream {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := &eventStream{ctx: ctx, ch: make(chan *runtimeapi.ContainerEventResponse, eventQueueLimit), done: make(chan struct{})}
	for _, ev := range h.queue {
		s.ch <- ev
	}
	h.queue = nil
	if h.subs == nil {
		h.subs = map[*eventStream]bool{}
	}
	h.subs[s] = true
	return s
}

func (h *eventHub) unsubscribe(s *eventStream, err error) {
	h.mu.Lock()
	delete(h.subs, s)
	h.mu.Unlock()
	s.once.Do(func() { s.err = err; close(s.done) })
}

func (s *eventStream) Recv() (*runtimeapi.ContainerEventResponse, error) {
	select {
	case ev := <-s.ch:
		return ev, nil
	default:
	}
	select {
	case ev := <-s.ch:
		return ev, nil
	case <-s.done:
		return nil, s.err
	case <-s.ctx.Done():
		return nil, status.FromContextError(s.ctx.Err()).Err()
	}
}

// ContainerEventStream subscribes to container events. With
// EventsUnimplemented set, or an error injected for "GetContainerEvents",
// the stream fails on its first Recv, as a gRPC runtime's does.
func (r *Runtime) ContainerEventStream(ctx context.Context) (cri.EventStream, error) {
	r.mu.Lock()
	err := r.begin("GetContainerEvents")
	if err == nil && r.EventsUnimplemented {
		err = status.Error(codes.Unimplemented, "method GetContainerEvents not implemented")
	}
	r.mu.Unlock()
	if err != nil {
		dead := &eventStream{ctx: ctx, done: make(chan struct{}), err: err}
		close(dead.done)
		return dead, nil
	}
	s := r.events.subscribe(ctx)
	go func() {
		select {
		case <-ctx.Done():
			r.events.unsubscribe(s, status.FromContextError(ctx.Err()).Err())
		case <-s.done:
		}
	}()
	return s, nil
}

// BreakEventStreams ends every open event stream with codes.Unavailable, as
// a runtime restart does; events until the next subscription are queued.
func (r *Runtime) BreakEventStreams() {
	r.events.mu.Lock()
	subs := make([]*eventStream, 0, len(r.events.subs))
	for s := range r.events.subs {
		subs = append(subs, s)
	}
	r.events.mu.Unlock()
	for _, s := range subs {
		r.events.unsubscribe(s, status.Error(codes.Unavailable, "error reading from server: EOF"))
	}
}

// DroppedEvents is how many events no subscriber received.
func (r *Runtime) DroppedEvents() int {
	r.events.mu.Lock()
	defer r.events.mu.Unlock()
	return r.events.dropped
}

// event builds the event containerd sends: the container, its sandbox's
// status and the statuses of the sandbox's containers. r.mu held.
func (r *Runtime) event(id string, typ runtimeapi.ContainerEventType) *runtimeapi.ContainerEventResponse {
	c := r.containers[id]
	ev := &runtimeapi.ContainerEventResponse{ContainerId: id, ContainerEventType: typ, CreatedAt: r.clock.Now().UnixNano()}
	if s, ok := r.sandboxes[c.sandbox]; ok {
		ev.PodSandboxStatus = proto.Clone(s.status).(*runtimeapi.PodSandboxStatus)
	}
	for _, other := range r.containers {
		if other.sandbox == c.sandbox {
			ev.ContainersStatuses = append(ev.ContainersStatuses, proto.Clone(other.status).(*runtimeapi.ContainerStatus))
		}
	}
	return ev
}

// Print writes text to a running container's log as the runtime would:
// one full record per line, a partial record for text after the last
// newline. stream is runtimeapi.Stdout or runtimeapi.Stderr.
func (r *Runtime) Print(id string, stream runtimeapi.LogStreamType, text string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, ok := r.containers[id]
	if !ok {
		return notFound("container", id)
	}
	if c.status.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
		return fmt.Errorf("critest: container %s is not running", id)
	}
	if c.status.LogPath == "" {
		return fmt.Errorf("critest: container %s has no log path", id)
	}
	var buf []byte
	now := r.clock.Now()
	for text != "" {
		line, rest, full := strings.Cut(text, "\n")
		buf = cri.AppendLogLine(buf, now, stream, !full, []byte(line))
		text = rest
	}
	f, err := os.OpenFile(c.status.LogPath, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = f.Write(buf)
	return err
}

// Exec, Attach and PortForward answer with a URL on an address nobody
// serves, after the runtime's argument checks.
func (r *Runtime) Exec(_ context.Context, req *runtimeapi.ExecRequest) (*runtimeapi.ExecResponse, error) {
	if err := r.streamCheck("Exec", req.GetContainerId(), req.GetStdin() || req.GetStdout() || req.GetStderr()); err != nil {
		return nil, err
	}
	return &runtimeapi.ExecResponse{Url: "http://127.0.0.1:0/exec/" + req.ContainerId}, nil
}

// Attach: see Exec.
func (r *Runtime) Attach(_ context.Context, req *runtimeapi.AttachRequest) (*runtimeapi.AttachResponse, error) {
	if err := r.streamCheck("Attach", req.GetContainerId(), req.GetStdin() || req.GetStdout() || req.GetStderr()); err != nil {
		return nil, err
	}
	return &runtimeapi.AttachResponse{Url: "http://127.0.0.1:0/attach/" + req.ContainerId}, nil
}

// PortForward: see Exec.
func (r *Runtime) PortForward(_ context.Context, req *runtimeapi.PortForwardRequest) (*runtimeapi.PortForwardResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.begin("PortForward"); err != nil {
		return nil, err
	}
	s, ok := r.sandboxes[req.GetPodSandboxId()]
	if !ok {
		return nil, notFound("sandbox", req.GetPodSandboxId())
	}
	if s.status.State != runtimeapi.PodSandboxState_SANDBOX_READY {
		return nil, status.Errorf(codes.FailedPrecondition, "sandbox %q is not running", req.PodSandboxId)
	}
	return &runtimeapi.PortForwardResponse{Url: "http://127.0.0.1:0/portforward/" + req.PodSandboxId}, nil
}

func (r *Runtime) streamCheck(op, id string, anyStream bool) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.begin(op); err != nil {
		return err
	}
	if !anyStream {
		return status.Error(codes.InvalidArgument, "one of stdin, stdout, or stderr must be set")
	}
	c, ok := r.containers[id]
	if !ok {
		return notFound("container", id)
	}
	if c.status.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
		return status.Errorf(codes.FailedPrecondition, "container %q is not running", id)
	}
	return nil
}
