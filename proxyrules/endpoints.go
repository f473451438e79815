package proxyrules

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

// Endpoint is one backend of a ServicePort, with the conditions kube-proxy
// reads from its EndpointSlice (pkg/proxy/endpointslicecache.go).
type Endpoint struct {
	Addr        netip.AddrPort
	Local       bool           // on this node
	Ready       bool           // conditions.ready, nil meaning true
	Serving     bool           // conditions.serving, nil meaning true
	Terminating bool           // conditions.terminating, nil meaning false
	Hints       *EndpointHints // nil when the endpoint has none

	str string // String(), computed once
}

// EndpointHints are an endpoint's topology hints (hints.forZones and
// hints.forNodes): the zones and nodes that should send it traffic.
type EndpointHints struct {
	Zones, Nodes []string
}

func (e *Endpoint) zoneHints() []string {
	if e.Hints == nil {
		return nil
	}
	return e.Hints.Zones
}

func (e *Endpoint) nodeHints() []string {
	if e.Hints == nil {
		return nil
	}
	return e.Hints.Nodes
}

// String is "ip:port" ("[ip]:port" for IPv6), kube-proxy's endpoint string,
// which also feeds its KUBE-SEP chain-name hash.
func (e *Endpoint) String() string {
	if e.str == "" {
		return e.Addr.String()
	}
	return e.str
}

// portEndpoints are the endpoints of one ServicePort.
type portEndpoints struct {
	name ServicePortName
	eps  []*Endpoint
}

// endpointsOf is the endpoints of a Service by port; a Service has few
// ports, so a list beats a map.
type endpointsOf []portEndpoints

func (e endpointsOf) get(name ServicePortName) []*Endpoint {
	for i := range e {
		if e[i].name == name {
			return e[i].eps
		}
	}
	return nil
}

// ip is the address part of String() ("[ip]" unbracketed for IPv6).
func (e *Endpoint) ip() string {
	s := e.String()
	s = s[:strings.LastIndexByte(s, ':')]
	if s != "" && s[0] == '[' {
		s = s[1 : len(s)-1]
	}
	return s
}

// endpointsByPort collects the endpoints of every port of one Service from
// its EndpointSlices of one family, deduplicated by ip:port (a ready
// endpoint wins over a terminating one with the same address) and sorted by
// that string, as kube-proxy's EndpointSliceCache does. Slices are read in
// name order so that the outcome does not depend on input order.
func endpointsByPort(endpointSlices []*discoveryv1.EndpointSlice, family corev1.IPFamily, nodeName string) (endpointsOf, []error) {
	wantType := discoveryv1.AddressTypeIPv4
	if family == corev1.IPv6Protocol {
		wantType = discoveryv1.AddressTypeIPv6
	}
	ordered := endpointSlices
	if !slices.IsSortedFunc(ordered, compareSliceNames) {
		ordered = slices.Clone(endpointSlices)
		slices.SortFunc(ordered, compareSliceNames)
	}

	var errs []error
	var byPort endpointsOf
	for _, es := range ordered {
		if es.AddressType != wantType {
			continue
		}
		svcName := es.Labels[discoveryv1.LabelServiceName]
		for _, port := range es.Ports {
			if port.Name == nil {
				errs = append(errs, fmt.Errorf("endpointslice %s/%s: port with nil name ignored", es.Namespace, es.Name))
				continue
			}
			if port.Port == nil || *port.Port <= 0 || *port.Port > 65535 {
				errs = append(errs, fmt.Errorf("endpointslice %s/%s: port %q has no valid number; ignored", es.Namespace, es.Name, *port.Name))
				continue
			}
			proto := corev1.ProtocolTCP
			if port.Protocol != nil {
				proto = *port.Protocol
			}
			name := ServicePortName{Namespace: es.Namespace, Name: svcName, Port: *port.Name, Protocol: proto}
			i := slices.IndexFunc(byPort, func(p portEndpoints) bool { return p.name == name })
			if i < 0 {
				i = len(byPort)
				byPort = append(byPort, portEndpoints{name: name})
			}
			byPort[i].eps, errs = appendEndpoints(byPort[i].eps, errs, es, uint16(*port.Port), nodeName)
		}
	}
	for i := range byPort {
		byPort[i].eps = dedupEndpoints(byPort[i].eps)
	}
	return byPort, errs
}

