package cri_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/kube-nodekit/nodekit/cri"
	"github.com/kube-nodekit/nodekit/cri/critest"
)

// eventLog collects what WatchContainerEvents reports, for assertions
// from the test goroutine.
type eventLog struct {
	mu     sync.Mutex
	events []string // "<type> <container>", "disconnect", "reconnect"
	wake   chan struct{}
}

func newEventLog() *eventLog { return &eventLog{wake: make(chan struct{}, 1)} }

func (l *eventLog) add(s string) {
	l.mu.Lock()
	l.events = append(l.events, s)
	l.mu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

func (l *eventLog) options() cri.WatchOptions {
	return cri.WatchOptions{
		OnDisconnect:   func(error) { l.add("disconnect") },
		OnReconnect:    func() { l.add("reconnect") },
		InitialBackoff: time.Millisecond, MaxBackoff: time.Millisecond,
	}
}

func (l *eventLog) handle(ev *runtimeapi.ContainerEventResponse) {
	l.add(ev.ContainerEventType.String() + " " + ev.ContainerId[len(ev.ContainerId)-2:])
}

// waitFor waits until the log holds n entries, and returns them.
func (l *eventLog) waitFor(ctx context.Context, t *testing.T, n int) []string {
	t.Helper()
	for {
		l.mu.Lock()
		got := append([]string(nil), l.events...)
		l.mu.Unlock()
		if len(got) >= n {
			return got
		}
		select {
		case <-l.wake:
		case <-ctx.Done():
			t.Fatalf("got %d events %q, want %d: %v", len(got), got, n, ctx.Err())
		}
	}
}

func fakePod(t *testing.T, r *critest.Runtime) (sandboxID string) {
	t.Helper()
	if _, err := r.AddImage("busybox:1.36", 1000); err != nil {
		t.Fatal(err)
	}
	id, err := r.RunPodSandbox(context.Background(), &runtimeapi.PodSandboxConfig{
		Metadata: &runtimeapi.PodSandboxMetadata{Name: "p", Namespace: "ns", Uid: "u"},
	}, "")
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func fakeContainer(t *testing.T, r *critest.Runtime, sandboxID, name string) string {
	t.Helper()
	ctx := context.Background()
	id, err := r.CreateContainer(ctx, sandboxID, &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: name},
		Image:    &runtimeapi.ImageSpec{Image: "busybox:1.36"},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.StartContainer(ctx, id); err != nil {
		t.Fatal(err)
	}
	return id
}

// TestWatchContainerEvents: events arrive in order; a broken stream is
// reported, reopened and reported again, so the caller knows to relist.
func TestWatchContainerEvents(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r := critest.New(nil)
	sb := fakePod(t, r)
	log := newEventLog()
	done := make(chan error, 1)
	wctx, stop := context.WithCancel(ctx)
	go func() { done <- cri.WatchContainerEvents(wctx, r, log.options(), log.handle) }()

	id := fakeContainer(t, r, sb, "a")
	if err := r.Exit(id, 3); err != nil {
		t.Fatal(err)
	}
	got := log.waitFor(ctx, t, 3)
	want := []string{"CONTAINER_CREATED_EVENT " + id[62:], "CONTAINER_STARTED_EVENT " + id[62:], "CONTAINER_STOPPED_EVENT " + id[62:]}
	if !equal(got, want) {
		t.Fatalf("events = %q, want %q", got, want)
	}

	r.BreakEventStreams()
	log.waitFor(ctx, t, 5) // disconnect, reconnect
	id2 := fakeContainer(t, r, sb, "b")
	got = log.waitFor(ctx, t, 7)
	want = append(want, "disconnect", "reconnect", "CONTAINER_CREATED_EVENT "+id2[62:], "CONTAINER_STARTED_EVENT "+id2[62:])
	if !equal(got, want) {
		t.Fatalf("events = %q, want %q", got, want)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatalf("WatchContainerEvents after cancel = %v, want nil", err)
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestWatchUnimplemented: a runtime without the stream (containerd 1.6)
// ends the watch at once with ErrUnimplemented and no callbacks.
func TestWatchUnimplemented(t *testing.T) {
	r := critest.New(nil)
	r.EventsUnimplemented = true
	log := newEventLog()
	err := cri.WatchContainerEvents(context.Background(), r, log.options(), log.handle)
	if !errors.Is(err, cri.ErrUnimplemented) {
		t.Fatalf("err = %v, want ErrUnimplemented", err)
	}
	if len(log.events) != 0 {
		t.Fatalf("callbacks for an unsupported runtime: %q", log.events)
	}
	if calls := r.Calls(); len(calls) != 1 {
		t.Fatalf("calls = %q, want one attempt", calls)
	}
}

// TestWatchGivesUp: MaxRetries failed attempts in a row end the watch with
// the last error.
func TestWatchGivesUp(t *testing.T) {
	r := critest.New(nil)
	for range 3 {
		r.InjectError("GetContainerEvents", status.Error(codes.Unavailable, "connection refused"))
	}
	opts := newEventLog().options()
	opts.MaxRetries = 2
	err := cri.WatchContainerEvents(context.Background(), r, opts, func(*runtimeapi.ContainerEventResponse) {})
	if !errors.Is(err, cri.ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable after retries", err)
	}
	if n := len(r.Calls()); n != 3 {
		t.Fatalf("%d attempts, want 3 (the first and 2 retries)", n)
	}
}

// TestWatchQueuedForFirstSubscriber pins containerd's delivery: events
// from before anyone listened go to the first subscriber only.
func TestWatchQueuedForFirstSubscriber(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r := critest.New(nil)
	sb := fakePod(t, r)
	fakeContainer(t, r, sb, "early")
	first, err := r.ContainerEventStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	second, err := r.ContainerEventStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []runtimeapi.ContainerEventType{runtimeapi.ContainerEventType_CONTAINER_CREATED_EVENT, runtimeapi.ContainerEventType_CONTAINER_STARTED_EVENT} {
		ev, err := first.Recv()
		if err != nil || ev.ContainerEventType != want {
			t.Fatalf("first subscriber: %v, %v; want %v", ev, err, want)
		}
	}
	late := fakeContainer(t, r, sb, "late")
	ev, err := second.Recv()
	if err != nil || ev.ContainerId != late {
		t.Fatalf("second subscriber's first event: %v, %v; want the late container's", ev, err)
	}
	if ev.PodSandboxStatus.GetMetadata().GetUid() != "u" || len(ev.ContainersStatuses) != 2 {
		t.Errorf("event lacks the sandbox status or container statuses: %v", ev)
	}
}
