package staticpod

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
)

// seenTimeFormat is how the kubelet writes kubernetes.io/config.seen
// (RFC3339NanoFixed in k8s.io/component-base/logs).
const seenTimeFormat = "2006-01-02T15:04:05.000000000Z07:00"

// MergerConfig configures a Merger.
type MergerConfig struct {
	// Sources are the names of the sources that must each have sent a set
	// before SeenAll reports true, such as SourceFile, SourceHTTP and
	// SourceAPI. A set from a source not listed adds it.
	Sources []string
	// Clock stamps kubernetes.io/config.seen. Default: the real clock.
	Clock clock.PassiveClock
}

// Merger merges the pod sets of any number of named sources into one
// stream of changes, as the kubelet's PodConfig does
// (pkg/kubelet/config/config.go): each source sends complete sets; the
// Merger answers with the ADD, UPDATE, DELETE, REMOVE and RECONCILE updates
// that turn the previous set into the new one, and remembers which sources
// have been seen. Pods are keyed by UID within their source.
//
// The Merger does no I/O and starts no goroutine: Set returns the updates
// for the caller to deliver. It is safe for concurrent use; Sets are
// serialised, so updates of two Sets never interleave.
type Merger struct {
	clock clock.PassiveClock

	mu      sync.Mutex
	sources map[string]bool                      // registered -> has sent a set
	pods    map[string]map[types.UID]*corev1.Pod // source -> uid -> pod
}

// NewMerger returns a Merger that has seen nothing yet.
func NewMerger(cfg MergerConfig) *Merger {
	m := &Merger{clock: cfg.Clock, sources: map[string]bool{}, pods: map[string]map[types.UID]*corev1.Pod{}}
	if m.clock == nil {
		m.clock = clock.RealClock{}
	}
	for _, s := range cfg.Sources {
		m.sources[s] = false
	}
	return m
}

// Apply feeds a source's Update to Set; an Update that carries no set
// (Keep) changes nothing.
func (m *Merger) Apply(u Update) ([]PodUpdate, error) {
	if u.Keep {
		return nil, nil
	}
	return m.Set(u.Source, u.Pods)
}

// Set replaces the pods of source with pods and returns the updates, in
// upstream's order: REMOVE, ADD, UPDATE, DELETE, then RECONCILE; an update
// with no pods is left out, except that the first set of a source that adds
// nothing yields one empty ADD, the signal that the source is ready.
//
// Every pod gets kubernetes.io/config.source = source; new pods get
// kubernetes.io/config.seen. Pods with the same namespace and name as an
// earlier pod of the same set are dropped, as upstream does; the returned
// error (matching ErrDuplicate) lists them, and the updates are valid
// whether or not err is nil. The pods passed in are not modified, and the
// pods returned are copies the caller owns.
func (m *Merger) Set(source string, pods []*corev1.Pod) ([]PodUpdate, error) {
	m.mu.Lock()
	defer m.mu.Unlock()

	firstSet := !m.sources[source]
	m.sources[source] = true
	old := m.pods[source]
	cur := make(map[types.UID]*corev1.Pod, len(pods))
	var adds, updates, deletes, removes, reconciles []*corev1.Pod
	var errs []error

	names := map[string]bool{}
	for _, in := range pods {
		key := in.Namespace + "/" + in.Name
		if names[key] {
			errs = append(errs, fmt.Errorf("%w: source %q sent pod %s more than once; as upstream, the first is kept", ErrDuplicate, source, key))
			continue
		}
		names[key] = true

		if existing, ok := old[in.UID]; ok {
			cur[in.UID] = existing
			// The source annotation is local, so the comparison does not
			// need it set: compare before copying, the common case of a
			// resync being "nothing changed".
			if !differ(existing, in) {
				if !reflect.DeepEqual(&existing.Status, &in.Status) {
					existing.Status = *in.Status.DeepCopy()
					reconciles = append(reconciles, existing)
				}
				continue
			}
			ref := withSource(in, source)
			if update(existing, ref) {
				deletes = append(deletes, existing)
			} else {
				updates = append(updates, existing)
			}
			continue
		}
		ref := withSource(in, source)
		ref.Annotations[AnnotationSeen] = m.clock.Now().Format(seenTimeFormat)
		cur[ref.UID] = ref
		adds = append(adds, ref)
	}
	for uid, p := range old {
		if _, ok := cur[uid]; !ok {
			removes = append(removes, p)
		}
	}
	// Upstream sends removals in map order; sort them so runs repeat.
	slices.SortFunc(removes, func(a, b *corev1.Pod) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name), cmp.Compare(a.UID, b.UID))
	})
	m.pods[source] = cur

	var out []PodUpdate
	emit := func(op Op, ps []*corev1.Pod) {
		if len(ps) > 0 {
			out = append(out, PodUpdate{Op: op, Source: source, Pods: copyPods(ps)})
		}
	}
	emit(OpRemove, removes)
	emit(OpAdd, adds)
	emit(OpUpdate, updates)
	emit(OpDelete, deletes)
	if firstSet && len(adds) == 0 && len(updates) == 0 && len(deletes) == 0 {
		out = append(out, PodUpdate{Op: OpAdd, Source: source, Pods: []*corev1.Pod{}})
	}
	emit(OpReconcile, reconciles)
	return out, errors.Join(errs...)
}

