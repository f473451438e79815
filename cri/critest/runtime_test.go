package critest_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/kube-nodekit/nodekit/cri"
	"github.com/kube-nodekit/nodekit/cri/critest"
)

var ctx = context.Background()

func sandboxConfig(name string) *runtimeapi.PodSandboxConfig {
	return &runtimeapi.PodSandboxConfig{
		Metadata: &runtimeapi.PodSandboxMetadata{Name: name, Namespace: "ns", Uid: "uid-" + name},
		Labels:   map[string]string{cri.PodUIDLabel: "uid-" + name},
	}
}

func containerConfig(name string) *runtimeapi.ContainerConfig {
	return &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: name},
		Image:    &runtimeapi.ImageSpec{Image: "busybox:1.36"},
		Labels:   map[string]string{cri.ContainerNameLabel: name},
	}
}

func state(t *testing.T, r *critest.Runtime, id string) *runtimeapi.ContainerStatus {
	t.Helper()
	resp, err := r.ContainerStatus(ctx, id, false)
	if err != nil {
		t.Fatal(err)
	}
	return resp.Status
}

// TestLifecycle walks the CRI state machine with a fake clock.
func TestLifecycle(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Unix(1000, 0))
	r := critest.New(clk)
	if _, err := r.AddImage("busybox:1.36", 100); err != nil {
		t.Fatal(err)
	}
	sb, err := r.RunPodSandbox(ctx, sandboxConfig("p"), "")
	if err != nil {
		t.Fatal(err)
	}
	st, err := r.PodSandboxStatus(ctx, sb, false)
	if err != nil || st.Status.State != runtimeapi.PodSandboxState_SANDBOX_READY || st.Status.Network.Ip == "" {
		t.Fatalf("sandbox status = %v, %v", st, err)
	}
	if _, err := r.RunPodSandbox(ctx, sandboxConfig("p"), ""); status.Code(err) != codes.AlreadyExists {
		t.Errorf("same sandbox twice: err = %v, want AlreadyExists", err)
	}

	id, err := r.CreateContainer(ctx, sb, containerConfig("app"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if s := state(t, r, id); s.State != runtimeapi.ContainerState_CONTAINER_CREATED || s.CreatedAt != time.Unix(1000, 0).UnixNano() {
		t.Fatalf("after create: %v", s)
	}
	if err := r.Exit(id, 0); err == nil {
		t.Error("Exit of a created container: no error")
	}
	clk.Step(time.Second)
	if err := r.StartContainer(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := r.StartContainer(ctx, id); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("start twice: err = %v", err)
	}
	clk.Step(time.Second)
	if err := r.Exit(id, 3); err != nil {
		t.Fatal(err)
	}
	s := state(t, r, id)
	if s.State != runtimeapi.ContainerState_CONTAINER_EXITED || s.ExitCode != 3 || s.Reason != "Error" ||
		s.StartedAt != time.Unix(1001, 0).UnixNano() || s.FinishedAt != time.Unix(1002, 0).UnixNano() {
		t.Fatalf("after exit 3: %v", s)
	}

	// A second container, killed by stopping the sandbox.
	id2, _ := r.CreateContainer(ctx, sb, containerConfig("other"), nil)
	if err := r.StartContainer(ctx, id2); err != nil {
		t.Fatal(err)
	}
	running := &runtimeapi.ContainerStateValue{State: runtimeapi.ContainerState_CONTAINER_RUNNING}
	if list, _ := r.ListContainers(ctx, &runtimeapi.ContainerFilter{State: running}); len(list) != 1 || list[0].Id != id2 {
		t.Fatalf("running containers = %v", list)
	}
	if list, _ := r.ListContainers(ctx, &runtimeapi.ContainerFilter{LabelSelector: map[string]string{cri.ContainerNameLabel: "app"}}); len(list) != 1 || list[0].Id != id {
		t.Fatalf("containers by label = %v", list)
	}
	if err := r.StopPodSandbox(ctx, sb); err != nil {
		t.Fatal(err)
	}
	if s := state(t, r, id2); s.ExitCode != 137 || s.State != runtimeapi.ContainerState_CONTAINER_EXITED {
		t.Fatalf("after StopPodSandbox: %v", s)
	}
	if _, err := r.CreateContainer(ctx, sb, containerConfig("late"), nil); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("create in a stopped sandbox: err = %v", err)
	}
	if err := r.RemovePodSandbox(ctx, sb); err != nil {
		t.Fatal(err)
	}
	if _, err := r.ContainerStatus(ctx, id, false); !cri.IsNotFound(err) {
		t.Errorf("status after remove: err = %v, want not found", err)
	}
	if err := r.RemovePodSandbox(ctx, sb); err != nil {
		t.Errorf("removing twice: %v", err)
	}
	if err := r.StopPodSandbox(ctx, sb); !cri.IsNotFound(err) {
		t.Errorf("stopping a removed sandbox: %v", err)
	}
}

