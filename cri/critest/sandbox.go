package critest

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// RunPodSandbox creates a READY sandbox; it gets an IP from 10.244.0.0/16
// unless it uses the host network.
func (r *Runtime) RunPodSandbox(_ context.Context, config *runtimeapi.PodSandboxConfig, handler string) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.begin("RunPodSandbox"); err != nil {
		return "", err
	}
	md := config.GetMetadata()
	if md.GetName() == "" || md.GetNamespace() == "" || md.GetUid() == "" {
		return "", status.Error(codes.InvalidArgument, "sandbox config must include metadata name, namespace and uid")
	}
	for _, s := range r.sandboxes {
		if m := s.status.Metadata; m.Name == md.Name && m.Namespace == md.Namespace && m.Uid == md.Uid && m.Attempt == md.Attempt {
			return "", status.Errorf(codes.AlreadyExists, "sandbox name %q is reserved", md.Name+"_"+md.Namespace)
		}
	}
	id := r.newID()
	st := &runtimeapi.PodSandboxStatus{
		Id: id, Metadata: md, State: runtimeapi.PodSandboxState_SANDBOX_READY,
		CreatedAt:      r.clock.Now().UnixNano(),
		Network:        &runtimeapi.PodSandboxNetworkStatus{},
		Linux:          &runtimeapi.LinuxPodSandboxStatus{Namespaces: &runtimeapi.Namespace{Options: config.GetLinux().GetSecurityContext().GetNamespaceOptions()}},
		Labels:         maps.Clone(config.Labels),
		Annotations:    maps.Clone(config.Annotations),
		RuntimeHandler: handler,
	}
	if config.GetLinux().GetSecurityContext().GetNamespaceOptions().GetNetwork() != runtimeapi.NamespaceMode_NODE {
		st.Network.Ip = fmt.Sprintf("10.244.%d.%d", r.next/250, r.next%250+1)
	}
	r.sandboxes[id] = &sandbox{status: st, config: config}
	return id, nil
}

// StopPodSandbox kills the sandbox's running containers (exit code 137) and
// makes it NOTREADY. Stopping a stopped sandbox is not an error.
func (r *Runtime) StopPodSandbox(_ context.Context, id string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.begin("StopPodSandbox"); err != nil {
		return err
	}
	s, ok := r.sandboxes[id]
	if !ok {
		return notFound("sandbox", id)
	}
	for cid, c := range r.containers {
		if c.sandbox == id && c.status.State == runtimeapi.ContainerState_CONTAINER_RUNNING {
			r.exit(cid, 137, "Error", "")
		}
	}
	s.status.State = runtimeapi.PodSandboxState_SANDBOX_NOTREADY
	return nil
}

// RemovePodSandbox removes the sandbox and its containers; removing an
// unknown sandbox is not an error.
func (r *Runtime) RemovePodSandbox(_ context.Context, id string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.begin("RemovePodSandbox"); err != nil {
		return err
	}
	if _, ok := r.sandboxes[id]; !ok {
		return nil
	}
	for cid, c := range r.containers {
		if c.sandbox == id {
			if c.status.State == runtimeapi.ContainerState_CONTAINER_RUNNING {
				r.exit(cid, 137, "Error", "")
			}
			r.remove(cid)
		}
	}
	delete(r.sandboxes, id)
	return nil
}

// PodSandboxStatus returns a copy of the sandbox's status.
func (r *Runtime) PodSandboxStatus(_ context.Context, id string, _ bool) (*runtimeapi.PodSandboxStatusResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.begin("PodSandboxStatus"); err != nil {
		return nil, err
	}
	s, ok := r.sandboxes[id]
	if !ok {
		return nil, notFound("sandbox", id)
	}
	return &runtimeapi.PodSandboxStatusResponse{Status: clone(s.status)}, nil
}

// ListPodSandbox lists sandboxes by id, state and labels, oldest first.
func (r *Runtime) ListPodSandbox(_ context.Context, f *runtimeapi.PodSandboxFilter) ([]*runtimeapi.PodSandbox, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.begin("ListPodSandbox"); err != nil {
		return nil, err
	}
	var out []*runtimeapi.PodSandbox
	for id, s := range r.sandboxes {
		st := s.status
		if f.GetId() != "" && f.Id != id || f.GetState() != nil && f.State.State != st.State || !matches(st.Labels, f.GetLabelSelector()) {
			continue
		}
		out = append(out, &runtimeapi.PodSandbox{
			Id: id, Metadata: clone(st.Metadata), State: st.State, CreatedAt: st.CreatedAt,
			Labels: maps.Clone(st.Labels), Annotations: maps.Clone(st.Annotations), RuntimeHandler: st.RuntimeHandler,
		})
	}
	slices.SortFunc(out, func(a, b *runtimeapi.PodSandbox) int {
		if a.CreatedAt != b.CreatedAt {
			return cmp.Compare(a.CreatedAt, b.CreatedAt)
		}
		return cmp.Compare(a.Id, b.Id)
	})
	return out, nil
}