// Seen reports whether source has sent at least one set.
func (m *Merger) Seen(source string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.sources[source]
}

// SeenAll reports whether every configured source has sent at least one
// set. Until then the merged state is partial, and a consumer must not
// delete pods (or their mirror pods, volumes and containers) for not being
// in it (SeenAllSources in pkg/kubelet/config/config.go).
func (m *Merger) SeenAll() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, seen := range m.sources {
		if !seen {
			return false
		}
	}
	return true
}

// Pods returns copies of the current pods of every source, sorted by
// source, namespace and name.
func (m *Merger) Pods() []*corev1.Pod {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []*corev1.Pod
	for _, src := range slices.Sorted(maps.Keys(m.pods)) {
		start := len(out)
		for _, p := range m.pods[src] {
			out = append(out, p.DeepCopy())
		}
		slices.SortFunc(out[start:], func(a, b *corev1.Pod) int {
			return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
		})
	}
	return out
}

// localAnnotations are written by the kubelet itself and ignored when
// comparing a pod with its previous version.
var localAnnotations = [...]string{AnnotationSource, AnnotationMirror, AnnotationSeen}

func isLocal(key string) bool { return slices.Contains(localAnnotations[:], key) }

func withSource(in *corev1.Pod, source string) *corev1.Pod {
	ref := in.DeepCopy()
	if ref.Annotations == nil {
		ref.Annotations = map[string]string{}
	}
	ref.Annotations[AnnotationSource] = source
	return ref
}

// update folds ref, the source's new version of a known pod that differs
// from existing, into existing, and reports whether the change is a
// graceful deletion (checkAndUpdatePod in pkg/kubelet/config/config.go).
func update(existing, ref *corev1.Pod) (deleting bool) {
	ref.Annotations[AnnotationSeen] = existing.Annotations[AnnotationSeen]
	existing.Spec = ref.Spec
	existing.Labels = ref.Labels
	existing.DeletionTimestamp = ref.DeletionTimestamp
	existing.DeletionGracePeriodSeconds = ref.DeletionGracePeriodSeconds
	existing.Generation = ref.Generation
	existing.Status = ref.Status
	// The new annotations, with the local ones kept from the old pod.
	ann := maps.Clone(ref.Annotations)
	for _, k := range localAnnotations {
		if v, ok := existing.Annotations[k]; ok {
			ann[k] = v
		}
	}
	existing.Annotations = ann
	return ref.DeletionTimestamp != nil
}

// differ is podsDifferSemantically: spec, labels, deletion fields, or
// annotations other than the local ones.
func differ(existing, ref *corev1.Pod) bool {
	return !reflect.DeepEqual(&existing.Spec, &ref.Spec) ||
		!reflect.DeepEqual(existing.Labels, ref.Labels) ||
		!reflect.DeepEqual(existing.DeletionTimestamp, ref.DeletionTimestamp) ||
		!reflect.DeepEqual(existing.DeletionGracePeriodSeconds, ref.DeletionGracePeriodSeconds) ||
		!sameAnnotations(existing.Annotations, ref.Annotations)
}

func sameAnnotations(a, b map[string]string) bool {
	for k, v := range b {
		if isLocal(k) {
			continue
		}
		if av, ok := a[k]; !ok || av != v {
			return false
		}
	}
	for k := range a {
		if isLocal(k) {
			continue
		}
		if _, ok := b[k]; !ok {
			return false
		}
	}
	return true
}

func copyPods(ps []*corev1.Pod) []*corev1.Pod {
	out := make([]*corev1.Pod, len(ps))
	for i, p := range ps {
		out[i] = p.DeepCopy()
	}
	return out
}
