package cri

import (
	"context"
	"errors"
	"fmt"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// The RuntimeService calls. Each runs under Options.Timeout (RunPodSandbox
// under twice that, as the kubelet does) and returns an *Error naming the
// call and the object on failure.

// RunPodSandbox creates and starts a pod sandbox and returns its id.
func (c *Client) RunPodSandbox(ctx context.Context, config *runtimeapi.PodSandboxConfig, runtimeHandler string) (string, error) {
	id := config.GetMetadata().GetNamespace() + "/" + config.GetMetadata().GetName()
	resp, err := call(ctx, c, 2, "RunPodSandbox", id, func(ctx context.Context) (*runtimeapi.RunPodSandboxResponse, error) {
		return c.rt.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: config, RuntimeHandler: runtimeHandler})
	})
	if err != nil {
		return "", err
	}
	if resp.PodSandboxId == "" {
		return "", fmt.Errorf("cri: RunPodSandbox %s: the runtime returned an empty sandbox id", id)
	}
	return resp.PodSandboxId, nil
}

// StopPodSandbox stops the sandbox's containers and tears down its network.
func (c *Client) StopPodSandbox(ctx context.Context, podSandboxID string) error {
	_, err := call(ctx, c, 1, "StopPodSandbox", podSandboxID, func(ctx context.Context) (*runtimeapi.StopPodSandboxResponse, error) {
		return c.rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: podSandboxID})
	})
	return err
}

// RemovePodSandbox removes the sandbox and its containers.
func (c *Client) RemovePodSandbox(ctx context.Context, podSandboxID string) error {
	_, err := call(ctx, c, 1, "RemovePodSandbox", podSandboxID, func(ctx context.Context) (*runtimeapi.RemovePodSandboxResponse, error) {
		return c.rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: podSandboxID})
	})
	return err
}

// PodSandboxStatus returns the sandbox's status.
func (c *Client) PodSandboxStatus(ctx context.Context, podSandboxID string, verbose bool) (*runtimeapi.PodSandboxStatusResponse, error) {
	resp, err := call(ctx, c, 1, "PodSandboxStatus", podSandboxID, func(ctx context.Context) (*runtimeapi.PodSandboxStatusResponse, error) {
		return c.rt.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: podSandboxID, Verbose: verbose})
	})
	if err == nil && resp.GetStatus() == nil {
		err = fmt.Errorf("cri: PodSandboxStatus %s: the runtime returned no status", podSandboxID)
	}
	return resp, err
}

// ListPodSandbox lists the sandboxes that match filter (nil: all).
func (c *Client) ListPodSandbox(ctx context.Context, filter *runtimeapi.PodSandboxFilter) ([]*runtimeapi.PodSandbox, error) {
	resp, err := call(ctx, c, 1, "ListPodSandbox", "", func(ctx context.Context) (*runtimeapi.ListPodSandboxResponse, error) {
		return c.rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{Filter: filter})
	})
	return resp.GetItems(), err
}

// CreateContainer creates a container in a sandbox and returns its id.
func (c *Client) CreateContainer(ctx context.Context, podSandboxID string, config *runtimeapi.ContainerConfig, sandboxConfig *runtimeapi.PodSandboxConfig) (string, error) {
	id := podSandboxID + "/" + config.GetMetadata().GetName()
	resp, err := call(ctx, c, 1, "CreateContainer", id, func(ctx context.Context) (*runtimeapi.CreateContainerResponse, error) {
		return c.rt.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: podSandboxID, Config: config, SandboxConfig: sandboxConfig})
	})
	if err != nil {
		return "", err
	}
	if resp.ContainerId == "" {
		return "", fmt.Errorf("cri: CreateContainer %s: the runtime returned an empty container id", id)
	}
	return resp.ContainerId, nil
}

// StartContainer starts a created container.
func (c *Client) StartContainer(ctx context.Context, containerID string) error {
	_, err := call(ctx, c, 1, "StartContainer", containerID, func(ctx context.Context) (*runtimeapi.StartContainerResponse, error) {
		return c.rt.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: containerID})
	})
	return err
}

