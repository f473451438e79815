package cri_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/kube-nodekit/nodekit/cri"
	"github.com/kube-nodekit/nodekit/internal/testenv"
)

// TestPodLifecycle runs a real pod through the package on every runtime of
// the test bed: translate, sandbox (CNI gives an IP), an init container
// that runs to completion, then two app containers; the web one serves a
// page the init container wrote, fetched from the host at the pod IP;
// ExecSync in it; its logs read back through the CRI log path; then stop
// and remove, after which nothing of the pod is left.
func TestPodLifecycle(t *testing.T) {
	for _, rt := range testenv.Runtimes(t) {
		t.Run(rt.Name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			c := dial(t, rt.Endpoint)
			cfg := testConfig(t)

			initC := corev1.Container{Name: "init", Command: []string{"sh", "-c", "echo served-by-$(POD_NAME) > /work/index.html"},
				Env:          []corev1.EnvVar{{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.name"}}}},
				VolumeMounts: []corev1.VolumeMount{{Name: "work", MountPath: "/work"}}}
			web := corev1.Container{Name: "web",
				Command:      []string{"sh", "-c", "echo hello-from-$(WHO); echo to-stderr >&2; exec httpd -f -p 8080 -h /work"},
				Env:          []corev1.EnvVar{{Name: "WHO", Value: "web"}, {Name: "GREETING", Value: "hi $(WHO) $$(WHO)"}},
				Ports:        []corev1.ContainerPort{{Name: "http", ContainerPort: 8080, Protocol: corev1.ProtocolTCP}},
				VolumeMounts: []corev1.VolumeMount{{Name: "work", MountPath: "/work", ReadOnly: true}},
				Resources:    limits("250m", "64Mi")}
			idle := corev1.Container{Name: "idle", Command: []string{"sleep", "3600"}}
			pod := newTestPod(t, "lifecycle", web, idle)
			pod.Spec.InitContainers = []corev1.Container{initC}
			defaultContainer(&pod.Spec.InitContainers[0])
			pod.Spec.Volumes = []corev1.Volume{{Name: "work", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}

			p := startPod(ctx, t, c, cfg, pod)
			if p.ip == "" {
				t.Fatal("sandbox has no IP: CNI did not run")
			}

			// The init container runs to completion before the app containers.
			initID := p.start(ctx, &pod.Spec.InitContainers[0])
			st := waitState(ctx, t, c, initID, runtimeapi.ContainerState_CONTAINER_EXITED)
			if st.ExitCode != 0 {
				t.Fatalf("init container exited %d (%s: %s)", st.ExitCode, st.Reason, st.Message)
			}
			if st.Labels[cri.ContainerNameLabel] != "init" || st.Labels[cri.PodUIDLabel] != string(pod.UID) {
				t.Errorf("init container labels = %v", st.Labels)
			}

			webID := p.start(ctx, &pod.Spec.Containers[0])
			idleID := p.start(ctx, &pod.Spec.Containers[1])
			waitState(ctx, t, c, webID, runtimeapi.ContainerState_CONTAINER_RUNNING)
			waitState(ctx, t, c, idleID, runtimeapi.ContainerState_CONTAINER_RUNNING)

			// HTTP from the host to the pod IP.
			url := fmt.Sprintf("http://%s:8080/index.html", p.ip)
			var body []byte
			if err := retry(ctx, func() error {
				resp, err := http.Get(url)
				if err != nil {
					return err
				}
				defer resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					return fmt.Errorf("GET %s: %s", url, resp.Status)
				}
				body, err = io.ReadAll(resp.Body)
				return err
			}); err != nil {
				t.Fatalf("GET %s: %v", url, err)
			}
			if want := "served-by-" + pod.Name + "\n"; string(body) != want {
				t.Errorf("GET %s = %q, want %q", url, body, want)
			}

			// ExecSync: output, environment with $(VAR) expansion, exit codes.
			stdout, stderr, err := c.ExecSync(ctx, webID, []string{"sh", "-c", "echo $GREETING; echo oops >&2"}, 30*time.Second)
			if err != nil {
				t.Fatalf("ExecSync: %v", err)
			}
			if string(stdout) != "hi web $(WHO)\n" || string(stderr) != "oops\n" {
				t.Errorf("ExecSync = %q, %q; want %q, %q", stdout, stderr, "hi web $(WHO)\n", "oops\n")
			}
			_, _, err = c.ExecSync(ctx, webID, []string{"sh", "-c", "exit 7"}, 30*time.Second)
			var exitErr *cri.ExitError
			if !errors.As(err, &exitErr) || exitErr.Code != 7 {
				t.Errorf("ExecSync exit 7: err = %v, want an ExitError with code 7", err)
			}
			stdout, _, err = c.ExecSync(ctx, webID, []string{"cat", "/etc/hostname"}, 30*time.Second)
			if err != nil || strings.TrimSpace(string(stdout)) != pod.Name {
				t.Errorf("hostname in the pod = %q (%v), want %q", stdout, err, pod.Name)
			}

			// Logs through the CRI log path.
			resp, err := c.ContainerStatus(ctx, webID, false)
			if err != nil {
				t.Fatal(err)
			}
			logPath := filepath.Join(p.sandbox.LogDirectory, cri.ContainerLogPath("web", 0))
			if resp.Status.LogPath != logPath {
				t.Errorf("LogPath = %q, want %q", resp.Status.LogPath, logPath)
			}
			var out, errOut bytes.Buffer
			if err := retry(ctx, func() error {
				out.Reset()
				errOut.Reset()
				if err := cri.ReadLogs(ctx, logPath, webID, cri.LogOptions{}, c, &out, &errOut); err != nil {
					return err
				}
				if out.String() != "hello-from-web\n" || errOut.String() != "to-stderr\n" {
					return fmt.Errorf("logs: stdout %q, stderr %q", out.String(), errOut.String())
				}
				return nil
			}); err != nil {
				t.Error(err)
			}

			// Stop and remove; nothing of the pod is left.
			for _, id := range []string{webID, idleID} {
				if err := c.StopContainer(ctx, id, 2); err != nil {
					t.Errorf("StopContainer: %v", err)
				}
			}
			if st := waitState(ctx, t, c, webID, runtimeapi.ContainerState_CONTAINER_EXITED); st.FinishedAt == 0 {
				t.Error("stopped container has no finish time")
			}
			if err := c.StopPodSandbox(ctx, p.sandboxID); err != nil {
				t.Fatalf("StopPodSandbox: %v", err)
			}
			if err := c.RemovePodSandbox(ctx, p.sandboxID); err != nil {
				t.Fatalf("RemovePodSandbox: %v", err)
			}
			byUID := map[string]string{cri.PodUIDLabel: string(pod.UID)}
			sandboxes, err := c.ListPodSandbox(ctx, &runtimeapi.PodSandboxFilter{LabelSelector: byUID})
			if err != nil || len(sandboxes) != 0 {
				t.Errorf("sandboxes left: %d (%v)", len(sandboxes), err)
			}
			ctrs, err := c.ListContainers(ctx, &runtimeapi.ContainerFilter{LabelSelector: byUID})
			if err != nil || len(ctrs) != 0 {
				t.Errorf("containers left: %d (%v)", len(ctrs), err)
			}
			if _, err := c.ContainerStatus(ctx, webID, false); !errors.Is(err, cri.ErrNotFound) {
				t.Errorf("ContainerStatus of a removed container: err = %v, want ErrNotFound", err)
			}
		})
	}
}
