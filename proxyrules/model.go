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
// packet tracer.
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
// the error and go on, as kube-proxy does.
func NewModel(cfg Config, services []*corev1.Service, endpointSlices []*discoveryv1.EndpointSlice) (*Model, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	var errs []error
	m := &Model{Config: cfg}
	for _, svc := range services {
		if svc == nil {
			continue
		}
		ports, err := servicePorts(svc, cfg.Family)
		if err != nil {
			errs = append(errs, fmt.Errorf("proxyrules: %w", err))
		}
		for _, p := range ports {
			m.Ports = append(m.Ports, &PortState{ServicePort: p})
		}
	}
	slices.SortFunc(m.Ports, func(a, b *PortState) int { return comparePortNames(a.Name, b.Name) })
	m.Ports = slices.CompactFunc(m.Ports, func(a, b *PortState) bool {
		if a.Name == b.Name {
			errs = append(errs, fmt.Errorf("proxyrules: service port %s/%s appears twice; the first is used", a.Name, a.Name.Protocol))
			return true
		}
		return false
	})

	eps, epErrs := endpointsByPort(endpointSlices, cfg.Family, cfg.NodeName)
	for _, err := range epErrs {
		errs = append(errs, fmt.Errorf("proxyrules: %w", err))
	}
	for _, p := range m.Ports {
		p.Endpoints = eps[p.Name]
		p.Categorized = Categorize(p.ServicePort, p.Endpoints, cfg.NodeName, cfg.Zone)
	}
	return m, errors.Join(errs...)
}

func comparePortNames(a, b ServicePortName) int {
	return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name),
		cmp.Compare(a.Port, b.Port), cmp.Compare(a.Protocol, b.Protocol))
}
