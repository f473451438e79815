package critest

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/kube-nodekit/nodekit/cri"
)

// CreateContainer creates a container in a READY sandbox from a present
// image; its log path is the sandbox's log directory joined with the
// config's LogPath.
func (r *Runtime) CreateContainer(_ context.Context, sandboxID string, config *runtimeapi.ContainerConfig, _ *runtimeapi.PodSandboxConfig) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.begin("CreateContainer"); err != nil {
		return "", err
	}
	s, ok := r.sandboxes[sandboxID]
	if !ok {
		return "", notFound("sandbox", sandboxID)
	}
	if s.status.State != runtimeapi.PodSandboxState_SANDBOX_READY {
		return "", status.Errorf(codes.FailedPrecondition, "sandbox %q is not running", sandboxID)
	}
	if config.GetMetadata().GetName() == "" {
		return "", status.Error(codes.InvalidArgument, "container config must include metadata name")
	}
	img := r.findImage(config.GetImage().GetImage())
	if img == nil {
		return "", status.Errorf(codes.NotFound, "failed to get image %q: not found", config.GetImage().GetImage())
	}
	id := r.newID()
	now := r.clock.Now().UnixNano()
	st := &runtimeapi.ContainerStatus{
		Id: id, Metadata: config.Metadata, State: runtimeapi.ContainerState_CONTAINER_CREATED, CreatedAt: now,
		Image:    &runtimeapi.ImageSpec{Image: config.Image.Image, UserSpecifiedImage: config.Image.UserSpecifiedImage},
		ImageRef: img.Id, ImageId: img.Id,
		Labels: maps.Clone(config.Labels), Annotations: maps.Clone(config.Annotations),
		Resources: &runtimeapi.ContainerResources{Linux: config.GetLinux().GetResources()},
	}
	for _, m := range config.Mounts {
		st.Mounts = append(st.Mounts, clone(m))
	}
	if s.config.GetLogDirectory() != "" && config.LogPath != "" {
		st.LogPath = filepath.Join(s.config.LogDirectory, config.LogPath)
	}
	r.containers[id] = &container{status: st, sandbox: sandboxID, config: config}
	r.events.publish(r.event(id, runtimeapi.ContainerEventType_CONTAINER_CREATED_EVENT))
	return id, nil
}

// StartContainer starts a CREATED container; StartHook may make it exit.
func (r *Runtime) StartContainer(_ context.Context, id string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.begin("StartContainer"); err != nil {
		return err
	}
	c, ok := r.containers[id]
	if !ok {
		return notFound("container", id)
	}
	if c.status.State != runtimeapi.ContainerState_CONTAINER_CREATED {
		return status.Errorf(codes.FailedPrecondition, "container %q is in %s state", id, c.status.State)
	}
	if c.status.LogPath != "" {
		if err := os.MkdirAll(filepath.Dir(c.status.LogPath), 0o755); err != nil {
			return status.Errorf(codes.Unknown, "failed to create container log: %v", err)
		}
		f, err := os.OpenFile(c.status.LogPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o640)
		if err != nil {
			return status.Errorf(codes.Unknown, "failed to create container log: %v", err)
		}
		f.Close()
	}
	c.status.State = runtimeapi.ContainerState_CONTAINER_RUNNING
	c.status.StartedAt = r.clock.Now().UnixNano()
	r.events.publish(r.event(id, runtimeapi.ContainerEventType_CONTAINER_STARTED_EVENT))
	if r.StartHook != nil {
		if exit, code := r.StartHook(id, c.config); exit {
			r.exit(id, code, reason(code), "")
		}
	}
	return nil
}

func reason(code int32) string {
	if code == 0 {
		return "Completed"
	}
	return "Error"
}

// Exit makes a running container's process end with code, as the
// process itself would (reason "Completed" for 0, "Error" otherwise).
func (r *Runtime) Exit(id string, code int32) error {
	return r.ExitWithReason(id, code, reason(code), "")
}

// ExitWithReason ends a running container with a given reason and message,
// e.g. "OOMKilled".
func (r *Runtime) ExitWithReason(id string, code int32, why, message string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, ok := r.containers[id]
	if !ok {
		return notFound("container", id)
	}
	if c.status.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
		return fmt.Errorf("critest: container %s is %s, not running", id, c.status.State)
	}
	r.exit(id, code, why, message)
	return nil
}

// exit moves a running container to EXITED. r.mu held.
func (r *Runtime) exit(id string, code int32, why, message string) {
	st := r.containers[id].status
	st.State = runtimeapi.ContainerState_CONTAINER_EXITED
	st.FinishedAt = r.clock.Now().UnixNano()
	st.ExitCode, st.Reason, st.Message = code, why, message
	r.events.publish(r.event(id, runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT))
}

