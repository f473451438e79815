package staticpod

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
)

// MirrorConfig configures a Mirror. DefaultMirrorConfig has the defaults.
type MirrorConfig struct {
	// NodeName is the node whose static pods are mirrored.
	NodeName string
	// Client talks to the apiserver. It should authenticate as the node's
	// kubelet (system:node:<NodeName>), as a kubelet does: the
	// NodeRestriction admission plugin then lets it create mirror pods only
	// for its own node, and nothing else.
	Client kubernetes.Interface
	// Resync is how often everything is reconciled even without a change
	// (the kubelet's syncFrequency). Default 1m.
	Resync time.Duration
	// Clock drives resyncs and retries. Default: the real clock.
	Clock clock.WithTicker
	// Logger receives what failed. Default: discarded.
	Logger *slog.Logger
	// OnError, if set, is called with the error of each failed reconcile
	// (from Run's goroutine; it must not block).
	OnError func(error)
}

// DefaultMirrorConfig returns the defaults.
func DefaultMirrorConfig() MirrorConfig { return MirrorConfig{Resync: time.Minute} }

// Retry backoff after a failed reconcile.
const (
	mirrorRetryMin = 500 * time.Millisecond
	mirrorRetryMax = 30 * time.Second
)

// Mirror keeps a mirror pod in the apiserver for each static pod of the
// node, as the kubelet does (tryReconcileMirrorPods in pkg/kubelet/kubelet.go,
// the orphan clean-up of HandlePodCleanups in kubelet_pods.go, and
// pkg/kubelet/pod/mirror_client.go).
//
// A mirror pod is a read-only reflection: it makes the static pod visible
// to kubectl, the scheduler's accounting and controllers, but the manifest
// is the source of truth. Editing a mirror pod changes nothing on the node;
// deleting it only makes the Mirror create it again; to change or stop a
// static pod, change or remove its manifest.
type Mirror struct {
	node   string
	client kubernetes.Interface
	resync time.Duration
	clock  clock.WithTicker
	log    *slog.Logger
	onErr  func(error)

	mu      sync.Mutex
	static  map[string]*corev1.Pod // namespace/name -> static pod
	haveSet bool                   // SetStaticPods was called
	kick    chan struct{}
}

// NewMirror checks cfg and returns a Mirror.
func NewMirror(cfg MirrorConfig) (*Mirror, error) {
	if cfg.NodeName == "" || cfg.Client == nil {
		return nil, errors.New("staticpod: MirrorConfig needs NodeName and Client")
	}
	m := &Mirror{node: cfg.NodeName, client: cfg.Client, resync: cmpOr(cfg.Resync, DefaultMirrorConfig().Resync),
		clock: cfg.Clock, log: cfg.Logger, onErr: cfg.OnError, static: map[string]*corev1.Pod{}, kick: make(chan struct{}, 1)}
	if m.clock == nil {
		m.clock = clock.RealClock{}
	}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	return m, nil
}

// SetStaticPods replaces the static pods to mirror; pods that are not
// static (see IsStatic) are ignored. Mirror pods of the node whose static
// pod is not in the set are deleted, so call it only once every static
// source has been seen (Merger.SeenAll); until the first call, no mirror
// pod is deleted for being unknown.
func (m *Mirror) SetStaticPods(pods []*corev1.Pod) {
	static := make(map[string]*corev1.Pod, len(pods))
	for _, p := range pods {
		if IsStatic(p) {
			static[p.Namespace+"/"+p.Name] = p.DeepCopy()
		}
	}
	m.mu.Lock()
	m.static, m.haveSet = static, true
	m.mu.Unlock()
	m.poke()
}

func (m *Mirror) poke() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// Run watches the node's pods and its Node object and reconciles after
// every change there or in SetStaticPods, every Resync, and after a
// failure (with backoff), until ctx is cancelled; then it stops its
// informers, waits for them, and returns nil. Errors of single reconciles
// go to the Logger and OnError, and are retried.
func (m *Mirror) Run(ctx context.Context) error {
	podFactory := informers.NewSharedInformerFactoryWithOptions(m.client, 0, informers.WithTweakListOptions(func(o *metav1.ListOptions) {
		o.FieldSelector = fields.OneTermEqualSelector("spec.nodeName", m.node).String()
	}))
	nodeFactory := informers.NewSharedInformerFactoryWithOptions(m.client, 0, informers.WithTweakListOptions(func(o *metav1.ListOptions) {
		o.FieldSelector = fields.OneTermEqualSelector("metadata.name", m.node).String()
	}))
	pods, nodes := podFactory.Core().V1().Pods(), nodeFactory.Core().V1().Nodes()
	handler := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { m.poke() },
		UpdateFunc: func(any, any) { m.poke() },
		DeleteFunc: func(any) { m.poke() },
	}
	if _, err := pods.Informer().AddEventHandler(handler); err != nil {
		return err
	}
	if _, err := nodes.Informer().AddEventHandler(handler); err != nil {
		return err
	}
	podFactory.Start(ctx.Done())
	nodeFactory.Start(ctx.Done())
	defer podFactory.Shutdown()
	defer nodeFactory.Shutdown()
	for _, f := range []informers.SharedInformerFactory{podFactory, nodeFactory} {
		for typ, ok := range f.WaitForCacheSync(ctx.Done()) {
			if !ok {
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("staticpod: mirror: %v cache did not sync", typ)
			}
		}
	}

	resync := m.clock.NewTicker(m.resync)
	defer resync.Stop()
	var retry <-chan time.Time
	backoff := mirrorRetryMin
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-m.kick:
		case <-resync.C():
		case <-retry:
		}
		retry = nil
		node, _ := nodes.Lister().Get(m.node)
		all, _ := pods.Lister().List(labels.Everything())
		if err := m.reconcile(ctx, node, all); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			m.log.Warn("mirror pods not reconciled", "node", m.node, "err", err)
			if m.onErr != nil {
				m.onErr(err)
			}
			retry = m.clock.After(backoff)
			backoff = min(2*backoff, mirrorRetryMax)
		} else {
			backoff = mirrorRetryMin
		}
	}
}

