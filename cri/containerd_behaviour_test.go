package cri_test

import (
	"context"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/kube-nodekit/nodekit/cri"
	"github.com/kube-nodekit/nodekit/internal/testenv"
)

// cgroupValue reads a cgroup v1 file of a container: <controller>/<cgroup
// parent>/<container id>/<file>, as containerd's cgroupfs driver lays it out.
func cgroupValue(t *testing.T, controller, parent, id, file string) int64 {
	t.Helper()
	p := filepath.Join("/sys/fs/cgroup", controller, parent, id, file)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("read cgroup: %v", err)
	}
	v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		t.Fatalf("%s: %v", p, err)
	}
	return v
}

// TestResourcesInCgroup: the memory limit, CPU quota and shares the
// translation computes land in the container's cgroup.
func TestResourcesInCgroup(t *testing.T) {
	if _, err := os.Stat("/sys/fs/cgroup/memory"); err != nil {
		t.Skip("cgroup v1 memory controller not mounted; this test reads v1 files")
	}
	for _, rt := range testenv.Runtimes(t) {
		t.Run(rt.Name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			c := dial(t, rt.Endpoint)
			pod := newTestPod(t, "cgroup", corev1.Container{Name: "app", Command: []string{"sleep", "3600"}, Resources: limits("250m", "64Mi")})
			p := startPod(ctx, t, c, testConfig(t), pod)
			id := p.start(ctx, &pod.Spec.Containers[0])
			waitState(ctx, t, c, id, runtimeapi.ContainerState_CONTAINER_RUNNING)

			parent := p.sandbox.Linux.CgroupParent
			if want := testCgroupRoot + "/kubepods/pod" + string(pod.UID); parent != want {
				t.Fatalf("cgroup parent = %q, want %q (a Guaranteed pod)", parent, want)
			}
			for _, tc := range []struct {
				controller, file string
				want             int64
			}{
				{"memory", "memory.limit_in_bytes", 64 << 20},
				{"cpu", "cpu.cfs_quota_us", 25000},
				{"cpu", "cpu.cfs_period_us", 100000},
				{"cpu", "cpu.shares", 256},
			} {
				if got := cgroupValue(t, tc.controller, parent, id, tc.file); got != tc.want {
					t.Errorf("%s = %d, want %d", tc.file, got, tc.want)
				}
			}
		})
	}
}

// TestContainerFailures: an exit code and a reason come back; a bad
// command, a missing image and a missing container fail with clear errors,
// not hangs.
func TestContainerFailures(t *testing.T) {
	for _, rt := range testenv.Runtimes(t) {
		t.Run(rt.Name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			c := dial(t, rt.Endpoint)
			pod := newTestPod(t, "fail",
				corev1.Container{Name: "exit3", Command: []string{"sh", "-c", "echo bye; exit 3"}},
				corev1.Container{Name: "badcmd", Command: []string{"/no/such/binary"}},
				corev1.Container{Name: "noimage", Image: "docker.io/library/nodekit-absent:0.0.1", ImagePullPolicy: corev1.PullNever})
			p := startPod(ctx, t, c, testConfig(t), pod)

			id := p.start(ctx, &pod.Spec.Containers[0])
			st := waitState(ctx, t, c, id, runtimeapi.ContainerState_CONTAINER_EXITED)
			if st.ExitCode != 3 || st.Reason != "Error" {
				t.Errorf("exit 3: ExitCode %d, Reason %q; want 3, Error", st.ExitCode, st.Reason)
			}

			bad := p.create(ctx, &pod.Spec.Containers[1], 0)
			err := c.StartContainer(ctx, bad)
			if err == nil || !strings.Contains(err.Error(), "StartContainer "+bad) || !strings.Contains(err.Error(), "/no/such/binary") {
				t.Errorf("StartContainer of a missing binary: err = %v, want one naming the call and the binary", err)
			}

			_, err = cri.EnsureImage(ctx, c, pod.Spec.Containers[2].Image, corev1.PullNever, cri.PullOptions{})
			if !errors.Is(err, cri.ErrImageNeverPull) {
				t.Errorf("missing image with Never: err = %v, want ErrImageNeverPull", err)
			}
			cc, err := p.cfg.ContainerConfig(pod, &pod.Spec.Containers[2], cri.ContainerInput{})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.CreateContainer(ctx, p.sandboxID, cc, p.sandbox); err == nil || !strings.Contains(err.Error(), "nodekit-absent") {
				t.Errorf("CreateContainer from a missing image: err = %v", err)
			}

			if _, err := c.ContainerStatus(ctx, "0000000000000000000000000000000000000000000000000000000000000000", false); !errors.Is(err, cri.ErrNotFound) {
				t.Errorf("status of an unknown container: err = %v, want ErrNotFound", err)
			}
			if err := c.StartContainer(ctx, "no-such-container"); !errors.Is(err, cri.ErrNotFound) {
				t.Errorf("start of an unknown container: err = %v, want ErrNotFound", err)
			}
		})
	}
}