// StopContainer stops a running container, killing it after timeout
// seconds. The call's deadline is Options.Timeout plus that grace period,
// as in k8s.io/cri-client.
func (c *Client) StopContainer(ctx context.Context, containerID string, timeout int64) error {
	ctx, cancel := context.WithTimeout(ctx, c.opts.Timeout+secondsDuration(timeout))
	defer cancel()
	_, err := call(ctx, c, 0, "StopContainer", containerID, func(ctx context.Context) (*runtimeapi.StopContainerResponse, error) {
		return c.rt.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: containerID, Timeout: timeout})
	})
	return err
}

// RemoveContainer removes a container (stopping it first if it runs).
func (c *Client) RemoveContainer(ctx context.Context, containerID string) error {
	_, err := call(ctx, c, 1, "RemoveContainer", containerID, func(ctx context.Context) (*runtimeapi.RemoveContainerResponse, error) {
		return c.rt.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: containerID})
	})
	return err
}

// ListContainers lists the containers that match filter (nil: all).
func (c *Client) ListContainers(ctx context.Context, filter *runtimeapi.ContainerFilter) ([]*runtimeapi.Container, error) {
	resp, err := call(ctx, c, 1, "ListContainers", "", func(ctx context.Context) (*runtimeapi.ListContainersResponse, error) {
		return c.rt.ListContainers(ctx, &runtimeapi.ListContainersRequest{Filter: filter})
	})
	return resp.GetContainers(), err
}

// ContainerStatus returns the container's status.
func (c *Client) ContainerStatus(ctx context.Context, containerID string, verbose bool) (*runtimeapi.ContainerStatusResponse, error) {
	resp, err := call(ctx, c, 1, "ContainerStatus", containerID, func(ctx context.Context) (*runtimeapi.ContainerStatusResponse, error) {
		return c.rt.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: containerID, Verbose: verbose})
	})
	if err == nil && resp.GetStatus() == nil {
		err = fmt.Errorf("cri: ContainerStatus %s: %w", containerID, errStatusNil)
	}
	return resp, err
}

var errStatusNil = errors.New("the runtime returned no status")

// UpdateContainerResources changes a running container's resources.
func (c *Client) UpdateContainerResources(ctx context.Context, containerID string, resources *runtimeapi.ContainerResources) error {
	_, err := call(ctx, c, 1, "UpdateContainerResources", containerID, func(ctx context.Context) (*runtimeapi.UpdateContainerResourcesResponse, error) {
		return c.rt.UpdateContainerResources(ctx, &runtimeapi.UpdateContainerResourcesRequest{
			ContainerId: containerID, Linux: resources.GetLinux(), Windows: resources.GetWindows(),
		})
	})
	return err
}

// ReopenContainerLog asks the runtime to reopen the container's log file
// (after the caller rotated it).
func (c *Client) ReopenContainerLog(ctx context.Context, containerID string) error {
	_, err := call(ctx, c, 1, "ReopenContainerLog", containerID, func(ctx context.Context) (*runtimeapi.ReopenContainerLogResponse, error) {
		return c.rt.ReopenContainerLog(ctx, &runtimeapi.ReopenContainerLogRequest{ContainerId: containerID})
	})
	return err
}

// ContainerStats returns the container's resource usage.
func (c *Client) ContainerStats(ctx context.Context, containerID string) (*runtimeapi.ContainerStats, error) {
	resp, err := call(ctx, c, 1, "ContainerStats", containerID, func(ctx context.Context) (*runtimeapi.ContainerStatsResponse, error) {
		return c.rt.ContainerStats(ctx, &runtimeapi.ContainerStatsRequest{ContainerId: containerID})
	})
	return resp.GetStats(), err
}

// ListContainerStats returns the resource usage of the containers that
// match filter (nil: all).
func (c *Client) ListContainerStats(ctx context.Context, filter *runtimeapi.ContainerStatsFilter) ([]*runtimeapi.ContainerStats, error) {
	resp, err := call(ctx, c, 1, "ListContainerStats", "", func(ctx context.Context) (*runtimeapi.ListContainerStatsResponse, error) {
		return c.rt.ListContainerStats(ctx, &runtimeapi.ListContainerStatsRequest{Filter: filter})
	})
	return resp.GetStats(), err
}
