package cri

import (
	"context"
	"errors"
	"fmt"
	"maps"

	corev1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Errors of EnsureImage, named like the kubelet's container waiting reasons
// (pkg/kubelet/images/types.go).
var (
	// ErrImageNeverPull: the image is absent and the policy is Never.
	ErrImageNeverPull = errors.New("ErrImageNeverPull")
	// ErrInvalidImageName: the image reference does not parse.
	ErrInvalidImageName = errors.New("InvalidImageName")
	// ErrImagePull: the runtime failed to pull the image.
	ErrImagePull = errors.New("ErrImagePull")
	// ErrImageInspect: the runtime failed to tell whether it has the image.
	ErrImageInspect = errors.New("ImageInspectError")
)

// DefaultPullPolicy is the apiserver's default imagePullPolicy for a
// container that sets none (SetDefaults_Container in
// pkg/apis/core/v1/defaults.go): Always for the tag "latest", written or
// implied, IfNotPresent otherwise, including for digests and for references
// that do not parse.
func DefaultPullPolicy(image string) corev1.PullPolicy {
	r, err := ParseImageRef(image)
	if err == nil && (r.Tag == "latest" || r.Tag == "" && r.Digest == "") {
		return corev1.PullAlways
	}
	return corev1.PullIfNotPresent
}

// ShouldPull decides, as the kubelet's image manager does, whether to pull
// an image under policy given whether the runtime has it: Always pulls,
// IfNotPresent pulls when absent, Never never pulls and fails when absent.
// An empty policy is taken as the apiserver would default it for image.
func ShouldPull(policy corev1.PullPolicy, image string, present bool) (bool, error) {
	if policy == "" {
		policy = DefaultPullPolicy(image)
	}
	switch policy {
	case corev1.PullAlways:
		return true, nil
	case corev1.PullIfNotPresent:
		return !present, nil
	case corev1.PullNever:
		if !present {
			return false, fmt.Errorf("cri: %w: container image %q is not present with pull policy of Never", ErrImageNeverPull, image)
		}
		return false, nil
	}
	return false, fmt.Errorf("cri: unknown image pull policy %q", policy)
}

// PullOptions are the optional inputs of EnsureImage.
type PullOptions struct {
	// Auth are credentials to try in order; none means an anonymous pull.
	Auth []*runtimeapi.AuthConfig
	// SandboxConfig is the config of the pod's sandbox, which the runtime
	// may use (e.g. to pull with the sandbox's runtime handler).
	SandboxConfig *runtimeapi.PodSandboxConfig
	// Annotations are put on the image spec (the kubelet passes the pod's).
	Annotations map[string]string
	// RuntimeHandler is the pod's runtime handler, set on the image spec.
	RuntimeHandler string
}

// EnsureImage makes sure the runtime has image and returns the runtime's
// reference for it, as the kubelet's image manager does (EnsureImageExists
// in pkg/kubelet/images/image_manager.go): ":latest" is added to an image
// without tag or digest, the runtime is asked whether it has the image
// (unless policy is Always), and the image is pulled when ShouldPull says
// so, trying each credential in turn. Errors wrap ErrInvalidImageName,
// ErrImageInspect, ErrImageNeverPull or ErrImagePull.
//
// Not modelled: the KubeletEnsureSecretPulledImages check (on since v1.35)
// that a present image was pulled with credentials the pod may use, pull
// backoff, and the serialized/parallel puller; a caller that needs them
// wraps this function.
func EnsureImage(ctx context.Context, is ImageService, image string, policy corev1.PullPolicy, opts PullOptions) (string, error) {
	tagged, err := DefaultImageTag(image)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrInvalidImageName, err)
	}
	if policy == "" {
		policy = DefaultPullPolicy(image)
	}
	spec := &runtimeapi.ImageSpec{Image: tagged, Annotations: maps.Clone(opts.Annotations), RuntimeHandler: opts.RuntimeHandler}
	if spec.Annotations == nil {
		spec.Annotations = map[string]string{}
	}
	var ref string
	if policy != corev1.PullAlways {
		resp, err := is.ImageStatus(ctx, spec, false)
		if err != nil {
			return "", fmt.Errorf("cri: failed to inspect image %q: %w: %w", image, ErrImageInspect, err)
		}
		ref = resp.GetImage().GetId()
	}
	pull, err := ShouldPull(policy, image, ref != "")
	if err != nil || !pull {
		return ref, err
	}
	if len(opts.Auth) == 0 {
		ref, err := is.PullImage(ctx, spec, nil, opts.SandboxConfig)
		if err != nil {
			return "", fmt.Errorf("%w: %w", ErrImagePull, err)
		}
		return ref, nil
	}
	var errs []error
	for _, auth := range opts.Auth {
		ref, err := is.PullImage(ctx, spec, auth, opts.SandboxConfig)
		if err == nil {
			return ref, nil
		}
		errs = append(errs, err)
	}
	return "", fmt.Errorf("%w: %w", ErrImagePull, errors.Join(errs...))
}