// mirrorStep is one thing to do: delete a mirror pod (only if its UID is
// still the one seen, when uid is set), then, if that worked or there was
// nothing to delete, create a mirror pod for a static pod.
type mirrorStep struct {
	del    *corev1.Pod
	uid    *types.UID
	create *corev1.Pod
}

// planMirrors decides what to do, given the static pods and the pods bound
// to the node, as the kubelet decides it.
func planMirrors(static map[string]*corev1.Pod, nodePods []*corev1.Pod, deleteOrphans bool) []mirrorStep {
	mirrors := map[string]*corev1.Pod{}
	for _, p := range nodePods {
		if IsMirror(p) {
			mirrors[p.Namespace+"/"+p.Name] = p
		}
	}
	var steps []mirrorStep
	for _, key := range slices.Sorted(maps.Keys(static)) {
		sp, mp := static[key], mirrors[key]
		switch {
		case mp == nil:
			steps = append(steps, mirrorStep{create: sp})
		case mp.DeletionTimestamp != nil || mp.Annotations[AnnotationMirror] != sp.Annotations[AnnotationHash]:
			// Outdated or being deleted: delete it now, then recreate it.
			steps = append(steps, mirrorStep{del: mp, uid: ptr.To(mp.UID), create: sp})
		}
	}
	if deleteOrphans {
		for _, key := range slices.Sorted(maps.Keys(mirrors)) {
			if _, ok := static[key]; !ok {
				steps = append(steps, mirrorStep{del: mirrors[key]})
			}
		}
	}
	return steps
}

// mirrorPod is the mirror pod of a static pod: a copy with the mirror
// annotation set to the static pod's hash and the Node as controlling
// owner (KEP-1314: NodeRestriction requires it).
func mirrorPod(static *corev1.Pod, node *corev1.Node) *corev1.Pod {
	p := static.DeepCopy()
	p.Annotations[AnnotationMirror] = static.Annotations[AnnotationHash]
	p.OwnerReferences = []metav1.OwnerReference{{
		APIVersion: "v1",
		Kind:       "Node",
		Name:       node.Name,
		UID:        node.UID,
		Controller: ptr.To(true),
	}}
	return p
}

func (m *Mirror) reconcile(ctx context.Context, node *corev1.Node, nodePods []*corev1.Pod) error {
	m.mu.Lock()
	static, haveSet := m.static, m.haveSet
	m.mu.Unlock()
	var errs []error
	for _, s := range planMirrors(static, nodePods, haveSet) {
		if s.del != nil {
			deleted, err := m.delete(ctx, s.del, s.uid)
			if err != nil {
				errs = append(errs, err)
			}
			if !deleted {
				continue
			}
		}
		if s.create == nil {
			continue
		}
		switch {
		case node == nil:
			errs = append(errs, fmt.Errorf("staticpod: mirror for %s: node %q not found", key(s.create), m.node))
		case node.DeletionTimestamp != nil:
			// The node is going away: no new mirror pods (as upstream).
		default:
			if err := m.create(ctx, mirrorPod(s.create, node)); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

func key(p *corev1.Pod) string { return p.Namespace + "/" + p.Name }

// delete removes a mirror pod at once (grace period 0). Not found and a
// changed UID are not errors: someone else did it (DeleteMirrorPod).
func (m *Mirror) delete(ctx context.Context, p *corev1.Pod, uid *types.UID) (bool, error) {
	opts := metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)}
	if uid != nil {
		opts.Preconditions = &metav1.Preconditions{UID: uid}
	}
	err := m.client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, opts)
	switch {
	case err == nil:
		m.log.Info("deleted mirror pod", "pod", key(p), "uid", p.UID)
		return true, nil
	case apierrors.IsNotFound(err), apierrors.IsConflict(err):
		return false, nil
	}
	return false, fmt.Errorf("staticpod: delete mirror pod %s: %w", key(p), err)
}

// create creates a mirror pod. If a pod of that name exists already with
// the same hash, the mirror is there and that is success; otherwise (a
// regular pod holds the name, or an older mirror is still being deleted)
// it is an error to retry.
func (m *Mirror) create(ctx context.Context, p *corev1.Pod) error {
	_, err := m.client.CoreV1().Pods(p.Namespace).Create(ctx, p, metav1.CreateOptions{})
	if err == nil {
		m.log.Info("created mirror pod", "pod", key(p), "hash", p.Annotations[AnnotationMirror])
		return nil
	}
	if apierrors.IsAlreadyExists(err) {
		got, gerr := m.client.CoreV1().Pods(p.Namespace).Get(ctx, p.Name, metav1.GetOptions{})
		if gerr == nil && got.Annotations[AnnotationMirror] == p.Annotations[AnnotationMirror] && IsMirror(got) {
			return nil
		}
	}
	return fmt.Errorf("staticpod: create mirror pod %s: %w", key(p), err)
}
