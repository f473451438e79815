package cri

import (
	"errors"
	"fmt"
	"strings"
)

// An image reference names an image in a registry:
//
//	[domain[:port]/]path[:tag][@algorithm:hex]
//
// The kubelet and containerd read it the Docker way
// (github.com/distribution/reference, ParseNormalizedNamed): a first
// component that has no '.' or ':', is not "localhost" and is lowercase is
// not a registry, so "busybox" is docker.io/library/busybox and
// "kube/proxy" is docker.io/kube/proxy. An image without tag or digest means
// the tag "latest".

// ImageRef is a parsed, normalized image reference.
type ImageRef struct {
	// Domain is the registry, "docker.io" for Docker Hub names. It is empty
	// only for the rare names whose first component is neither a registry
	// nor docker.io (see ParseImageRef).
	Domain string
	// Path is the repository in the registry, "library/busybox".
	Path string
	// Tag and Digest are as written; either, both or neither may be set.
	Tag    string
	Digest string
}

// Name is the repository name with its registry: "docker.io/library/busybox".
func (r ImageRef) Name() string {
	if r.Domain == "" {
		return r.Path
	}
	return r.Domain + "/" + r.Path
}

// String is the full normalized reference.
func (r ImageRef) String() string {
	s := r.Name()
	if r.Tag != "" {
		s += ":" + r.Tag
	}
	if r.Digest != "" {
		s += "@" + r.Digest
	}
	return s
}

// Errors of ParseImageRef, wrapped with the reference.
var (
	ErrInvalidImageRef = errors.New("invalid reference format")
)

const (
	defaultDomain  = "docker.io"
	legacyDomain   = "index.docker.io"
	officialPrefix = "library/"
	maxPathLength  = 255
)

// ParseImageRef parses and normalizes an image reference exactly as
// distribution/reference's ParseNormalizedNamed does (which the kubelet's
// ParseImageName and containerd use): it adds docker.io and library/,
// maps index.docker.io to docker.io, and rejects uppercase repository names,
// 64-hex-digit names (image ids), paths over 255 characters, malformed tags
// and digests, and digests whose algorithm is not sha256, sha384 or sha512
// or whose hex is not the algorithm's length in lowercase. It does not
// default the tag; see NormalizeImage and DefaultImageTag.
func ParseImageRef(s string) (ImageRef, error) {
	if isIdentifier(s) {
		return ImageRef{}, fmt.Errorf("cri: invalid repository name (%s), cannot specify 64-byte hexadecimal strings", s)
	}
	domain, remainder := splitDockerDomain(s)
	remote := remainder
	if i := strings.IndexByte(remainder, ':'); i >= 0 {
		remote = remainder[:i]
	}
	if strings.ToLower(remote) != remote {
		return ImageRef{}, fmt.Errorf("cri: %w: repository name (%s) must be lowercase", ErrInvalidImageRef, remote)
	}
	return parseFull(domain + "/" + remainder)
}

// splitDockerDomain is the Docker rule for telling a registry from a path.
func splitDockerDomain(name string) (domain, remainder string) {
	first, rest, ok := strings.Cut(name, "/")
	switch {
	case !ok:
		return defaultDomain, officialPrefix + name
	case first == "localhost":
		domain, remainder = first, rest
	case first == legacyDomain:
		domain, remainder = defaultDomain, rest
	case strings.ContainsAny(first, ".:"), strings.ToLower(first) != first:
		domain, remainder = first, rest
	default:
		domain, remainder = defaultDomain, name
	}
	if domain == defaultDomain && !strings.Contains(remainder, "/") {
		remainder = officialPrefix + remainder
	}
	return domain, remainder
}

// parseFull is distribution/reference's Parse: name[:tag][@digest].
func parseFull(s string) (ImageRef, error) {
	invalid := func() (ImageRef, error) {
		if s == "" {
			return ImageRef{}, fmt.Errorf("cri: %w: repository name must have at least one component", ErrInvalidImageRef)
		}
		return ImageRef{}, fmt.Errorf("cri: %w: %q", ErrInvalidImageRef, s)
	}
	var r ImageRef
	named := s
	if i := strings.IndexByte(s, '@'); i >= 0 {
		named, r.Digest = s[:i], s[i+1:]
		if !validDigestPattern(r.Digest) {
			return invalid()
		}
	}
	if i := strings.LastIndexByte(named, ':'); i > strings.LastIndexByte(named, '/') {
		named, r.Tag = named[:i], named[i+1:]
		if !validTag(r.Tag) {
			return invalid()
		}
	}
	first, rest, hasSlash := strings.Cut(named, "/")
	switch {
	case hasSlash && validDomain(first) && validRemoteName(rest):
		r.Domain, r.Path = first, rest
	case validRemoteName(named):
		r.Path = named
	default:
		return invalid()
	}
	if len(r.Path) > maxPathLength {
		return ImageRef{}, fmt.Errorf("cri: %w: repository name must not be more than %d characters", ErrInvalidImageRef, maxPathLength)
	}
	if r.Digest != "" {
		if err := validateDigest(r.Digest); err != nil {
			return ImageRef{}, err
		}
	}
	return r, nil
}

func isAlnumLower(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }
func isAlnum(c byte) bool      { return isAlnumLower(c) || c >= 'A' && c <= 'Z' }
func isWord(c byte) bool       { return isAlnum(c) || c == '_' }
func isHex(c byte) bool        { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }
func isLowerHex(c byte) bool   { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' }

// isIdentifier: exactly 64 lowercase hex digits.
func isIdentifier(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isLowerHex(s[i]) {
			return false
		}
	}
	return true
}

