package conformance

import (
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/kube-nodekit/nodekit/proxyrules"
)

// TestNFTablesEndpointMapsMatchKubeProxy: in nodekit's default layout
// (NFTablesEndpointMaps: kube-proxy's numgen-map rule with the map moved
// into a shared data map, a deliberate difference so that the table loads
// in linear time and endpoint changes are element changes the kernel
// commits without re-validating the table), the table is kube-proxy's once
// each rule is written back with its map inline and the endpoint maps are
// left out.
func TestNFTablesEndpointMapsMatchKubeProxy(t *testing.T) {
	compareNFTLayout(t, 200, 0xa11, proxyrules.NFTablesEndpointMaps, func(dump string) string { return foldEndpointMaps(dump, false) })
}

var (
	// "add rule ip kube-proxy CHAIN meta l4proto P dnat ip addr . port to
	// numgen random mod M offset B map @MAP"
	endpointMapRule = regexp.MustCompile(`^(add rule \S+ \S+ (\S+) meta l4proto \S+ dnat (ip6?)) addr \. port to numgen random mod (\d+) offset (\d+) map @(endpoints-\S+)$`)
	// "add element ip kube-proxy MAP { KEY : VALUE }"
	endpointElement = regexp.MustCompile(`^add element \S+ \S+ (endpoints-\S+) \{ (\d+) : (.*) \}$`)
	numgenMapRule   = regexp.MustCompile(`^(.* dnat ip6? addr \. port to numgen random mod \d+ map \{ )(.*)( \})$`)
)

// foldEndpointMaps writes each endpoint-map rule in a Fake dump as
// kube-proxy's rule for the same endpoints (in key order, or sorted
// with sorted), and leaves the endpoint maps and their elements out. A key
// a rule needs and its map lacks, or an element no rule reaches, is
// written as a line of its own, which no kube-proxy table has.
func foldEndpointMaps(dump string, sorted bool) string {
	lines := strings.Split(strings.TrimSpace(dump), "\n")
	values := map[string]string{}
	for _, l := range lines {
		if m := endpointElement.FindStringSubmatch(l); m != nil {
			values[m[1]+" "+m[2]] = m[3]
		}
	}
	var out []string
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) > 4 && (f[1] == "map" || f[1] == "element") && strings.HasPrefix(f[4], "endpoints-") {
			continue
		}
		m := endpointMapRule.FindStringSubmatch(l)
		if m == nil {
			out = append(out, l)
			continue
		}
		n, _ := strconv.Atoi(m[4])
		base, _ := strconv.Atoi(m[5])
		var eps []string
		for k := base; k < base+n; k++ {
			key := m[6] + " " + strconv.Itoa(k)
			v, ok := values[key]
			if !ok {
				out = append(out, "missing element "+key)
			}
			delete(values, key)
			eps = append(eps, v)
		}
		if sorted {
			slices.Sort(eps)
		}
		if len(eps) == 1 {
			addr, port, _ := strings.Cut(eps[0], " . ")
			if strings.Contains(addr, ":") {
				addr = "[" + addr + "]"
			}
			out = append(out, strings.TrimSuffix(strings.TrimSuffix(m[1], " ip"), " ip6")+" to "+addr+":"+port)
			continue
		}
		out = append(out, m[1]+" addr . port to numgen random mod "+strconv.Itoa(len(eps))+" map { "+numbered(eps)+" }")
	}
	for _, key := range slices.Sorted(maps.Keys(values)) {
		out = append(out, "unreached element "+key)
	}
	return strings.Join(out, "\n") + "\n"
}

func numbered(eps []string) string {
	var b strings.Builder
	for k, v := range eps {
		if k > 0 {
			b.WriteString(" , ")
		}
		b.WriteString(strconv.Itoa(k) + " : " + v)
	}
	return b.String()
}

// sortNumgenMaps sorts the endpoints of each numgen-map rule of a dump:
// which index an endpoint has does not change what the rule does.
func sortNumgenMaps(dump string) string {
	lines := strings.Split(dump, "\n")
	for i, l := range lines {
		m := numgenMapRule.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		var eps []string
		for _, e := range strings.Split(m[2], " , ") {
			_, v, _ := strings.Cut(e, " : ")
			eps = append(eps, v)
		}
		slices.Sort(eps)
		lines[i] = m[1] + numbered(eps) + m[3]
	}
	return strings.Join(lines, "\n")
}
