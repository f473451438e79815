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
	name   ServicePortName
	eps    []*Endpoint
	merged bool // from several slices (endpointsByPort)
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

// sliceEndpoints is what one EndpointSlice holds for a family and node:
// its endpoints by port, each port's sorted by endpoint string and
// deduplicated (dedupEndpoints), and the problems found reading it. A
// Tracker keeps it from the moment the slice arrives, as kube-proxy's
// EndpointSliceCache keeps its endpointSliceInfo; endpointsByPort merges
// the slices of a Service.
type sliceEndpoints struct {
	name  string
	ports endpointsOf
	errs  []error
}

// readSlice reads es for family and nodeName; a slice of the other
// family holds nothing.
func readSlice(es *discoveryv1.EndpointSlice, family corev1.IPFamily, nodeName string) *sliceEndpoints {
	se := &sliceEndpoints{}
	se.read(es, family, nodeName)
	return se
}

// read is readSlice into se, whose lists (but not endpoints) it reuses.
func (se *sliceEndpoints) read(es *discoveryv1.EndpointSlice, family corev1.IPFamily, nodeName string) {
	se.name, se.ports, se.errs = es.Name, se.ports[:0], se.errs[:0]
	wantType := discoveryv1.AddressTypeIPv4
	if family == corev1.IPv6Protocol {
		wantType = discoveryv1.AddressTypeIPv6
	}
	if es.AddressType != wantType {
		return
	}
	svcName := es.Labels[discoveryv1.LabelServiceName]
	for _, port := range es.Ports {
		if port.Name == nil {
			se.errs = append(se.errs, fmt.Errorf("endpointslice %s/%s: port with nil name ignored", es.Namespace, es.Name))
			continue
		}
		if port.Port == nil || *port.Port <= 0 || *port.Port > 65535 {
			se.errs = append(se.errs, fmt.Errorf("endpointslice %s/%s: port %q has no valid number; ignored", es.Namespace, es.Name, *port.Name))
			continue
		}
		proto := corev1.ProtocolTCP
		if port.Protocol != nil {
			proto = *port.Protocol
		}
		name := ServicePortName{Namespace: es.Namespace, Name: svcName, Port: *port.Name, Protocol: proto}
		i := slices.IndexFunc(se.ports, func(p portEndpoints) bool { return p.name == name })
		if i < 0 {
			i = len(se.ports)
			se.ports = append(se.ports, portEndpoints{name: name})
		}
		se.ports[i].eps, se.errs = appendEndpoints(se.ports[i].eps, se.errs, es, uint16(*port.Port), nodeName)
	}
	for i := range se.ports {
		sortEndpoints(se.ports[i].eps)
		se.ports[i].eps = dedupEndpoints(se.ports[i].eps)
	}
}

// endpointsByPort collects the endpoints of every port of one Service from
// its EndpointSlices (read by readSlice), deduplicated by ip:port (a ready
// endpoint wins over a terminating one with the same address) and sorted by
// that string, as kube-proxy's EndpointSliceCache does, with the slices'
// problems. Slices are taken in name order so that the outcome does not
// depend on input order. The slices are left as they are: a port's
// endpoints may be the list of its one slice.
func endpointsByPort(read []*sliceEndpoints) (endpointsOf, []error) {
	if !slices.IsSortedFunc(read, compareReadSlices) {
		read = slices.Clone(read)
		slices.SortFunc(read, compareReadSlices)
	}
	var errs []error
	var byPort endpointsOf
	for _, se := range read {
		errs = append(errs, se.errs...)
		for _, p := range se.ports {
			i := slices.IndexFunc(byPort, func(q portEndpoints) bool { return q.name == p.name })
			if i < 0 {
				byPort = append(byPort, p)
				continue
			}
			// A port in several slices: the lists in slice order, sorted
			// again (stably, so each slice's order among equals stays).
			byPort[i].eps = append(slices.Clip(byPort[i].eps), p.eps...)
			sortEndpoints(byPort[i].eps)
			byPort[i].merged = true
		}
	}
	// Deduplicating each slice's list and then the merged one keeps what
	// deduplicating all at once would: the last of a run of one address
	// that is not terminating, else its first.
	for i := range byPort {
		if byPort[i].merged {
			byPort[i].eps = dedupEndpoints(byPort[i].eps)
		}
	}
	return byPort, errs
}

func compareReadSlices(a, b *sliceEndpoints) int { return cmp.Compare(a.name, b.name) }

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

// dedupEndpoints keeps one endpoint per address of eps, sorted by
// kube-proxy's endpoint string, as its EndpointSliceCache does: of several
// seen in turn, a later one replaces the kept one unless it is
// terminating. eps is left as it is: without duplicates it is the result.
func dedupEndpoints(eps []*Endpoint) []*Endpoint {
	for i := 1; i < len(eps); i++ {
		if eps[i].Addr == eps[i-1].Addr {
			return dedupFrom(eps, i)
		}
	}
	return eps
}

// dedupFrom is dedupEndpoints of eps whose first duplicate is eps[i].
func dedupFrom(eps []*Endpoint, i int) []*Endpoint {
	out := slices.Clone(eps[:i])
	for _, e := range eps[i:] {
		if n := len(out); out[n-1].Addr == e.Addr {
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
