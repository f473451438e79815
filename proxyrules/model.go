package proxyrules

import (
	"cmp"
	"errors"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

// Model is what the rules are generated from: every ServicePort of one IP
// family, in name order, with its endpoints categorized for this node. It
// is the shared core of the iptables and nftables backends and of the
// packet tracer. Generators and the tracer only read it, so any number of
// goroutines may use one Model at once.
type Model struct {
	Config Config
	Ports  []*PortState
}

// PortState is one ServicePort and the endpoints it routes to.
type PortState struct {
	*ServicePort
	Endpoints []*Endpoint // all of them, in endpoint-string order
	Categorized
}

// NewModel builds the model for cfg from Services and EndpointSlices. Input
// that kube-proxy would reject or ignore (unparseable IPs, ports out of
// range) is left out and reported in the error, which joins one error per
// problem; the model is complete for everything else, so a caller may log
// the error and go on, as kube-proxy does. A proxy that sees objects change
// one at a time builds models faster with a Tracker.
func NewModel(cfg Config, services []*corev1.Service, endpointSlices []*discoveryv1.EndpointSlice) (*Model, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	bySvc := make(map[serviceKey][]*discoveryv1.EndpointSlice, len(services))
	for _, es := range endpointSlices {
		if es != nil {
			k := sliceService(es)
			bySvc[k] = append(bySvc[k], es)
		}
	}
	built := make([]trackedService, len(services))
	// Services are independent: build them on every core there is.
	inParallel(len(services), parallelWorkers(len(services)), func(_, from, to int) {
		// A Service's slices are read into scratch space kept from one
		// Service to the next: only their endpoints stay, in the model.
		var scratch []sliceEndpoints
		var read []*sliceEndpoints
		for i := from; i < to; i++ {
			if svc := services[i]; svc != nil {
				list := bySvc[serviceKey{svc.Namespace, svc.Name}]
				if len(scratch) < len(list) {
					scratch = make([]sliceEndpoints, len(list))
				}
				read = read[:0]
				for j, es := range list {
					scratch[j].read(es, cfg.Family, cfg.NodeName)
					read = append(read, &scratch[j])
				}
				sps, err := servicePorts(svc, cfg.Family)
				built[i].ports, built[i].err = buildService(&cfg, sps, err, read)
			}
		}
	})
	// Ports in name order: Services in key order, each with its ports
	// (already sorted); sortPorts then has little left to do.
	order := make([]int, 0, len(services))
	n := 0
	for i, b := range built {
		if services[i] != nil {
			order = append(order, i)
			n += len(b.ports)
		}
	}
	slices.SortStableFunc(order, func(a, b int) int {
		return cmp.Or(cmp.Compare(services[a].Namespace, services[b].Namespace), cmp.Compare(services[a].Name, services[b].Name))
	})
	m := &Model{Config: cfg, Ports: make([]*PortState, 0, n)}
	for _, i := range order {
		m.Ports = append(m.Ports, built[i].ports...)
	}
	var errs []error
	for _, b := range built {
		if b.err != nil {
			errs = append(errs, b.err)
		}
	}
	var dupErrs []error
	m.Ports, dupErrs = sortPorts(m.Ports)
	return m, errors.Join(append(errs, dupErrs...)...)
}

// sortPorts sorts ports by name, keeping input order among equals, and of
// ports with the same name keeps the last, as kube-proxy's maps keyed by
// ServicePortName do (a Service given twice, or two ports with one name,
// which the apiserver would have refused); each such loss is reported.
func sortPorts(ports []*PortState) ([]*PortState, []error) {
	byName := func(a, b *PortState) int { return comparePortNames(a.Name, b.Name) }
	if !slices.IsSortedFunc(ports, byName) {
		slices.SortStableFunc(ports, byName)
	}
	var errs []error
	out := ports[:0]
	for _, p := range ports {
		if n := len(out); n > 0 && out[n-1].Name == p.Name {
			errs = append(errs, fmt.Errorf("proxyrules: service port %s/%s appears twice; the last is used", p.Name, p.Name.Protocol))
			out[n-1] = p
			continue
		}
		out = append(out, p)
	}
	return out, errs
}

// serviceKey is a Service's namespace and name.
type serviceKey struct{ namespace, name string }

func (k serviceKey) String() string { return k.namespace + "/" + k.name }

// sliceService is the Service an EndpointSlice belongs to (its
// kubernetes.io/service-name label).
func sliceService(es *discoveryv1.EndpointSlice) serviceKey {
	return serviceKey{es.Namespace, es.Labels[discoveryv1.LabelServiceName]}
}

// buildService is the model of one Service: its ports for cfg's family
// (servicePorts', which found err), in name order, each with its
// endpoints from the Service's slices (readSlice's), categorized for the
// node.
func buildService(cfg *Config, sps []*ServicePort, err error, read []*sliceEndpoints) ([]*PortState, error) {
	var errs []error
	if err != nil {
		errs = append(errs, fmt.Errorf("proxyrules: %w", err))
	}
	if len(sps) == 0 {
		return nil, errors.Join(errs...)
	}
	eps, epErrs := endpointsByPort(read)
	for _, err := range epErrs {
		errs = append(errs, fmt.Errorf("proxyrules: %w", err))
	}
	ports := make([]*PortState, len(sps))
	states := make([]PortState, len(sps))
	for i, sp := range sps {
		p := &states[i]
		p.ServicePort, p.Endpoints = sp, eps.get(sp.Name)
		p.Categorized = Categorize(p.ServicePort, p.Endpoints, cfg.NodeName, cfg.Zone)
		ports[i] = p
	}
	ports, dupErrs := sortPorts(ports)
	return ports, errors.Join(append(errs, dupErrs...)...)
}

func comparePortNames(a, b ServicePortName) int {
	return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name),
		cmp.Compare(a.Port, b.Port), cmp.Compare(a.Protocol, b.Protocol))
}
