package staticpod

import (
	"errors"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Errors callers can test for with errors.Is. Each problem with one
// manifest is reported as a *ManifestError that wraps one of them (or an
// I/O or decoding error).
var (
	// ErrNotPod: the manifest did not decode as a single v1 Pod (a file may
	// not hold a PodList, only a URL may).
	ErrNotPod = errors.New("not a single v1 Pod")
	// ErrNoName: the pod has no metadata.name.
	ErrNoName = errors.New("name is needed for the pod")
	// ErrTooLarge: the manifest has MaxManifestSize bytes or more.
	ErrTooLarge = errors.New("manifest of 10MB or more")
	// ErrInvalid: the pod failed validation (see *ValidationError).
	ErrInvalid = errors.New("invalid pod")
	// ErrAPIReference: a static pod referenced an API object (see
	// *ReferenceError).
	ErrAPIReference = errors.New("static pods may not reference API objects")
	// ErrExtraDocuments: a YAML manifest held more than one document. As
	// upstream, only the first is used; the pod is still accepted.
	ErrExtraDocuments = errors.New("YAML documents after the first are ignored")
	// ErrDuplicate: two manifests define the same namespace/name (see
	// *DuplicateError). As upstream, the later one wins.
	ErrDuplicate = errors.New("duplicate pod")
	// ErrNotRegular: a directory entry is a directory or a special file;
	// as upstream, it is skipped (never recursed into).
	ErrNotRegular = errors.New("not a regular file")
	// ErrNotExist: the configured path does not exist. As upstream, the
	// source still reports an empty set, so it counts as seen.
	ErrNotExist = errors.New("path does not exist")
	// ErrGlobPattern: the directory path contains glob metacharacters.
	// Upstream lists a directory with filepath.Glob(path + "/[^.]*"), so
	// such a path may match other files or none; nodekit does the same.
	ErrGlobPattern = errors.New("path contains glob metacharacters; upstream's listing treats them as a pattern")
	// ErrEmptyBody: a URL returned 200 with no body. As upstream, that is
	// an empty set: every pod of the URL source is removed.
	ErrEmptyBody = errors.New("zero-length body: the URL source's set is now empty")
	// ErrUnchanged: a URL returned the same body as the last read that was
	// not empty, so, as upstream, no new set is sent — even when an empty
	// body emptied the set in between, or when that body was rejected.
	ErrUnchanged = errors.New("body unchanged since an earlier read; as upstream, no set is sent")
	// ErrNoSet: a single-file path holds an invalid manifest, or a
	// directory path is a malformed glob pattern. As upstream, no set is
	// sent, so the source is not seen until that is fixed.
	ErrNoSet = errors.New("nothing usable to list: no set is sent and the source is not seen")
)

// ManifestError is a problem with one manifest: a file or a URL.
type ManifestError struct {
	Path string // file path or URL
	Err  error
}

func (e *ManifestError) Error() string { return "staticpod: " + e.Path + ": " + e.Err.Error() }
func (e *ManifestError) Unwrap() error { return e.Err }

// ValidationError lists why a pod is invalid. It matches ErrInvalid.
type ValidationError struct {
	Errs field.ErrorList
}

func (e *ValidationError) Error() string        { return "invalid pod: " + e.Errs.ToAggregate().Error() }
func (e *ValidationError) Is(target error) bool { return target == ErrInvalid }

// ReferenceError names the kind of API object a static pod referenced. It
// matches ErrAPIReference.
type ReferenceError struct {
	// Resource is upstream's description, such as "secrets",
	// "configmaps (via projected volumes)" or "serviceaccounts".
	Resource string
}

func (e *ReferenceError) Error() string        { return "static pods may not reference " + e.Resource }
func (e *ReferenceError) Is(target error) bool { return target == ErrAPIReference }

// DuplicateError reports manifests that define the same pod.
type DuplicateError struct {
	Key   string   // namespace/name after defaulting
	Paths []string // every manifest that defines it, in listing order
	Kept  string   // the one whose pod is used: the last, as upstream
}

func (e *DuplicateError) Error() string {
	return fmt.Sprintf("pod %s is defined by %s; as upstream, the last (%s) wins",
		e.Key, strings.Join(e.Paths, ", "), e.Kept)
}
func (e *DuplicateError) Is(target error) bool { return target == ErrDuplicate }
