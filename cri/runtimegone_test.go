package cri_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/kube-nodekit/nodekit/cri"
	"github.com/kube-nodekit/nodekit/internal/testenv"
)

// privateContainerd is a containerd of the test bed's build that this test
// alone starts, stops and restarts, with its own state directory, so the
// shared runtimes (and other packages' tests on them) are never touched. It
// has no CNI network (pods use the host's) and only the pause image.
type privateContainerd struct {
	t        *testing.T
	bin, ctr string // containerd and ctr of hack/build.sh
	dir      string
	sock     string
	cmd      *exec.Cmd
	done     chan struct{}
	cgroups  []string // cgroup parents of the test's pods, removed at the end
}

// testBedPaths returns the containerd 2.x binary directory and the state
// directory, found the way the hack scripts find them (hack/lib.sh).
func testBedPaths(t *testing.T) (bin, state string) {
	t.Helper()
	out, err := exec.Command("bash", "-c", `. ../hack/lib.sh && echo "$CONTAINERD_BIN" && echo "$NODEKIT_STATE"`).Output()
	if err != nil {
		t.Fatalf("hack/lib.sh: %v", err)
	}
	bin, state, _ = strings.Cut(strings.TrimSpace(string(out)), "\n")
	if _, err := os.Stat(filepath.Join(bin, "containerd")); err != nil {
		t.Fatalf("containerd binary: %v (hack/build.sh containerd builds it)", err)
	}
	return bin, state
}

func newPrivateContainerd(t *testing.T) *privateContainerd {
	t.Helper()
	testenv.CRIEndpoint(t) // the test bed is up: its build and runc are there
	dir, err := os.MkdirTemp("/tmp", "nkgone-")
	if err != nil {
		t.Fatal(err)
	}
	binDir, state := testBedPaths(t)
	p := &privateContainerd{t: t, bin: filepath.Join(binDir, "containerd"), ctr: filepath.Join(binDir, "ctr"), dir: dir, sock: filepath.Join(dir, "containerd.sock")}
	// The shared runtime's configuration, with everything under dir.
	cfg, err := exec.Command("bash", "../hack/containerd-config.sh", dir).Output()
	if err != nil {
		t.Fatalf("hack/containerd-config.sh: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.toml"), cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.cleanup)
	p.start()
	out, err := exec.Command(p.ctr, "--address", p.sock, "--namespace", "k8s.io", "images", "import",
		filepath.Join(state, "images", "pause.tar")).CombinedOutput()
	if err != nil {
		t.Fatalf("import the pause image (hack/images.sh builds it): %v: %s", err, out)
	}
	return p
}

