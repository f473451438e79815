package staticpod

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/clock"
)

// DirConfig configures a Dir source. DefaultDirConfig has the kubelet's
// defaults.
type DirConfig struct {
	// Path is the manifest directory (the kubelet's staticPodPath, often
	// /etc/kubernetes/manifests) or a single manifest file.
	Path string
	// NodeName is the node's name, as registered: pods are named
	// "<name>-<lowercased NodeName>" and bound to it.
	NodeName string
	// Source names the source in Updates and annotations. Default
	// SourceFile.
	Source string
	// Resync is how often the path is read again whatever the watch says
	// (the kubelet's fileCheckFrequency). Default 20s.
	Resync time.Duration
	// Clock drives resyncs and watch retries. Default: the real clock.
	Clock clock.WithTicker
	// Logger receives what the source finds wrong. Default: discarded.
	Logger *slog.Logger
}

// DefaultDirConfig returns the kubelet's defaults.
func DefaultDirConfig() DirConfig {
	return DirConfig{Source: SourceFile, Resync: 20 * time.Second}
}

// Dir is the kubelet's file source (pkg/kubelet/config/file.go): the
// static pods defined by the manifests in a directory, or by one file.
// List reads them once; Run watches the path and sends an Update with the
// complete set after every change, at start and on every resync.
type Dir struct {
	path, node, source string
	resync             time.Duration
	clock              clock.WithTicker
	log                *slog.Logger
	// newWatcher is the watch to use; tests replace it.
	newWatcher func() (watcher, error)
}

// NewDir checks cfg and returns a Dir.
func NewDir(cfg DirConfig) (*Dir, error) {
	def := DefaultDirConfig()
	// "github.com/sigma/go-inotify" wanted no trailing slash; upstream
	// still trims it, and so do we, so that UIDs (which hash the path) match.
	path := strings.TrimRight(cfg.Path, string(os.PathSeparator))
	if path == "" {
		return nil, errors.New("staticpod: DirConfig.Path is empty")
	}
	if cfg.NodeName == "" {
		return nil, errors.New("staticpod: DirConfig.NodeName is empty")
	}
	d := &Dir{path: path, node: cfg.NodeName, source: cmpOr(cfg.Source, def.Source),
		resync: cmpOr(cfg.Resync, def.Resync), clock: cfg.Clock, log: cfg.Logger, newWatcher: newFSWatcher}
	if d.clock == nil {
		d.clock = clock.RealClock{}
	}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	return d, nil
}

func cmpOr[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// List reads the path once and returns the source's set, as upstream's
// listConfig does:
//
//   - a directory: every entry whose name does not start with a dot, in
//     name order, not recursing into subdirectories; each regular file (or
//     symlink to one) up to MaxManifestSize holds one pod. A file that
//     cannot be used is left out and reported; it never affects the
//     others. Two files defining the same namespace/name: the later file's
//     pod is used and both are reported (ErrDuplicate). An empty directory
//     or one with no valid manifest is an empty set;
//   - a regular file: a set of its one pod; if it cannot be used there is
//     no set at all (Keep, ErrNoSet), so the source stays unseen, as
//     upstream;
//   - a missing path: an empty set and ErrNotExist, so the source is seen.
//
// The set is always exactly the pods of the files that are valid now: a
// file that becomes invalid takes its pod out of the next set.
func (d *Dir) List() Update {
	u := Update{Source: d.source}
	fail := func(path string, err error) { u.Errors = append(u.Errors, &ManifestError{Path: path, Err: err}) }
	info, err := os.Stat(d.path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		u.Pods = []*corev1.Pod{}
		fail(d.path, ErrNotExist)
	case err != nil:
		u.Keep = true
		fail(d.path, err)
	case info.IsDir():
		u.Pods = d.listDir(fail)
		// A malformed glob pattern lists nothing; upstream then sends no
		// set at all.
		u.Keep = u.Pods == nil
	case info.Mode().IsRegular():
		pod, err := d.readFile(d.path)
		if pod == nil {
			u.Keep = true
			fail(d.path, fmt.Errorf("%w: %w", ErrNoSet, err))
			break
		}
		if err != nil {
			fail(d.path, err)
		}
		u.Pods = d.withSource([]*corev1.Pod{pod})
	default:
		u.Keep = true
		fail(d.path, fmt.Errorf("%w: %s", ErrNotRegular, info.Mode().Type()))
	}
	for _, e := range u.Errors {
		d.log.Warn("static pod manifest not used as written", "source", d.source, "err", e)
	}
	return u
}

// listDir reads the manifests of the directory; see List.
func (d *Dir) listDir(fail func(string, error)) []*corev1.Pod {
	if strings.ContainsAny(d.path, `*?[\`) {
		fail(d.path, ErrGlobPattern)
	}
	paths, err := filepath.Glob(filepath.Join(d.path, "[^.]*"))
	if err != nil {
		fail(d.path, fmt.Errorf("%w: %w", ErrNoSet, err))
		return nil
	}
	sort.Strings(paths)
	pods := []*corev1.Pod{}
	byKey := map[string]int{}      // namespace/name -> index in pods
	files := map[string][]string{} // namespace/name -> files defining it
	for _, p := range paths {
		info, err := os.Stat(p)
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				fail(p, err)
			}
			continue
		}
		if !info.Mode().IsRegular() {
			fail(p, fmt.Errorf("%w: %s (not recursing)", ErrNotRegular, info.Mode().Type()))
			continue
		}
		pod, err := d.readFile(p)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue // removed since the listing: not a problem
			}
			fail(p, err)
		}
		if pod == nil {
			continue
		}
		key := pod.Namespace + "/" + pod.Name
		files[key] = append(files[key], p)
		if i, ok := byKey[key]; ok {
			pods[i] = nil // the later file wins, as in upstream's store
		}
		byKey[key] = len(pods)
		pods = append(pods, pod)
	}
	for _, key := range sortedKeys(files) {
		if fs := files[key]; len(fs) > 1 {
			fail(fs[len(fs)-1], &DuplicateError{Key: key, Paths: fs, Kept: fs[len(fs)-1]})
		}
	}
	kept := pods[:0]
	for _, p := range pods {
		if p != nil {
			kept = append(kept, p)
		}
	}
	return d.withSource(kept)
}

func sortedKeys(m map[string][]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// readFile reads and decodes one manifest. A pod is returned, perhaps with
// an ErrExtraDocuments error, when the manifest is usable.
func (d *Dir) readFile(path string) (*corev1.Pod, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxManifestSize))
	if err != nil {
		return nil, err
	}
	if len(data) >= MaxManifestSize {
		return nil, ErrTooLarge
	}
	pod, err := DecodeFile(data, d.node, path)
	if err != nil && !errors.Is(err, ErrExtraDocuments) {
		return nil, err
	}
	return pod, err
}

func (d *Dir) withSource(pods []*corev1.Pod) []*corev1.Pod {
	if d.source != SourceFile {
		for _, p := range pods {
			p.Annotations[AnnotationSource] = d.source
		}
	}
	return pods
}
