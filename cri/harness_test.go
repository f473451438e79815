package cri_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/kube-nodekit/nodekit/cri"
	"github.com/kube-nodekit/nodekit/internal/testenv"
)

// Test pods live in this namespace and under this cgroup root; hack's
// containerd-down.sh removes empty cgroups below it.
const (
	testNamespace  = "nodekit-cri-test"
	testCgroupRoot = "/nodekit"
)

func randomID(t testing.TB) string {
	t.Helper()
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// dial connects to a test bed runtime and closes the client at the end.
func dial(t testing.TB, endpoint string) *cri.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := cri.Dial(ctx, endpoint, cri.Options{Timeout: time.Minute})
	if err != nil {
		t.Fatalf("Dial %s: %v", endpoint, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// testConfig is the kubelet's default configuration with the pod and log
// directories in a temporary directory and cgroups under /nodekit.
func testConfig(t testing.TB) cri.Config {
	cfg := cri.DefaultConfig()
	dir := t.TempDir()
	cfg.RootDir = filepath.Join(dir, "kubelet")
	cfg.PodLogsDir = filepath.Join(dir, "pods")
	cfg.QOS.CgroupRoot = testCgroupRoot
	cfg.MemoryCapacity = 8 << 30
	return cfg
}

// newTestPod is a pod as the apiserver stores it: defaulted security
// context, service links, DNS policy and termination message fields.
func newTestPod(t testing.TB, name string, containers ...corev1.Container) *corev1.Pod {
	uid := randomID(t)
	for i := range containers {
		defaultContainer(&containers[i])
	}
	grace := int64(2)
	links := false
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: name + "-" + uid, Namespace: testNamespace, UID: types.UID("uid-" + uid),
			Labels: map[string]string{"app": name},
		},
		Spec: corev1.PodSpec{
			Containers:                    containers,
			RestartPolicy:                 corev1.RestartPolicyNever,
			DNSPolicy:                     corev1.DNSClusterFirst,
			SecurityContext:               &corev1.PodSecurityContext{},
			EnableServiceLinks:            &links,
			TerminationGracePeriodSeconds: &grace,
		},
	}
}

func defaultContainer(c *corev1.Container) {
	if c.Image == "" {
		c.Image = testenv.BusyboxImage
	}
	if c.ImagePullPolicy == "" {
		c.ImagePullPolicy = cri.DefaultPullPolicy(c.Image)
	}
	if c.TerminationMessagePath == "" {
		c.TerminationMessagePath = corev1.TerminationMessagePathDefault
	}
	if c.TerminationMessagePolicy == "" {
		c.TerminationMessagePolicy = corev1.TerminationMessageReadFile
	}
}

func limits(cpu, mem string) corev1.ResourceRequirements {
	l := corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu), corev1.ResourceMemory: resource.MustParse(mem)}
	return corev1.ResourceRequirements{Requests: l, Limits: l}
}

// runningPod is a pod whose sandbox runs on a real runtime; it is stopped
// and removed when the test ends.
type runningPod struct {
	t         testing.TB
	c         *cri.Client
	cfg       cri.Config
	pod       *corev1.Pod
	sandboxID string
	sandbox   *runtimeapi.PodSandboxConfig
	ip        string
}