// remove deletes a container. r.mu held.
func (r *Runtime) remove(id string) {
	ev := r.event(id, runtimeapi.ContainerEventType_CONTAINER_DELETED_EVENT)
	delete(r.containers, id)
	r.events.publish(ev)
}

// StopContainer ends a running container as SIGKILL would (exit code 137);
// stopping a container that is not running is not an error.
func (r *Runtime) StopContainer(_ context.Context, id string, _ int64) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.begin("StopContainer"); err != nil {
		return err
	}
	c, ok := r.containers[id]
	if !ok {
		return notFound("container", id)
	}
	if c.status.State == runtimeapi.ContainerState_CONTAINER_RUNNING {
		r.exit(id, 137, "Error", "")
	}
	return nil
}

// RemoveContainer removes a container, killing it if it runs; removing an
// unknown container is not an error.
func (r *Runtime) RemoveContainer(_ context.Context, id string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.begin("RemoveContainer"); err != nil {
		return err
	}
	c, ok := r.containers[id]
	if !ok {
		return nil
	}
	if c.status.State == runtimeapi.ContainerState_CONTAINER_RUNNING {
		r.exit(id, 137, "Error", "")
	}
	r.remove(id)
	return nil
}

// ListContainers lists containers by id, state, sandbox and labels, oldest
// first.
func (r *Runtime) ListContainers(_ context.Context, f *runtimeapi.ContainerFilter) ([]*runtimeapi.Container, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.begin("ListContainers"); err != nil {
		return nil, err
	}
	var out []*runtimeapi.Container
	for id, c := range r.containers {
		st := c.status
		if f.GetId() != "" && f.Id != id || f.GetState() != nil && f.State.State != st.State ||
			f.GetPodSandboxId() != "" && f.PodSandboxId != c.sandbox || !matches(st.Labels, f.GetLabelSelector()) {
			continue
		}
		out = append(out, &runtimeapi.Container{
			Id: id, PodSandboxId: c.sandbox, Metadata: clone(st.Metadata), Image: clone(st.Image),
			ImageRef: st.ImageRef, ImageId: st.ImageId, State: st.State, CreatedAt: st.CreatedAt,
			Labels: maps.Clone(st.Labels), Annotations: maps.Clone(st.Annotations),
		})
	}
	slices.SortFunc(out, func(a, b *runtimeapi.Container) int {
		if a.CreatedAt != b.CreatedAt {
			return cmp.Compare(a.CreatedAt, b.CreatedAt)
		}
		return cmp.Compare(a.Id, b.Id)
	})
	return out, nil
}

// ContainerStatus returns a copy of the container's status.
func (r *Runtime) ContainerStatus(_ context.Context, id string, _ bool) (*runtimeapi.ContainerStatusResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.begin("ContainerStatus"); err != nil {
		return nil, err
	}
	c, ok := r.containers[id]
	if !ok {
		return nil, notFound("container", id)
	}
	return &runtimeapi.ContainerStatusResponse{Status: clone(c.status)}, nil
}

// UpdateContainerResources records the new resources of a container that
// is created or running.
func (r *Runtime) UpdateContainerResources(_ context.Context, id string, res *runtimeapi.ContainerResources) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.begin("UpdateContainerResources"); err != nil {
		return err
	}
	c, ok := r.containers[id]
	if !ok {
		return notFound("container", id)
	}
	if c.status.State == runtimeapi.ContainerState_CONTAINER_EXITED {
		return status.Errorf(codes.FailedPrecondition, "container %q is not running", id)
	}
	c.status.Resources = clone(res)
	return nil
}

// ExecSync runs ExecHook in a running container.
func (r *Runtime) ExecSync(_ context.Context, id string, cmd []string, _ time.Duration) ([]byte, []byte, error) {
	r.mu.Lock()
	if err := r.begin("ExecSync"); err != nil {
		r.mu.Unlock()
		return nil, nil, err
	}
	c, ok := r.containers[id]
	running := ok && c.status.State == runtimeapi.ContainerState_CONTAINER_RUNNING
	hook := r.ExecHook
	r.mu.Unlock()
	switch {
	case !ok:
		return nil, nil, notFound("container", id)
	case !running:
		return nil, nil, status.Errorf(codes.Unknown, "container %q is not running", id)
	case hook == nil:
		return nil, nil, nil
	}
	stdout, stderr, code, err := hook(id, cmd)
	if err != nil {
		return nil, nil, err
	}
	if code != 0 {
		return stdout, stderr, &cri.ExitError{Cmd: cmd, Code: code, Stderr: stderr}
	}
	return stdout, stderr, nil
}