// TestContainerEventsFromRuntime: containerd 2.x streams a container's
// events in order; containerd 1.6 answers Unimplemented, which ends the
// watch at once.
func TestContainerEventsFromRuntime(t *testing.T) {
	for _, rt := range testenv.Runtimes(t) {
		t.Run(rt.Name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			c := dial(t, rt.Endpoint)
			if !rt.ContainerEvents {
				err := cri.WatchContainerEvents(ctx, c, cri.WatchOptions{}, func(*runtimeapi.ContainerEventResponse) {
					t.Error("event from a runtime without the stream")
				})
				if !errors.Is(err, cri.ErrUnimplemented) {
					t.Fatalf("WatchContainerEvents on %s: err = %v, want ErrUnimplemented", rt.Name, err)
				}
				return
			}
			pod := newTestPod(t, "events", corev1.Container{Name: "once", Command: []string{"true"}})
			p := startPod(ctx, t, c, testConfig(t), pod)

			got := make(chan *runtimeapi.ContainerEventResponse, 100)
			wctx, stop := context.WithCancel(ctx)
			done := make(chan error, 1)
			go func() {
				done <- cri.WatchContainerEvents(wctx, c, cri.WatchOptions{}, func(ev *runtimeapi.ContainerEventResponse) {
					// Other packages' tests share the runtime: keep this pod's.
					if ev.GetPodSandboxStatus().GetMetadata().GetUid() == string(pod.UID) {
						got <- ev
					}
				})
			}()
			// The stream opens asynchronously; a probe container's event
			// proves it is live before the container under test starts.
			probe := corev1.Container{Name: "probe", Command: []string{"true"}}
			defaultContainer(&probe)
			attempt := 0
			if err := retry(ctx, func() error {
				p.create(ctx, &probe, attempt)
				attempt++
				select {
				case <-got:
					return nil
				case <-time.After(200 * time.Millisecond):
					return errors.New("no event yet")
				}
			}); err != nil {
				t.Fatal(err)
			}
			for len(got) > 0 {
				<-got
			}

			id := p.start(ctx, &pod.Spec.Containers[0])
			waitState(ctx, t, c, id, runtimeapi.ContainerState_CONTAINER_EXITED)
			if err := c.RemoveContainer(ctx, id); err != nil {
				t.Fatal(err)
			}
			var seen []runtimeapi.ContainerEventType
			for len(seen) < 4 {
				select {
				case ev := <-got:
					if ev.ContainerId == id {
						seen = append(seen, ev.ContainerEventType)
					}
				case <-ctx.Done():
					t.Fatalf("events of %s: %v (timed out)", id, seen)
				}
			}
			want := []runtimeapi.ContainerEventType{runtimeapi.ContainerEventType_CONTAINER_CREATED_EVENT, runtimeapi.ContainerEventType_CONTAINER_STARTED_EVENT,
				runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT, runtimeapi.ContainerEventType_CONTAINER_DELETED_EVENT}
			for i := range want {
				if seen[i] != want[i] {
					t.Fatalf("events = %v, want %v", seen, want)
				}
			}
			stop()
			if err := <-done; err != nil {
				t.Fatalf("WatchContainerEvents after cancel: %v", err)
			}
		})
	}
}

// TestStreamingURLs: the runtime hands out exec, attach and port-forward
// URLs on its streaming server (127.0.0.1 in the test bed).
func TestStreamingURLs(t *testing.T) {
	for _, rt := range testenv.Runtimes(t) {
		t.Run(rt.Name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			c := dial(t, rt.Endpoint)
			pod := newTestPod(t, "stream", corev1.Container{Name: "sh", Command: []string{"sleep", "3600"}, Stdin: true})
			p := startPod(ctx, t, c, testConfig(t), pod)
			id := p.start(ctx, &pod.Spec.Containers[0])
			waitState(ctx, t, c, id, runtimeapi.ContainerState_CONTAINER_RUNNING)
			check := func(what, raw string, err error) {
				t.Helper()
				if err != nil {
					t.Errorf("%s: %v", what, err)
					return
				}
				u, err := url.Parse(raw)
				if err != nil || u.Hostname() != "127.0.0.1" || u.Port() == "" {
					t.Errorf("%s URL %q: want http://127.0.0.1:<port>/...", what, raw)
				}
			}
			e, err := c.Exec(ctx, &runtimeapi.ExecRequest{ContainerId: id, Cmd: []string{"sh"}, Stdin: true, Stdout: true})
			check("Exec", e.GetUrl(), err)
			a, err := c.Attach(ctx, &runtimeapi.AttachRequest{ContainerId: id, Stdin: true, Stdout: true})
			check("Attach", a.GetUrl(), err)
			pf, err := c.PortForward(ctx, &runtimeapi.PortForwardRequest{PodSandboxId: p.sandboxID, Port: []int32{80}})
			check("PortForward", pf.GetUrl(), err)
			if _, err := c.Exec(ctx, &runtimeapi.ExecRequest{ContainerId: id, Cmd: []string{"sh"}}); err == nil {
				t.Error("Exec without any stream: no error")
			}
		})
	}
}
