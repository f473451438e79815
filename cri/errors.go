package cri

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Sentinel errors a caller can branch on with errors.Is. Every error a
// Client method returns for a failed call is an *Error that matches one of
// these when the runtime's gRPC status says so; the gRPC status stays
// reachable too (status.Code(err) works on the wrapped error).
var (
	// ErrNotFound: the sandbox, container or image does not exist
	// (gRPC NotFound, as crierror.IsNotFound in k8s.io/cri-api tests it).
	ErrNotFound = errors.New("not found")
	// ErrUnimplemented: the runtime does not implement the call, e.g.
	// GetContainerEvents on containerd 1.6.
	ErrUnimplemented = errors.New("unimplemented by the runtime")
	// ErrDeadlineExceeded: the per-call timeout (Options.Timeout) or the
	// caller's deadline passed before the runtime answered.
	ErrDeadlineExceeded = errors.New("deadline exceeded")
	// ErrUnavailable: the runtime cannot be reached (its socket is gone or
	// refuses connections). The Client reconnects by itself; retry later.
	ErrUnavailable = errors.New("runtime unavailable")
	// ErrCommandTimedOut: an ExecSync command ran longer than its timeout
	// (k8s.io/cri-client's ErrCommandTimedOut).
	ErrCommandTimedOut = errors.New("command timed out")
	// ErrUnsupportedVersion: the runtime does not speak CRI v1.
	ErrUnsupportedVersion = errors.New("unsupported CRI API version")
)

// Error is a failed CRI call: which operation, on which object, and the
// runtime's gRPC status.
type Error struct {
	// Op is the CRI method, e.g. "ContainerStatus".
	Op string
	// ID names the object of the call (container or sandbox id, image
	// reference); empty for calls without one.
	ID string
	// Code is the gRPC status code the runtime (or the transport) returned.
	Code codes.Code
	// Message is the runtime's message, without the code.
	Message string

	sentinel error // one of the Err* values, or nil
	cause    error // the original gRPC error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("cri: ")
	b.WriteString(e.Op)
	if e.ID != "" {
		b.WriteString(" ")
		b.WriteString(e.ID)
	}
	b.WriteString(": ")
	if e.sentinel != nil {
		b.WriteString(e.sentinel.Error())
		b.WriteString(": ")
	}
	b.WriteString(e.Message)
	return b.String()
}

// Unwrap exposes both the sentinel (for errors.Is) and the gRPC error (for
// status.FromError and errors.As on the original).
func (e *Error) Unwrap() []error {
	if e.sentinel == nil {
		return []error{e.cause}
	}
	return []error{e.sentinel, e.cause}
}

// wrapErr turns the error of a gRPC call into an *Error naming op and id.
// A nil err stays nil.
func wrapErr(op, id string, err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		// Not a status: a context error from our own timeout, or a local
		// failure before the call went out.
		code := codes.Unknown
		switch {
		case errors.Is(err, context.DeadlineExceeded):
			code = codes.DeadlineExceeded
		case errors.Is(err, context.Canceled):
			code = codes.Canceled
		}
		st = status.New(code, err.Error())
	}
	e := &Error{Op: op, ID: id, Code: st.Code(), Message: st.Message(), cause: err}
	switch st.Code() {
	case codes.NotFound:
		e.sentinel = ErrNotFound
	case codes.Unimplemented:
		e.sentinel = ErrUnimplemented
	case codes.DeadlineExceeded:
		e.sentinel = ErrDeadlineExceeded
	case codes.Unavailable:
		e.sentinel = ErrUnavailable
	}
	return e
}

// IsNotFound reports whether err says the object of a CRI call does not
// exist: it matches ErrNotFound or carries gRPC code NotFound (as errors of
// other CRI implementations, such as critest's, do).
func IsNotFound(err error) bool {
	return errors.Is(err, ErrNotFound) || err != nil && Code(err) == codes.NotFound
}

// ExitError is the error ExecSync returns when the command ran and exited
// with a non-zero code (k8s.io/utils/exec.CodeExitError in the kubelet).
type ExitError struct {
	Cmd    []string
	Code   int32
	Stderr []byte
}

func (e *ExitError) Error() string {
	return fmt.Sprintf("cri: command %q exited with %d: %s", strings.Join(e.Cmd, " "), e.Code, e.Stderr)
}

// ExitStatus returns the exit code, as k8s.io/utils/exec.ExitError does.
func (e *ExitError) ExitStatus() int { return int(e.Code) }
