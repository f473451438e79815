package proxyrules

import (
	"cmp"
	"errors"
	"slices"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

// Tracker holds the Services and EndpointSlices a proxy has seen, as
// kube-proxy's change trackers do, and builds Models incrementally: only
// the Services whose object or slices changed since the last Model are
// built again. Like kube-proxy's trackers it reads each object when it
// arrives (a Service's ports, a slice's endpoints), so that a sync only
// puts together what changed. The others keep their PortStates, the same
// pointers, so a backend can tell at a glance that nothing about them
// changed and reuse what it generated for them (IPTables does). Feed it
// from informer event handlers; it is not safe for concurrent use.
type Tracker struct {
	cfg      Config
	services map[serviceKey]*trackedService
	slices   map[serviceKey][]*sliceEndpoints // a Service's, by name
	owner    map[serviceKey]serviceKey        // slice (namespace, name) -> its Service
	dirty    map[serviceKey]bool
	order    []*trackedService // the Services, sorted
	nPorts   int               // ports in the last Model
}

// trackedService is a Service, read, and what was last built from it.
type trackedService struct {
	key    serviceKey
	sps    []*ServicePort
	spsErr error
	ports  []*PortState
	err    error
}

// NewTracker returns an empty Tracker for cfg.
func NewTracker(cfg Config) (*Tracker, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &Tracker{
		cfg:      cfg,
		services: map[serviceKey]*trackedService{},
		slices:   map[serviceKey][]*sliceEndpoints{},
		owner:    map[serviceKey]serviceKey{},
		dirty:    map[serviceKey]bool{},
	}, nil
}

// SetService records a Service, new or updated.
func (t *Tracker) SetService(svc *corev1.Service) {
	k := serviceKey{svc.Namespace, svc.Name}
	ts, ok := t.services[k]
	if !ok {
		ts = &trackedService{key: k}
		t.services[k] = ts
		i, _ := slices.BinarySearchFunc(t.order, k, compareTracked)
		t.order = slices.Insert(t.order, i, ts)
	}
	ts.sps, ts.spsErr = servicePorts(svc, t.cfg.Family)
	t.dirty[k] = true
}

// DeleteService forgets a Service (its slices stay, as they may outlive it).
func (t *Tracker) DeleteService(namespace, name string) {
	k := serviceKey{namespace, name}
	if _, ok := t.services[k]; !ok {
		return
	}
	delete(t.services, k)
	if i, found := slices.BinarySearchFunc(t.order, k, compareTracked); found {
		t.order = slices.Delete(t.order, i, i+1)
	}
	delete(t.dirty, k)
}

// SetEndpointSlice records an EndpointSlice, new or updated (even one that
// moved to another Service).
func (t *Tracker) SetEndpointSlice(es *discoveryv1.EndpointSlice) {
	t.DeleteEndpointSlice(es.Namespace, es.Name)
	k := sliceService(es)
	read := readSlice(es, t.cfg.Family, t.cfg.NodeName)
	i, _ := slices.BinarySearchFunc(t.slices[k], read, compareReadSlices)
	t.slices[k] = slices.Insert(t.slices[k], i, read)
	t.owner[serviceKey{es.Namespace, es.Name}] = k
	t.dirty[k] = true
}

// DeleteEndpointSlice forgets an EndpointSlice.
func (t *Tracker) DeleteEndpointSlice(namespace, name string) {
	sk := serviceKey{namespace, name}
	k, ok := t.owner[sk]
	if !ok {
		return
	}
	delete(t.owner, sk)
	t.slices[k] = slices.DeleteFunc(t.slices[k], func(se *sliceEndpoints) bool { return se.name == name })
	if len(t.slices[k]) == 0 {
		delete(t.slices, k)
	}
	t.dirty[k] = true
}

// Model builds the Services that changed and returns the whole model, with
// the errors of every Service's input (as NewModel reports them).
func (t *Tracker) Model() (*Model, error) {
	todo := make([]*trackedService, 0, len(t.dirty))
	for k := range t.dirty {
		if ts, ok := t.services[k]; ok { // (else slices of a Service not seen yet)
			todo = append(todo, ts)
		}
	}
	// Services are independent: build them on every core there is.
	inParallel(len(todo), parallelWorkers(len(todo)), func(_, from, to int) {
		for _, ts := range todo[from:to] {
			ts.ports, ts.err = buildService(&t.cfg, ts.sps, ts.spsErr, t.slices[ts.key])
		}
	})
	clear(t.dirty)
	m := &Model{Config: t.cfg, Ports: make([]*PortState, 0, t.nPorts)}
	var errs []error
	for _, ts := range t.order {
		m.Ports = append(m.Ports, ts.ports...)
		if ts.err != nil {
			errs = append(errs, ts.err)
		}
	}
	t.nPorts = len(m.Ports)
	return m, errors.Join(errs...)
}

func compareTracked(ts *trackedService, k serviceKey) int { return compareKeys(ts.key, k) }

func compareKeys(a, b serviceKey) int {
	return cmp.Or(cmp.Compare(a.namespace, b.namespace), cmp.Compare(a.name, b.name))
}
