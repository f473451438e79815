package cri_test

import (
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/kube-nodekit/nodekit/cri"
	"github.com/kube-nodekit/nodekit/internal/testenv"
)

// TestPullFromRegistry pulls over the CRI from the test bed's plain-HTTP
// registries (hack/registry-up.sh): anonymously, with basic auth in both of
// the CRI's credential forms, and fails clearly without credentials, with
// wrong ones, and for an image the registry does not have. A container then
// runs from the pulled reference.
func TestPullFromRegistry(t *testing.T) {
	reg := testenv.ImageRegistry(t)
	for _, rt := range testenv.Runtimes(t) {
		t.Run(rt.Name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			c := dial(t, rt.Endpoint)

			ref, err := cri.EnsureImage(ctx, c, reg.ImageRef(), corev1.PullAlways, cri.PullOptions{})
			if err != nil {
				t.Fatalf("pull %s: %v", reg.ImageRef(), err)
			}
			st, err := c.ImageStatus(ctx, &runtimeapi.ImageSpec{Image: reg.ImageRef()}, false)
			if err != nil || st.GetImage().GetId() != ref {
				t.Fatalf("ImageStatus after pull: %v, %v; want id %s", st, err, ref)
			}
			if !contains(st.Image.RepoTags, reg.ImageRef()) {
				t.Errorf("RepoTags %v lack %s", st.Image.RepoTags, reg.ImageRef())
			}

			// Basic auth.
			spec := &runtimeapi.ImageSpec{Image: reg.AuthImageRef()}
			if _, err := c.PullImage(ctx, spec, nil, nil); err == nil || !strings.Contains(strings.ToLower(err.Error()), "authoriz") {
				t.Errorf("pull without credentials: err = %v, want an authorization failure", err)
			}
			wrong := &runtimeapi.AuthConfig{Username: reg.Username, Password: reg.Password + "x"}
			if _, err := cri.EnsureImage(ctx, c, reg.AuthImageRef(), corev1.PullAlways, cri.PullOptions{Auth: []*runtimeapi.AuthConfig{wrong}}); !errors.Is(err, cri.ErrImagePull) {
				t.Errorf("pull with a wrong password: err = %v, want ErrImagePull", err)
			}
			// containerd parses ServerAddress as a URL and ignores
			// credentials whose host differs from the image's.
			good := &runtimeapi.AuthConfig{Username: reg.Username, Password: reg.Password, ServerAddress: "http://" + reg.AuthAddr}
			if got, err := cri.EnsureImage(ctx, c, reg.AuthImageRef(), corev1.PullAlways, cri.PullOptions{Auth: []*runtimeapi.AuthConfig{wrong, good}}); err != nil || got != ref {
				t.Errorf("pull with credentials: %q, %v; want %s", got, err, ref)
			}
			encoded := &runtimeapi.AuthConfig{Auth: base64.StdEncoding.EncodeToString([]byte(reg.Username + ":" + reg.Password))}
			if _, err := c.PullImage(ctx, spec, encoded, nil); err != nil {
				t.Errorf("pull with the auth field: %v", err)
			}

			// Absent image: a clear error, not a hang.
			_, err = cri.EnsureImage(ctx, c, reg.Addr+"/nodekit/absent:1", corev1.PullIfNotPresent, cri.PullOptions{})
			if !errors.Is(err, cri.ErrImagePull) || !strings.Contains(err.Error(), "nodekit/absent") {
				t.Errorf("pull of an absent image: err = %v", err)
			}

			pod := newTestPod(t, "pulled", corev1.Container{Name: "c", Image: reg.ImageRef(), ImagePullPolicy: corev1.PullIfNotPresent,
				Command: []string{"sh", "-c", "exit 0"}})
			p := startPod(ctx, t, c, testConfig(t), pod)
			id := p.start(ctx, &pod.Spec.Containers[0])
			// containerd reports the repo digest as ImageRef, and (2.x only)
			// the image id as ImageId.
			if cs := waitState(ctx, t, c, id, runtimeapi.ContainerState_CONTAINER_EXITED); cs.ExitCode != 0 ||
				!strings.HasPrefix(cs.ImageRef, reg.Addr+"/nodekit/busybox@sha256:") || cs.ImageId != "" && cs.ImageId != ref {
				t.Errorf("container from the pulled image: exit %d, image ref %s, id %s; want 0, %s/nodekit/busybox@..., %s", cs.ExitCode, cs.ImageRef, cs.ImageId, reg.Addr, ref)
			}
		})
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
