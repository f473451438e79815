// Package critest is an in-memory CRI runtime for tests of code that uses
// package cri: a node agent's sync loop, a PLEG, an image manager. It keeps
// sandboxes, containers and images, enforces the CRI state machine
// (containers go CREATED -> RUNNING -> EXITED, sandboxes READY -> NOTREADY),
// answers the calls the way containerd does (NotFound for unknown objects,
// idempotent removals), emits container events the way containerd does
// (queued for the first subscriber), writes CRI-format logs, and lets the
// test decide what a container's process does: exit with a code, print,
// or run until stopped. Failures are injected per call.
//
// It implements cri.RuntimeService, cri.ImageService, cri.Streamer and
// cri.EventSource. All timestamps come from an injected clock.
package critest

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/utils/clock"

	"github.com/kube-nodekit/nodekit/cri"
)

// Runtime is the fake. The zero value is not usable; call New.
type Runtime struct {
	// StartHook, if set, runs when a container starts. Returning exit true
	// makes the container exit at once with code (a command that ends).
	StartHook func(id string, config *runtimeapi.ContainerConfig) (exit bool, code int32)
	// ExecHook, if set, answers ExecSync; by default every command
	// succeeds with no output.
	ExecHook func(id string, cmd []string) (stdout, stderr []byte, code int32, err error)
	// EventsUnimplemented makes GetContainerEvents fail with
	// codes.Unimplemented, as on containerd 1.6.
	EventsUnimplemented bool

	mu         sync.Mutex
	clock      clock.Clock
	next       int
	sandboxes  map[string]*sandbox
	containers map[string]*container
	images     map[string]*runtimeapi.Image // by id
	registry   map[string]registryImage     // pullable, by normalized reference
	errs       map[string][]error
	calls      []string
	events     eventHub
}

type sandbox struct {
	status *runtimeapi.PodSandboxStatus
	config *runtimeapi.PodSandboxConfig
}

type container struct {
	status  *runtimeapi.ContainerStatus
	sandbox string
	config  *runtimeapi.ContainerConfig
}

// New returns an empty runtime on the given clock (nil: the real one).
func New(clk clock.Clock) *Runtime {
	if clk == nil {
		clk = clock.RealClock{}
	}
	return &Runtime{
		clock:      clk,
		sandboxes:  map[string]*sandbox{},
		containers: map[string]*container{},
		images:     map[string]*runtimeapi.Image{},
		registry:   map[string]registryImage{},
		errs:       map[string][]error{},
	}
}

// InjectError makes the next call of op (a CRI method name such as
// "StartContainer") fail with err; several injections fail that many calls.
// Use status.Error for gRPC codes, as a runtime would send them.
func (r *Runtime) InjectError(op string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs[op] = append(r.errs[op], err)
}

// Calls returns the CRI methods called so far, in order.
func (r *Runtime) Calls() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.calls)
}

// begin records a call and returns an injected error, if any. r.mu held.
func (r *Runtime) begin(op string) error {
	r.calls = append(r.calls, op)
	if errs := r.errs[op]; len(errs) > 0 {
		r.errs[op] = errs[1:]
		return errs[0]
	}
	return nil
}

func (r *Runtime) newID() string {
	r.next++
	return fmt.Sprintf("%064x", r.next)
}

func notFound(kind, id string) error {
	return status.Errorf(codes.NotFound, "%s %q: not found", kind, id)
}

// Version reports the fake as CRI v1.
func (r *Runtime) Version(context.Context) (*runtimeapi.VersionResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.begin("Version"); err != nil {
		return nil, err
	}
	return &runtimeapi.VersionResponse{Version: "0.1.0", RuntimeName: "critest", RuntimeVersion: "1.0.0", RuntimeApiVersion: "v1"}, nil
}

// Status reports the runtime and its network ready.
func (r *Runtime) Status(context.Context, bool) (*runtimeapi.StatusResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.begin("Status"); err != nil {
		return nil, err
	}
	return &runtimeapi.StatusResponse{Status: &runtimeapi.RuntimeStatus{Conditions: []*runtimeapi.RuntimeCondition{
		{Type: runtimeapi.RuntimeReady, Status: true}, {Type: runtimeapi.NetworkReady, Status: true},
	}}}, nil
}

func matches(labels, selector map[string]string) bool {
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

var (
	_ cri.RuntimeService = (*Runtime)(nil)
	_ cri.ImageService   = (*Runtime)(nil)
	_ cri.Streamer       = (*Runtime)(nil)
	_ cri.EventSource    = (*Runtime)(nil)
)

// clone deep-copies a CRI message; nil stays nil.
func clone[T proto.Message](m T) T {
	if !m.ProtoReflect().IsValid() {
		return m
	}
	return proto.Clone(m).(T)
}
