package cri_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/kube-nodekit/nodekit/cri"
	"github.com/kube-nodekit/nodekit/cri/critest"
)

const sha = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// TestNormalizeImage pins distribution/reference's ParseDockerRef, which
// containerd and the kubelet's ParseImageName use.
func TestNormalizeImage(t *testing.T) {
	for _, tc := range []struct{ in, want, err string }{
		{"busybox", "docker.io/library/busybox:latest", ""},
		{"busybox:1.36", "docker.io/library/busybox:1.36", ""},
		{"library/busybox", "docker.io/library/busybox:latest", ""},
		{"kube/proxy:v1", "docker.io/kube/proxy:v1", ""},
		{"docker.io/busybox", "docker.io/library/busybox:latest", ""},
		{"index.docker.io/busybox", "docker.io/library/busybox:latest", ""},
		{"registry.k8s.io/pause:3.10.2", "registry.k8s.io/pause:3.10.2", ""},
		{"localhost/app", "localhost/app:latest", ""},
		{"localhost:5000/app:dev", "localhost:5000/app:dev", ""},
		{"127.0.0.1:5000/nodekit/busybox:1.36", "127.0.0.1:5000/nodekit/busybox:1.36", ""},
		{"[::1]:5000/app", "[::1]:5000/app:latest", ""},
		{"Registry.Example/app", "Registry.Example/app:latest", ""},
		{"busybox@" + sha, "docker.io/library/busybox@" + sha, ""},
		{"busybox:1.36@" + sha, "docker.io/library/busybox@" + sha, ""},
		{"a.b/c__d/e--f/g.h_i:Tag_1.0-x", "a.b/c__d/e--f/g.h_i:Tag_1.0-x", ""},
		{"localhost:5000", "docker.io/library/localhost:5000", ""},
		{"", "", "invalid reference format"},
		{"Busybox", "", "must be lowercase"},
		{"busybox:", "", "invalid reference format"},
		{"busybox:-tag", "", "invalid reference format"},
		{"busybox:" + strings.Repeat("t", 129), "", "invalid reference format"},
		{"bu..sybox", "", "invalid reference format"},
		{"busybox_", "", "invalid reference format"},
		{"a___b", "", "invalid reference format"},
		{"-x/y", "", "invalid reference format"},
		{"host:port/app", "", "invalid reference format"},
		{"busybox@sha256:abc", "", "invalid reference format"},
		{"busybox@sha256:" + strings.Repeat("A", 64), "", "invalid checksum digest format"},
		{"busybox@sha256:" + strings.Repeat("a", 63) + "00", "", "digest length"},
		{"busybox@md5:" + strings.Repeat("a", 32), "", "unsupported digest algorithm"},
		{strings.Repeat("a", 64), "", "64-byte hexadecimal"},
		{"x/" + strings.Repeat("a", 255), "", "must not be more than 255"},
		{"busybox@@" + sha, "", "invalid reference format"},
	} {
		got, err := cri.NormalizeImage(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("NormalizeImage(%q) = %q, %v; want error %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("NormalizeImage(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestParseImageRef(t *testing.T) {
	r, err := cri.ParseImageRef("127.0.0.1:5000/nodekit/busybox:1.36")
	if err != nil || r.Domain != "127.0.0.1:5000" || r.Path != "nodekit/busybox" || r.Tag != "1.36" || r.Digest != "" {
		t.Fatalf("ParseImageRef = %+v, %v", r, err)
	}
	// A first component that is neither docker.io nor a valid registry
	// stays in the path (distribution/reference's anchored name match).
	r, err = cri.ParseImageRef("a_b.c/app")
	if err != nil || r.Domain != "" || r.Path != "a_b.c/app" || r.Name() != "a_b.c/app" {
		t.Fatalf("ParseImageRef(a_b.c/app) = %+v, %v", r, err)
	}
	if _, err := cri.ParseImageRef("UPPER"); !errors.Is(err, cri.ErrInvalidImageRef) {
		t.Errorf("err = %v, want ErrInvalidImageRef", err)
	}
}

// TestDefaultImageTag pins applyDefaultImageTag
// (pkg/kubelet/images/image_manager.go): the name stays short.
func TestDefaultImageTag(t *testing.T) {
	for in, want := range map[string]string{
		"busybox":                   "busybox:latest",
		"busybox:1.36":              "busybox:1.36",
		"busybox@" + sha:            "busybox@" + sha,
		"localhost:5000/app":        "localhost:5000/app:latest",
		"registry.k8s.io/pause":     "registry.k8s.io/pause:latest",
		"docker.io/library/nginx:x": "docker.io/library/nginx:x",
	} {
		if got, err := cri.DefaultImageTag(in); err != nil || got != want {
			t.Errorf("DefaultImageTag(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := cri.DefaultImageTag("Bad"); err == nil {
		t.Error("DefaultImageTag(Bad): no error")
	}
}

// TestDefaultPullPolicy pins SetDefaults_Container
// (pkg/apis/core/v1/defaults.go).
func TestDefaultPullPolicy(t *testing.T) {
	for in, want := range map[string]corev1.PullPolicy{
		"busybox":                   corev1.PullAlways,
		"busybox:latest":            corev1.PullAlways,
		"busybox:1.36":              corev1.PullIfNotPresent,
		"busybox@" + sha:            corev1.PullIfNotPresent,
		"busybox:latest@" + sha:     corev1.PullAlways,
		"Not Valid":                 corev1.PullIfNotPresent,
		"localhost:5000/app:LATEST": corev1.PullIfNotPresent,
	} {
		if got := cri.DefaultPullPolicy(in); got != want {
			t.Errorf("DefaultPullPolicy(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestShouldPull(t *testing.T) {
	for _, tc := range []struct {
		policy  corev1.PullPolicy
		image   string
		present bool
		pull    bool
		err     error
	}{
		{corev1.PullAlways, "a:1", true, true, nil},
		{corev1.PullIfNotPresent, "a:1", true, false, nil},
		{corev1.PullIfNotPresent, "a:1", false, true, nil},
		{corev1.PullNever, "a:1", true, false, nil},
		{corev1.PullNever, "a:1", false, false, cri.ErrImageNeverPull},
		{"", "a", true, true, nil},    // defaults to Always
		{"", "a:1", true, false, nil}, // defaults to IfNotPresent
	} {
		pull, err := cri.ShouldPull(tc.policy, tc.image, tc.present)
		if pull != tc.pull || !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) {
			t.Errorf("ShouldPull(%q, %q, %v) = %v, %v; want %v, %v", tc.policy, tc.image, tc.present, pull, err, tc.pull, tc.err)
		}
	}
	if _, err := cri.ShouldPull("Sometimes", "a", true); err == nil {
		t.Error("unknown policy: no error")
	}
}

// TestEnsureImage pins EnsureImageExists against the fake runtime.
func TestEnsureImage(t *testing.T) {
	ctx := context.Background()
	r := critest.New(nil)
	present, _ := r.AddImage("busybox:1.36", 10)
	auth := &runtimeapi.AuthConfig{Username: "u", Password: "p"}
	if err := r.ServeImage("registry.example/private:1", 20, auth); err != nil {
		t.Fatal(err)
	}
	if err := r.ServeImage("busybox", 30, nil); err != nil {
		t.Fatal(err)
	}

	if ref, err := cri.EnsureImage(ctx, r, "busybox:1.36", corev1.PullIfNotPresent, cri.PullOptions{}); err != nil || ref != present {
		t.Errorf("present image: %q, %v; want %q", ref, err, present)
	}
	if got := r.Calls(); len(got) != 1 || got[0] != "ImageStatus" {
		t.Errorf("calls for a present image = %v, want only ImageStatus", got)
	}
	if _, err := cri.EnsureImage(ctx, r, "absent:1", corev1.PullNever, cri.PullOptions{}); !errors.Is(err, cri.ErrImageNeverPull) {
		t.Errorf("absent image with Never: err = %v", err)
	}
	if _, err := cri.EnsureImage(ctx, r, "absent:1", corev1.PullIfNotPresent, cri.PullOptions{}); !errors.Is(err, cri.ErrImagePull) || !cri.IsNotFound(err) {
		t.Errorf("unpullable image: err = %v, want ErrImagePull and not found", err)
	}
	if _, err := cri.EnsureImage(ctx, r, "UPPER", corev1.PullIfNotPresent, cri.PullOptions{}); !errors.Is(err, cri.ErrInvalidImageName) {
		t.Errorf("bad name: err = %v", err)
	}
	// Untagged: defaulted to :latest, and to Always.
	if ref, err := cri.EnsureImage(ctx, r, "busybox", "", cri.PullOptions{}); err != nil || ref == present {
		t.Errorf("busybox (latest, Always): %q, %v", ref, err)
	}
	// Credentials are tried in order.
	bad := &runtimeapi.AuthConfig{Username: "u", Password: "wrong"}
	if _, err := cri.EnsureImage(ctx, r, "registry.example/private:1", corev1.PullAlways, cri.PullOptions{Auth: []*runtimeapi.AuthConfig{bad}}); !errors.Is(err, cri.ErrImagePull) || !strings.Contains(err.Error(), "401") {
		t.Errorf("wrong credentials: err = %v", err)
	}
	if _, err := cri.EnsureImage(ctx, r, "registry.example/private:1", corev1.PullAlways, cri.PullOptions{Auth: []*runtimeapi.AuthConfig{bad, auth}}); err != nil {
		t.Errorf("second credential: %v", err)
	}
	r.InjectError("ImageStatus", status.Error(codes.Unavailable, "down"))
	if _, err := cri.EnsureImage(ctx, r, "busybox:1.36", corev1.PullIfNotPresent, cri.PullOptions{}); !errors.Is(err, cri.ErrImageInspect) {
		t.Errorf("ImageStatus failure: err = %v, want ErrImageInspect", err)
	}
}

func TestExpand(t *testing.T) {
	vars := map[string]string{"A": "a", "EMPTY": "", "X Y": "sp"}
	lookup := func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
	for in, want := range map[string]string{
		"":                 "",
		"plain":            "plain",
		"$(A)":             "a",
		"$(A)$(A)":         "aa",
		"x$(A)y":           "xay",
		"$(EMPTY)|":        "|",
		"$(MISSING)":       "$(MISSING)",
		"$$(A)":            "$(A)",
		"$$$(A)":           "$a",
		"$":                "$",
		"a$":               "a$",
		"$x":               "$x",
		"$(":               "$(",
		"$(A":              "$(A",
		"$()":              "$()",
		"$(X Y)":           "sp",
		"$(A)$(":           "a$(",
		"$\xff":            "$\uFFFD",
		"$(A)) ((":         "a) ((",
		"é$(A)é":           "éaé",
		"$$":               "$",
		"$$$":              "$$",
		"$(A)$(MISSING)$$": "a$(MISSING)$",
	} {
		if got := cri.Expand(in, lookup); got != want {
			t.Errorf("Expand(%q) = %q, want %q", in, got, want)
		}
	}
}