func startPod(ctx context.Context, t testing.TB, c *cri.Client, cfg cri.Config, pod *corev1.Pod) *runningPod {
	t.Helper()
	sc, err := cfg.SandboxConfig(pod, cri.SandboxOptions{})
	if err != nil {
		t.Fatalf("SandboxConfig: %v", err)
	}
	if err := os.MkdirAll(sc.LogDirectory, 0o755); err != nil {
		t.Fatal(err)
	}
	handler, err := cfg.RuntimeHandler(pod)
	if err != nil {
		t.Fatal(err)
	}
	id, err := c.RunPodSandbox(ctx, sc, handler)
	if err != nil {
		t.Fatalf("RunPodSandbox: %v", err)
	}
	p := &runningPod{t: t, c: c, cfg: cfg, pod: pod, sandboxID: id, sandbox: sc}
	t.Cleanup(p.remove)
	st, err := c.PodSandboxStatus(ctx, id, false)
	if err != nil {
		t.Fatalf("PodSandboxStatus: %v", err)
	}
	p.ip = st.GetStatus().GetNetwork().GetIp()
	if p.ip != "" || pod.Spec.HostNetwork {
		host, domain, err := cfg.PodHostname(pod)
		if err != nil {
			t.Fatal(err)
		}
		hosts := cfg.EtcHostsPath(pod)
		if err := os.MkdirAll(filepath.Dir(hosts), 0o750); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(hosts, cri.HostsFile(pod, []string{p.ip}, host, domain), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

// remove stops and removes the sandbox and the pod's empty cgroups.
func (p *runningPod) remove() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := p.c.StopPodSandbox(ctx, p.sandboxID); err != nil && !cri.IsNotFound(err) {
		p.t.Errorf("cleanup: StopPodSandbox: %v", err)
	}
	if err := p.c.RemovePodSandbox(ctx, p.sandboxID); err != nil && !cri.IsNotFound(err) {
		p.t.Errorf("cleanup: RemovePodSandbox: %v", err)
	}
	removeCgroups(p.sandbox.GetLinux().GetCgroupParent())
}

// removeCgroups removes the (empty) cgroup directories of parent, deepest
// first, up to the test cgroup root; runc removes only the leaves.
func removeCgroups(parent string) {
	if !strings.HasPrefix(parent, testCgroupRoot+"/") {
		return
	}
	ctls, _ := filepath.Glob("/sys/fs/cgroup/*")
	for _, ctl := range append(ctls, "/sys/fs/cgroup") {
		for p := parent; strings.HasPrefix(p, testCgroupRoot+"/"); p = filepath.Dir(p) {
			_ = os.Remove(filepath.Join(ctl, p)) // fails, as it should, when not empty
		}
	}
}

// input prepares what the kubelet prepares before CreateContainer: the
// image, the container log directory, emptyDir volumes and the
// termination-log file.
func (p *runningPod) input(ctx context.Context, ctr *corev1.Container, restart int) cri.ContainerInput {
	t := p.t
	t.Helper()
	ref, err := cri.EnsureImage(ctx, p.c, ctr.Image, ctr.ImagePullPolicy, cri.PullOptions{SandboxConfig: p.sandbox})
	if err != nil {
		t.Fatalf("EnsureImage %s: %v", ctr.Image, err)
	}
	in := cri.ContainerInput{RestartCount: restart, ImageRef: ref}
	if p.ip != "" {
		in.PodIPs = []string{p.ip}
	}
	if err := os.MkdirAll(filepath.Join(p.sandbox.LogDirectory, ctr.Name), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, v := range p.pod.Spec.Volumes {
		if v.EmptyDir != nil {
			dir := filepath.Join(p.cfg.PodDir(p.pod), "volumes", "kubernetes.io~empty-dir", v.Name)
			if err := os.MkdirAll(dir, 0o777); err != nil {
				t.Fatal(err)
			}
		}
	}
	dir := p.cfg.TerminationMessageDir(p.pod, ctr)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	tm := filepath.Join(dir, randomID(t))
	if err := os.WriteFile(tm, nil, 0o666); err != nil {
		t.Fatal(err)
	}
	in.TerminationMessagePath = tm
	return in
}

// create translates and creates a container; start also starts it.
func (p *runningPod) create(ctx context.Context, ctr *corev1.Container, restart int) string {
	p.t.Helper()
	cc, err := p.cfg.ContainerConfig(p.pod, ctr, p.input(ctx, ctr, restart))
	if err != nil {
		p.t.Fatalf("ContainerConfig %s: %v", ctr.Name, err)
	}
	id, err := p.c.CreateContainer(ctx, p.sandboxID, cc, p.sandbox)
	if err != nil {
		p.t.Fatalf("CreateContainer %s: %v", ctr.Name, err)
	}
	return id
}

func (p *runningPod) start(ctx context.Context, ctr *corev1.Container) string {
	p.t.Helper()
	id := p.create(ctx, ctr, 0)
	if err := p.c.StartContainer(ctx, id); err != nil {
		p.t.Fatalf("StartContainer %s: %v", ctr.Name, err)
	}
	return id
}

// waitState polls the container until it reaches state or ctx ends.
func waitState(ctx context.Context, t testing.TB, rs cri.RuntimeService, id string, state runtimeapi.ContainerState) *runtimeapi.ContainerStatus {
	t.Helper()
	for {
		resp, err := rs.ContainerStatus(ctx, id, false)
		if err != nil {
			t.Fatalf("ContainerStatus %s: %v", id, err)
		}
		if st := resp.GetStatus(); st.State == state {
			return st
		}
		select {
		case <-ctx.Done():
			t.Fatalf("container %s did not reach %v: %v", id, state, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// retry calls f until it succeeds or ctx ends, and returns its last error.
func retry(ctx context.Context, f func() error) error {
	for {
		err := f()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return errors.Join(err, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}
