package proxyrules

import "slices"

// Categorized is the outcome of kube-proxy's CategorizeEndpoints
// (pkg/proxy/topology.go) for one ServicePort on this node.
type Categorized struct {
	// Cluster are the endpoints for Cluster traffic policy: ready ones
	// (narrowed by topology hints when every ready endpoint has them and
	// some are for this node or zone), else serving-and-terminating ones.
	Cluster []*Endpoint
	// Local are the node's own endpoints for Local traffic policy: ready
	// ones, else serving-and-terminating ones.
	Local []*Endpoint
	// Reachable is every endpoint some rule can send traffic to, in
	// kube-proxy's endpoint-string order.
	Reachable []*Endpoint
	// HasAny is true when the Service has a usable endpoint anywhere, so it
	// is not answered with REJECT.
	HasAny bool
}

// topology modes kube-proxy derives from hints.
const (
	topologyNone = iota
	topologySameNode
	topologySameZone
)

// Categorize splits a port's endpoints as kube-proxy 1.37 does, for this
// node (cfg.NodeName) and zone (cfg.Zone).
func Categorize(p *ServicePort, endpoints []*Endpoint, nodeName, zone string) Categorized {
	var c Categorized
	if len(endpoints) == 0 {
		return c
	}
	mode := topologyNone
	if p.UsesClusterEndpoints() {
		mode = topologyMode(endpoints, nodeName, zone)
		c.Cluster = filter(endpoints, func(e *Endpoint) bool { return e.Ready && availableForTopology(e, mode, nodeName, zone) })
		if len(c.Cluster) == 0 {
			c.Cluster = filter(endpoints, func(e *Endpoint) bool { return e.Serving && e.Terminating })
		}
		c.HasAny = len(c.Cluster) > 0
	}
	if !p.UsesLocalEndpoints() {
		c.Reachable = c.Cluster
		return c
	}

	localReady, localServingTerminating := false, false
	for _, e := range endpoints {
		switch {
		case e.Ready:
			c.HasAny = true
			localReady = localReady || e.Local
		case e.Serving && e.Terminating:
			c.HasAny = true
			localServingTerminating = localServingTerminating || e.Local
		}
	}
	usesTerminating := false
	switch {
	case localReady:
		c.Local = filter(endpoints, func(e *Endpoint) bool { return e.Local && e.Ready })
	case localServingTerminating:
		usesTerminating = true
		c.Local = filter(endpoints, func(e *Endpoint) bool { return e.Local && e.Serving && e.Terminating })
	}
	if !p.UsesClusterEndpoints() {
		c.Reachable = c.Local
		return c
	}
	if mode == topologyNone && !usesTerminating {
		// Local is then a subset of Cluster.
		c.Reachable = c.Cluster
		return c
	}
	// The union, in endpoint-string order. Upstream builds it from a map and
	// so in random order; only the set matters to its rules.
	c.Reachable = filter(endpoints, func(e *Endpoint) bool {
		return slices.Contains(c.Cluster, e) || slices.Contains(c.Local, e)
	})
	return c
}

// topologyMode is upstream's topologyModeFromHints: hints are used only when
// every ready endpoint carries them and at least one is for this node (same
// node, checked first) or zone.
func topologyMode(endpoints []*Endpoint, nodeName, zone string) int {
	hasReady := false
	allNodeHints, forNode := true, false
	allZoneHints, forZone := true, false
	for _, e := range endpoints {
		if !e.Ready {
			continue
		}
		hasReady = true
		if len(e.nodeHints()) == 0 {
			allNodeHints = false
		} else if slices.Contains(e.nodeHints(), nodeName) {
			forNode = true
		}
		if len(e.zoneHints()) == 0 {
			allZoneHints = false
		} else if slices.Contains(e.zoneHints(), zone) {
			forZone = true
		}
	}
	switch {
	case !hasReady:
		return topologyNone
	case allNodeHints && forNode:
		return topologySameNode
	case allZoneHints && forZone:
		return topologySameZone
	}
	return topologyNone
}

func availableForTopology(e *Endpoint, mode int, nodeName, zone string) bool {
	switch mode {
	case topologySameNode:
		return slices.Contains(e.nodeHints(), nodeName)
	case topologySameZone:
		return slices.Contains(e.zoneHints(), zone)
	}
	return true
}

// filter returns the endpoints keep accepts; when it accepts them all,
// endpoints itself (capped, so appending to it cannot write into it).
func filter(endpoints []*Endpoint, keep func(*Endpoint) bool) []*Endpoint {
	for i, e := range endpoints {
		if keep(e) {
			continue
		}
		out := make([]*Endpoint, i, len(endpoints)-1)
		copy(out, endpoints[:i])
		for _, e := range endpoints[i+1:] {
			if keep(e) {
				out = append(out, e)
			}
		}
		return out
	}
	return endpoints[:len(endpoints):len(endpoints)]
}