func TestHooksAndErrors(t *testing.T) {
	r := critest.New(nil)
	r.AddImage("busybox:1.36", 1)
	r.StartHook = func(id string, c *runtimeapi.ContainerConfig) (bool, int32) {
		return c.Metadata.Name == "job", 0
	}
	r.ExecHook = func(id string, cmd []string) ([]byte, []byte, int32, error) {
		if cmd[0] == "fail" {
			return nil, []byte("nope"), 2, nil
		}
		return []byte("ok"), nil, 0, nil
	}
	sb, _ := r.RunPodSandbox(ctx, sandboxConfig("p"), "")
	job, _ := r.CreateContainer(ctx, sb, containerConfig("job"), nil)
	if err := r.StartContainer(ctx, job); err != nil {
		t.Fatal(err)
	}
	if s := state(t, r, job); s.State != runtimeapi.ContainerState_CONTAINER_EXITED || s.Reason != "Completed" {
		t.Fatalf("job: %v", s)
	}
	svc, _ := r.CreateContainer(ctx, sb, containerConfig("svc"), nil)
	r.StartContainer(ctx, svc)
	if out, _, err := r.ExecSync(ctx, svc, []string{"true"}, 0); err != nil || string(out) != "ok" {
		t.Errorf("ExecSync = %q, %v", out, err)
	}
	var exit *cri.ExitError
	if _, _, err := r.ExecSync(ctx, svc, []string{"fail"}, 0); !errors.As(err, &exit) || exit.Code != 2 {
		t.Errorf("ExecSync fail: %v", err)
	}
	if _, _, err := r.ExecSync(ctx, job, []string{"true"}, 0); err == nil {
		t.Error("ExecSync in an exited container: no error")
	}
	r.InjectError("ListContainers", status.Error(codes.Unavailable, "down"))
	if _, err := r.ListContainers(ctx, nil); status.Code(err) != codes.Unavailable {
		t.Errorf("injected error: %v", err)
	}
	if _, err := r.ListContainers(ctx, nil); err != nil {
		t.Errorf("an injection fails one call only: %v", err)
	}
	if _, err := r.CreateContainer(ctx, sb, &runtimeapi.ContainerConfig{Metadata: &runtimeapi.ContainerMetadata{Name: "x"}, Image: &runtimeapi.ImageSpec{Image: "absent"}}, nil); !cri.IsNotFound(err) {
		t.Errorf("create from an absent image: %v", err)
	}
	if _, err := r.Exec(ctx, &runtimeapi.ExecRequest{ContainerId: svc, Cmd: []string{"sh"}}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("Exec without streams: %v", err)
	}
	if resp, err := r.Exec(ctx, &runtimeapi.ExecRequest{ContainerId: svc, Cmd: []string{"sh"}, Stdout: true}); err != nil || resp.Url == "" {
		t.Errorf("Exec: %v, %v", resp, err)
	}
	if resp, err := r.PortForward(ctx, &runtimeapi.PortForwardRequest{PodSandboxId: sb, Port: []int32{80}}); err != nil || resp.Url == "" {
		t.Errorf("PortForward: %v, %v", resp, err)
	}
}