func compareSliceNames(a, b *discoveryv1.EndpointSlice) int { return cmp.Compare(a.Name, b.Name) }

// appendEndpoints appends the endpoints of es for one port to eps, with
// one allocation for the Endpoints and one for their strings.
func appendEndpoints(eps []*Endpoint, errs []error, es *discoveryv1.EndpointSlice, port uint16, nodeName string) ([]*Endpoint, []error) {
	block := make([]Endpoint, len(es.Endpoints))
	if eps == nil {
		eps = make([]*Endpoint, 0, len(es.Endpoints))
	}
	var textBuf [512]byte
	var endsBuf [64]int
	text, ends := textBuf[:0], endsBuf[:0]
	for i := range es.Endpoints {
		if err := fillEndpoint(&block[i], &es.Endpoints[i], port, nodeName); err != nil {
			errs = append(errs, fmt.Errorf("endpointslice %s/%s: %w", es.Namespace, es.Name, err))
		} else {
			text = block[i].Addr.AppendTo(text)
		}
		ends = append(ends, len(text))
	}
	all := string(text)
	start := 0
	for i := range block {
		if e := &block[i]; ends[i] > start {
			e.str = all[start:ends[i]]
			eps = append(eps, e)
		}
		start = ends[i]
	}
	return eps, errs
}

// dedupEndpoints sorts by kube-proxy's endpoint string and keeps one
// endpoint per address as its EndpointSliceCache does: of several seen in
// turn, a later one replaces the kept one unless it is terminating.
func dedupEndpoints(eps []*Endpoint) []*Endpoint {
	sortEndpoints(eps)
	out := eps[:0]
	for _, e := range eps {
		if n := len(out); n > 0 && out[n-1].Addr == e.Addr {
			if !e.Terminating {
				out[n-1] = e
			}
			continue
		}
		out = append(out, e)
	}
	return out
}

// sortEndpoints sorts by endpoint string, keeping the order of equals. A
// port has a few endpoints, mostly: an insertion sort with the comparison
// inlined does them fastest.
func sortEndpoints(eps []*Endpoint) {
	if len(eps) > 32 {
		slices.SortStableFunc(eps, func(a, b *Endpoint) int { return strings.Compare(a.str, b.str) })
		return
	}
	for i := 1; i < len(eps); i++ {
		for j := i; j > 0 && eps[j].str < eps[j-1].str; j-- {
			eps[j], eps[j-1] = eps[j-1], eps[j]
		}
	}
}

// fillEndpoint sets a zero Endpoint from e, or reports why e is ignored.
func fillEndpoint(ep *Endpoint, e *discoveryv1.Endpoint, port uint16, nodeName string) error {
	if len(e.Addresses) == 0 {
		return fmt.Errorf("endpoint without addresses ignored")
	}
	ip, ok := parseIPSloppy(e.Addresses[0])
	if !ok {
		return fmt.Errorf("endpoint address %q is not an IP address; ignored", e.Addresses[0])
	}
	// ep is zero: setting fields one by one spares copying (and the write
	// barriers of) a whole struct.
	ep.Addr = netip.AddrPortFrom(ip, port)
	ep.Local = nodeName != "" && e.NodeName != nil && *e.NodeName == nodeName
	ep.Ready = e.Conditions.Ready == nil || *e.Conditions.Ready
	ep.Serving = e.Conditions.Serving == nil || *e.Conditions.Serving
	ep.Terminating = e.Conditions.Terminating != nil && *e.Conditions.Terminating
	if e.Hints != nil && (len(e.Hints.ForZones) > 0 || len(e.Hints.ForNodes) > 0) {
		ep.Hints = &EndpointHints{}
		for _, z := range e.Hints.ForZones {
			ep.Hints.Zones = append(ep.Hints.Zones, z.Name)
		}
		for _, n := range e.Hints.ForNodes {
			ep.Hints.Nodes = append(ep.Hints.Nodes, n.Name)
		}
	}
	return nil
}