// start runs containerd and waits until it answers Version. The shim is
// found on PATH, so the build's directory goes first.
func (p *privateContainerd) start() {
	p.t.Helper()
	logf, err := os.OpenFile(filepath.Join(p.dir, "containerd.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		p.t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(p.bin, "--config", filepath.Join(p.dir, "config.toml"))
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(p.bin)+":"+os.Getenv("PATH"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	p.cmd, p.done = cmd, make(chan struct{})
	go func(done chan struct{}) { cmd.Wait(); close(done) }(p.done)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := retry(ctx, func() error {
		select {
		case <-p.done:
			return errors.New("containerd exited; see " + filepath.Join(p.dir, "containerd.log"))
		default:
		}
		conn, err := testenv.DialCRI("unix://" + p.sock)
		if err != nil {
			return err
		}
		defer conn.Close()
		_, err = runtimeapi.NewRuntimeServiceClient(conn).Version(ctx, &runtimeapi.VersionRequest{})
		return err
	}); err != nil {
		p.t.Fatalf("private containerd did not start: %v", err)
	}
}

// stop ends containerd with SIGTERM (SIGKILL after a minute) and waits.
func (p *privateContainerd) stop() {
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(time.Minute):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	p.cmd = nil
}

func (p *privateContainerd) cleanup() {
	p.stop()
	// Containers outlive their shims: kill what is left through runc
	// first, as hack/containerd-down.sh does.
	root := filepath.Join(p.dir, "runc", "k8s.io")
	ids, _ := os.ReadDir(root)
	for _, id := range ids {
		_ = exec.Command("runc", "--root", root, "kill", "--all", id.Name(), "KILL").Run()
		_ = exec.Command("runc", "--root", root, "delete", "--force", id.Name()).Run()
	}
	// Shims of this containerd carry "-address <its socket>"; end them
	// (and with them the pause process), as hack/containerd-down.sh does.
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, f := range procs {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		args := strings.Split(string(b), "\x00")
		if len(args) > 0 && strings.Contains(args[0], "containerd-shim") && slices.Contains(args, p.sock) {
			var pid int
			if _, err := fmt.Sscanf(f, "/proc/%d/cmdline", &pid); err == nil {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	// Unmount whatever containerd left under its dir (deepest first)
	// before removing it.
	if b, err := os.ReadFile("/proc/self/mountinfo"); err == nil {
		var mps []string
		for line := range strings.SplitSeq(string(b), "\n") {
			if f := strings.Fields(line); len(f) > 4 && strings.HasPrefix(f[4], p.dir+"/") {
				mps = append(mps, f[4])
			}
		}
		for i := len(mps) - 1; i >= 0; i-- {
			_ = syscall.Unmount(mps[i], syscall.MNT_DETACH)
		}
	}
	if err := os.RemoveAll(p.dir); err != nil {
		p.t.Errorf("cleanup: %v", err)
	}
	for _, cg := range p.cgroups {
		removeCgroups(cg)
	}
}

// TestRuntimeGone: with a client in use (calls answered, the event stream
// open), containerd stops. Calls fail at once with ErrUnavailable, not at
// their deadline; the event watch reports the disconnect. containerd
// starts again, and the same client and watch recover without being
// rebuilt; the watch says it reconnected, so its user knows to relist.
func TestRuntimeGone(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	rt := newPrivateContainerd(t)
	c, err := cri.Dial(ctx, "unix://"+rt.sock, cri.Options{Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() }) // after the sandbox's cleanup below
	if _, err := c.ListContainers(ctx, nil); err != nil {
		t.Fatalf("ListContainers: %v", err)
	}

	var mu sync.Mutex
	var notes []string
	note := func(s string) { mu.Lock(); notes = append(notes, s); mu.Unlock() }
	seen := func(s string) bool {
		mu.Lock()
		defer mu.Unlock()
		return slices.Contains(notes, s)
	}
	wctx, stopWatch := context.WithCancel(ctx)
	watchDone := make(chan error, 1)
	go func() {
		watchDone <- cri.WatchContainerEvents(wctx, c, cri.WatchOptions{
			MaxRetries:   -1,
			OnDisconnect: func(error) { note("disconnect") },
			OnReconnect:  func() { note("reconnect") },
		}, func(*runtimeapi.ContainerEventResponse) { note("event") })
	}()

	// A host-network sandbox in use across the outage. Its events reach
	// the watch (queued for the first subscriber if it is not yet
	// subscribed), which proves the stream is open.
	uid := "gone-" + randomID(t)
	sc := &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: uid, Namespace: testNamespace, Uid: uid},
		LogDirectory: t.TempDir(),
		Linux: &runtimeapi.LinuxPodSandboxConfig{
			CgroupParent: testCgroupRoot + "/" + uid,
			SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
				NamespaceOptions: &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_NODE, Pid: runtimeapi.NamespaceMode_CONTAINER, Ipc: runtimeapi.NamespaceMode_POD},
			},
		},
	}
	rt.cgroups = append(rt.cgroups, sc.Linux.CgroupParent)
	sandbox, err := c.RunPodSandbox(ctx, sc, "")
	if err != nil {
		t.Fatalf("RunPodSandbox: %v", err)
	}
	t.Cleanup(func() {
		cctx, ccancel := context.WithTimeout(context.Background(), time.Minute)
		defer ccancel()
		if err := c.StopPodSandbox(cctx, sandbox); err != nil {
			t.Errorf("cleanup: StopPodSandbox: %v", err)
		}
		if err := c.RemovePodSandbox(cctx, sandbox); err != nil {
			t.Errorf("cleanup: RemovePodSandbox: %v", err)
		}
		removeCgroups(sc.Linux.CgroupParent)
	})
	if err := retry(ctx, func() error {
		if !seen("event") {
			return errors.New("no container event on the stream")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	rt.stop()

	// Every kind of call fails fast and says the runtime is unavailable.
	for name, call := range map[string]func() error{
		"Version":        func() error { _, err := c.Version(ctx); return err },
		"ListContainers": func() error { _, err := c.ListContainers(ctx, nil); return err },
		"ImageStatus":    func() error { _, err := c.ImageStatus(ctx, &runtimeapi.ImageSpec{Image: "busybox"}, false); return err },
		"PullImage": func() error {
			_, err := c.PullImage(ctx, &runtimeapi.ImageSpec{Image: "busybox"}, nil, nil)
			return err
		},
	} {
		err := call()
		if !errors.Is(err, cri.ErrUnavailable) {
			t.Errorf("%s with the runtime gone: err = %v, want ErrUnavailable", name, err)
		}
		if err != nil && !strings.Contains(err.Error(), name) {
			t.Errorf("%s error %q does not name the call", name, err)
		}
	}
	if err := retry(ctx, func() error {
		if !seen("disconnect") {
			return errors.New("the event watch did not report the disconnect")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	rt.start()
	if err := retry(ctx, func() error { _, err := c.Version(ctx); return err }); err != nil {
		t.Fatalf("the client did not recover: %v", err)
	}
	sandboxes, err := c.ListPodSandbox(ctx, &runtimeapi.PodSandboxFilter{Id: sandbox})
	if err != nil || len(sandboxes) != 1 || sandboxes[0].State != runtimeapi.PodSandboxState_SANDBOX_READY {
		t.Fatalf("the sandbox after the restart: %v, %v; want it READY (its process outlives the runtime)", sandboxes, err)
	}
	if err := retry(ctx, func() error {
		if !seen("reconnect") {
			return errors.New("the event watch did not report the reconnect")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	stopWatch()
	if err := <-watchDone; err != nil {
		t.Fatalf("WatchContainerEvents: %v", err)
	}
}
