package cri

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// The ImageService calls. PullImage has no timeout of its own (pulls take
// as long as they take; the caller's context bounds them), the others run
// under Options.Timeout.

// ListImages lists the images that match filter (nil: all).
func (c *Client) ListImages(ctx context.Context, filter *runtimeapi.ImageFilter) ([]*runtimeapi.Image, error) {
	resp, err := call(ctx, c, 1, "ListImages", "", func(ctx context.Context) (*runtimeapi.ListImagesResponse, error) {
		return c.img.ListImages(ctx, &runtimeapi.ListImagesRequest{Filter: filter})
	})
	return resp.GetImages(), err
}

// ImageStatus returns the image's status; resp.Image is nil when the image
// is not present (not an error, as in the CRI).
func (c *Client) ImageStatus(ctx context.Context, image *runtimeapi.ImageSpec, verbose bool) (*runtimeapi.ImageStatusResponse, error) {
	resp, err := call(ctx, c, 1, "ImageStatus", image.GetImage(), func(ctx context.Context) (*runtimeapi.ImageStatusResponse, error) {
		return c.img.ImageStatus(ctx, &runtimeapi.ImageStatusRequest{Image: image, Verbose: verbose})
	})
	if err != nil {
		return nil, err
	}
	if img := resp.GetImage(); img != nil && (img.Id == "" || img.Size == 0) {
		// k8s.io/cri-client rejects these: an image without id or size is
		// a runtime bug, not an image.
		return nil, fmt.Errorf("cri: ImageStatus %s: the runtime returned an image without id or size", image.GetImage())
	}
	return resp, nil
}

// PullImage pulls an image with optional credentials and returns the
// image's reference (usually its digest) in the runtime's store. The error
// carries the runtime's message without the gRPC code prefix, as the
// kubelet's does (a failed pull is usually codes.Unknown).
func (c *Client) PullImage(ctx context.Context, image *runtimeapi.ImageSpec, auth *runtimeapi.AuthConfig, podSandboxConfig *runtimeapi.PodSandboxConfig) (string, error) {
	resp, err := call(ctx, c, 0, "PullImage", image.GetImage(), func(ctx context.Context) (*runtimeapi.PullImageResponse, error) {
		return c.img.PullImage(ctx, &runtimeapi.PullImageRequest{Image: image, Auth: auth, SandboxConfig: podSandboxConfig})
	})
	if err != nil {
		return "", err
	}
	if resp.ImageRef == "" {
		return "", fmt.Errorf("cri: PullImage %s: imageRef of image is not set", image.GetImage())
	}
	return resp.ImageRef, nil
}

// RemoveImage removes an image; removing an absent image is not an error.
func (c *Client) RemoveImage(ctx context.Context, image *runtimeapi.ImageSpec) error {
	_, err := call(ctx, c, 1, "RemoveImage", image.GetImage(), func(ctx context.Context) (*runtimeapi.RemoveImageResponse, error) {
		return c.img.RemoveImage(ctx, &runtimeapi.RemoveImageRequest{Image: image})
	})
	return err
}

// ImageFsInfo returns the usage of the filesystems that hold images and
// container layers.
func (c *Client) ImageFsInfo(ctx context.Context) (*runtimeapi.ImageFsInfoResponse, error) {
	return call(ctx, c, 1, "ImageFsInfo", "", func(ctx context.Context) (*runtimeapi.ImageFsInfoResponse, error) {
		return c.img.ImageFsInfo(ctx, &runtimeapi.ImageFsInfoRequest{})
	})
}

// Code returns the gRPC code of an error from this package or from a CRI
// implementation (codes.OK for nil, codes.Unknown for errors that carry
// none).
func Code(err error) codes.Code {
	if err == nil {
		return codes.OK
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return status.Code(err)
}