// validDomain: host[:port], host a DNS name of alphanumeric components
// (inner '-' allowed) or a bracketed IPv6 address of hex digits and ':'.
func validDomain(s string) bool {
	host, port := s, ""
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 2 {
			return false
		}
		for i := 1; i < end; i++ {
			if !isHex(s[i]) && s[i] != ':' {
				return false
			}
		}
		host, port = "", s[end+1:]
		if port != "" {
			if port[0] != ':' {
				return false
			}
			port = port[1:]
			if port == "" {
				return false
			}
		}
	} else if i := strings.IndexByte(s, ':'); i >= 0 {
		host, port = s[:i], s[i+1:]
		if port == "" {
			return false
		}
	}
	for i := 0; i < len(port); i++ {
		if port[i] < '0' || port[i] > '9' {
			return false
		}
	}
	if host == "" {
		return strings.HasPrefix(s, "[")
	}
	for comp := range strings.SplitSeq(host, ".") {
		if comp == "" || !isAlnum(comp[0]) || !isAlnum(comp[len(comp)-1]) {
			return false
		}
		for i := 0; i < len(comp); i++ {
			if !isAlnum(comp[i]) && comp[i] != '-' {
				return false
			}
		}
	}
	return true
}

// validRemoteName: path components separated by '/'.
func validRemoteName(s string) bool {
	for comp := range strings.SplitSeq(s, "/") {
		if !validPathComponent(comp) {
			return false
		}
	}
	return true
}

// validPathComponent: runs of [a-z0-9] joined by ".", "_", "__" or "-"+.
func validPathComponent(s string) bool {
	if s == "" || !isAlnumLower(s[0]) || !isAlnumLower(s[len(s)-1]) {
		return false
	}
	for i := 0; i < len(s); {
		if isAlnumLower(s[i]) {
			i++
			continue
		}
		j := i
		for j < len(s) && !isAlnumLower(s[j]) {
			j++
		}
		switch sep := s[i:j]; {
		case sep == ".", sep == "_", sep == "__", strings.Trim(sep, "-") == "":
		default:
			return false
		}
		i = j
	}
	return true
}

// validTag: a word character, then up to 127 word characters, '.' or '-'.
func validTag(s string) bool {
	if len(s) == 0 || len(s) > 128 || !isWord(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if !isWord(s[i]) && s[i] != '.' && s[i] != '-' {
			return false
		}
	}
	return true
}

// validDigestPattern is the reference grammar's digest: algorithm
// components of a letter and alphanumerics joined by one of "-_+.", a ':',
// and at least 32 hex digits.
func validDigestPattern(s string) bool {
	alg, hex, ok := strings.Cut(s, ":")
	if !ok || len(hex) < 32 {
		return false
	}
	for i := 0; i < len(hex); i++ {
		if !isHex(hex[i]) {
			return false
		}
	}
	start := true
	for i := 0; i < len(alg); i++ {
		c := alg[i]
		switch {
		case start:
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
				return false
			}
			start = false
		case c == '-' || c == '_' || c == '+' || c == '.':
			start = true
		case !isAlnum(c):
			return false
		}
	}
	return !start
}

// validateDigest is go-digest's Validate for the algorithms the kubelet
// links: the hex must be lowercase and exactly as long as the hash.
func validateDigest(d string) error {
	alg, hex, _ := strings.Cut(d, ":")
	var size int
	switch alg {
	case "sha256":
		size = 64
	case "sha384":
		size = 96
	case "sha512":
		size = 128
	default:
		return fmt.Errorf("cri: %w: unsupported digest algorithm in %q", ErrInvalidImageRef, d)
	}
	if len(hex) != size {
		return fmt.Errorf("cri: %w: invalid checksum digest length in %q", ErrInvalidImageRef, d)
	}
	for i := 0; i < len(hex); i++ {
		if !isLowerHex(hex[i]) {
			return fmt.Errorf("cri: %w: invalid checksum digest format in %q", ErrInvalidImageRef, d)
		}
	}
	return nil
}

// NormalizeImage returns the fully qualified reference containerd stores an
// image under (distribution/reference's ParseDockerRef): registry and
// repository filled in, ":latest" when there is neither tag nor digest, and
// the tag dropped when a digest pins the image.
//
//	busybox                      -> docker.io/library/busybox:latest
//	registry.k8s.io/pause:3.10.2 -> registry.k8s.io/pause:3.10.2
//	busybox:1.36@sha256:<hex>    -> docker.io/library/busybox@sha256:<hex>
func NormalizeImage(image string) (string, error) {
	r, err := ParseImageRef(image)
	if err != nil {
		return "", err
	}
	switch {
	case r.Digest != "":
		r.Tag = ""
	case r.Tag == "":
		r.Tag = "latest"
	}
	return r.String(), nil
}

// DefaultImageTag appends ":latest" to an image without tag or digest and
// otherwise returns it unchanged, without qualifying the name (the kubelet's
// applyDefaultImageTag in pkg/kubelet/images/image_manager.go, which keeps
// "busybox" short so the runtime applies its own default registry).
func DefaultImageTag(image string) (string, error) {
	r, err := ParseImageRef(image)
	if err != nil {
		return "", fmt.Errorf("cri: failed to apply default image tag %q: %w", image, err)
	}
	tag := r.Tag
	if r.Digest == "" && tag == "" {
		tag = "latest"
	}
	if r.Digest == "" && tag != "" && !strings.HasSuffix(image, ":"+tag) {
		image += ":" + tag
	}
	return image, nil
}
