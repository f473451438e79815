package proxyrules

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// TestEndpointsByPortDedupsAsOneList: slices read one by one and merged
// (each slice's list deduplicated when read, as a Tracker keeps it, then
// the merged one) keep the same endpoints as kube-proxy's
// EndpointSliceCache, which takes every slice's endpoints in turn and,
// for each address, the last one that is not terminating (else the
// first); here written out directly over all the slices at once.
func TestEndpointsByPortDedupsAsOneList(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for round := range 2000 {
		var slicesOf []*sliceEndpoints
		var all []*Endpoint // every slice's, in slice order
		for s := range 1 + r.IntN(3) {
			var eps []ep
			for range r.IntN(6) {
				eps = append(eps, ep{ip: fmt.Sprintf("10.0.0.%d", 1+r.IntN(4)), notReady: r.IntN(2) == 0, terminating: r.IntN(2) == 0})
			}
			es := endpointSlice("svc", 80, corev1.ProtocolTCP, eps...)
			es.Name = fmt.Sprintf("svc-%d", s)
			slicesOf = append(slicesOf, readSlice(es, corev1.IPv4Protocol, "node1"))
			all, _ = appendEndpoints(all, nil, es, 80, "node1")
		}
		r.Shuffle(len(slicesOf), func(i, j int) { slicesOf[i], slicesOf[j] = slicesOf[j], slicesOf[i] })

		slices.SortStableFunc(all, func(a, b *Endpoint) int { return strings.Compare(a.str, b.str) })
		var want []*Endpoint
		for _, e := range all {
			if n := len(want); n > 0 && want[n-1].Addr == e.Addr {
				if !e.Terminating {
					want[n-1] = e
				}
				continue
			}
			want = append(want, e)
		}
		byPort, _ := endpointsByPort(slicesOf)
		got := byPort.get(ServicePortName{Namespace: "ns", Name: "svc", Port: "p", Protocol: corev1.ProtocolTCP})
		if !sameEndpoints(got, want) {
			t.Fatalf("round %d: endpointsByPort = %v, want %v", round, describe(got), describe(want))
		}
	}
}

// sameEndpoints: the same endpoints, by content, in the same order.
func sameEndpoints(a, b []*Endpoint) bool {
	return slices.EqualFunc(a, b, func(x, y *Endpoint) bool { return *x == *y })
}

func describe(eps []*Endpoint) []string {
	var out []string
	for _, e := range eps {
		out = append(out, fmt.Sprintf("%s(ready=%v,terminating=%v)", e, e.Ready, e.Terminating))
	}
	return out
}
