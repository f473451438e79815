package critest

import (
	"cmp"
	"context"
	"crypto/sha256"
	"fmt"
	"slices"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/kube-nodekit/nodekit/cri"
)

// registryImage is an image a fake registry serves, with the credentials
// it wants (nil: anonymous pulls are fine).
type registryImage struct {
	size uint64
	auth *runtimeapi.AuthConfig
}

// AddImage puts an image into the runtime's store, as if pulled or
// imported, and returns its id. ref may be short ("busybox:1.36").
func (r *Runtime) AddImage(ref string, size uint64) (string, error) {
	norm, err := cri.NormalizeImage(ref)
	if err != nil {
		return "", err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.store(norm, size).Id, nil
}

// ServeImage makes ref pullable from the fake registry. With auth, a pull
// must present that username and password.
func (r *Runtime) ServeImage(ref string, size uint64, auth *runtimeapi.AuthConfig) error {
	norm, err := cri.NormalizeImage(ref)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.registry[norm] = registryImage{size: size, auth: auth}
	return nil
}

// store adds or finds the image stored under a normalized reference.
// r.mu held.
func (r *Runtime) store(norm string, size uint64) *runtimeapi.Image {
	if img := r.findImage(norm); img != nil {
		return img
	}
	sum := sha256.Sum256([]byte(norm))
	id := fmt.Sprintf("sha256:%x", sum)
	img := &runtimeapi.Image{Id: id, RepoTags: []string{norm}, Size: size, Spec: &runtimeapi.ImageSpec{Image: norm}}
	if size == 0 {
		img.Size = 1
	}
	r.images[id] = img
	return img
}

// findImage looks an image up by id or by reference. r.mu held.
func (r *Runtime) findImage(ref string) *runtimeapi.Image {
	if img, ok := r.images[ref]; ok {
		return img
	}
	norm, err := cri.NormalizeImage(ref)
	if err != nil {
		return nil
	}
	for _, img := range r.images {
		if slices.Contains(img.RepoTags, norm) {
			return img
		}
	}
	return nil
}

// ListImages lists the stored images.
func (r *Runtime) ListImages(_ context.Context, _ *runtimeapi.ImageFilter) ([]*runtimeapi.Image, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.begin("ListImages"); err != nil {
		return nil, err
	}
	var out []*runtimeapi.Image
	for _, img := range r.images {
		out = append(out, proto.Clone(img).(*runtimeapi.Image))
	}
	slices.SortFunc(out, func(a, b *runtimeapi.Image) int { return cmp.Compare(a.Id, b.Id) })
	return out, nil
}

// ImageStatus returns the image, or a response without one when absent.
func (r *Runtime) ImageStatus(_ context.Context, spec *runtimeapi.ImageSpec, _ bool) (*runtimeapi.ImageStatusResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.begin("ImageStatus"); err != nil {
		return nil, err
	}
	img := r.findImage(spec.GetImage())
	if img == nil {
		return &runtimeapi.ImageStatusResponse{}, nil
	}
	return &runtimeapi.ImageStatusResponse{Image: proto.Clone(img).(*runtimeapi.Image)}, nil
}

// PullImage copies an image from the fake registry into the store. An
// image the registry does not serve is NotFound; wrong or missing
// credentials for one that needs them are an Unknown error saying
// "401 Unauthorized", as containerd reports them.
func (r *Runtime) PullImage(_ context.Context, spec *runtimeapi.ImageSpec, auth *runtimeapi.AuthConfig, _ *runtimeapi.PodSandboxConfig) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.begin("PullImage"); err != nil {
		return "", err
	}
	norm, err := cri.NormalizeImage(spec.GetImage())
	if err != nil {
		return "", status.Errorf(codes.Unknown, "failed to pull and unpack image %q: %v", spec.GetImage(), err)
	}
	ri, ok := r.registry[norm]
	if !ok {
		return "", status.Errorf(codes.NotFound, "failed to pull and unpack image %q: failed to resolve reference %q: %s: not found", spec.GetImage(), norm, norm)
	}
	if ri.auth != nil && (auth.GetUsername() != ri.auth.Username || auth.GetPassword() != ri.auth.Password) {
		return "", status.Errorf(codes.Unknown, "failed to pull and unpack image %q: failed to resolve reference %q: pull access denied: 401 Unauthorized", spec.GetImage(), norm)
	}
	return r.store(norm, ri.size).Id, nil
}

// RemoveImage removes an image; removing an absent one is not an error.
func (r *Runtime) RemoveImage(_ context.Context, spec *runtimeapi.ImageSpec) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.begin("RemoveImage"); err != nil {
		return err
	}
	if img := r.findImage(spec.GetImage()); img != nil {
		delete(r.images, img.Id)
	}
	return nil
}

// ImageFsInfo reports the stored images' total size as used bytes.
func (r *Runtime) ImageFsInfo(context.Context) (*runtimeapi.ImageFsInfoResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.begin("ImageFsInfo"); err != nil {
		return nil, err
	}
	var used uint64
	for _, img := range r.images {
		used += img.Size
	}
	return &runtimeapi.ImageFsInfoResponse{ImageFilesystems: []*runtimeapi.FilesystemUsage{{
		Timestamp: r.clock.Now().UnixNano(), FsId: &runtimeapi.FilesystemIdentifier{Mountpoint: "/critest/images"},
		UsedBytes: &runtimeapi.UInt64Value{Value: used},
	}}}, nil
}
