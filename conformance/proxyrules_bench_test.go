package conformance

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/kube-nodekit/nodekit/internal/testenv"
	"github.com/kube-nodekit/nodekit/proxyrules"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

// benchCluster is the workload: 80% ClusterIP, 10% NodePort, 10%
// LoadBalancer with externalTrafficPolicy Local, 10 endpoints each (one on
// this node). Health-check node ports are 0, so upstream opens no listener.
func benchCluster(n int) serviceSet {
	cfg := proxyrules.DefaultConfig(genNode)
	cfg.ClusterCIDR = netip.MustParsePrefix("10.128.0.0/9")
	set := serviceSet{cfg: cfg}
	for i := range n {
		name := fmt.Sprintf("s%d", i)
		ip := fmt.Sprintf("10.96.%d.%d", i/250, i%250+1)
		svc := &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: "bench", Name: name},
			Spec: corev1.ServiceSpec{
				Type: corev1.ServiceTypeClusterIP, ClusterIP: ip, ClusterIPs: []string{ip},
				IPFamilies: []corev1.IPFamily{corev1.IPv4Protocol},
				Ports:      []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(8080)}},
			},
		}
		switch i % 10 {
		case 8:
			svc.Spec.Type = corev1.ServiceTypeNodePort
			svc.Spec.Ports[0].NodePort = int32(30000 + i%2700)
		case 9:
			svc.Spec.Type = corev1.ServiceTypeLoadBalancer
			svc.Spec.Ports[0].NodePort = int32(30000 + i%2700)
			svc.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
			svc.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: fmt.Sprintf("203.0.%d.%d", i/250, i%250+1)}}
		}
		es := &discoveryv1.EndpointSlice{
			ObjectMeta:  metav1.ObjectMeta{Namespace: "bench", Name: name + "-1", Labels: map[string]string{discoveryv1.LabelServiceName: name}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("http"), Port: ptr.To[int32](8080), Protocol: ptr.To(corev1.ProtocolTCP)}},
		}
		for e := range 10 {
			node := "node-b"
			if e == 0 {
				node = genNode
			}
			es.Endpoints = append(es.Endpoints, discoveryv1.Endpoint{
				Addresses: []string{fmt.Sprintf("10.%d.%d.%d", 128+i/65000, i/250%256, e*25+i%25+1)},
				NodeName:  ptr.To(node),
			})
		}
		set.services = append(set.services, svc)
		set.slices = append(set.slices, es)
	}
	return set
}

// BenchmarkIPTablesFullSync: a full sync from Services and EndpointSlices,
// generation only (no iptables-restore), nodekit against kube-proxy's
// syncProxyRules (change tracking + rule writing), whose proxier is fed its
// informer events outside the timing; nodekit is timed from a Tracker fed
// the same way (input=tracker: Model and Sync) and from the objects
// (input=objects: NewModel and Sync), as in BenchmarkNFTablesFullSync.
func BenchmarkIPTablesFullSync(b *testing.B) {
	ns := testenv.NetNSes(b, "kubeproxy")[0]
	for _, n := range []int{1000, 10000} {
		set := benchCluster(n)
		for _, input := range []string{"tracker", "objects"} {
			b.Run(fmt.Sprintf("impl=nodekit/input=%s/services=%d/endpoints=10", input, n), func(b *testing.B) {
				b.ReportAllocs()
				var size int
				for b.Loop() {
					// A proxy's first sync: a new model and a new generator.
					m := benchModel(b, set, input)
					var g proxyrules.IPTables
					size = len(g.Sync(m, true).Payload)
				}
				b.ReportMetric(float64(size), "payload-bytes")
			})
		}
		b.Run(fmt.Sprintf("impl=upstream/services=%d/endpoints=10", n), func(b *testing.B) {
			b.ReportAllocs()
			var size int
			for b.Loop() {
				b.StopTimer()
				u := newUpstreamProxier(b, ns, set.cfg)
				for _, s := range set.services {
					u.OnServiceAdd(s)
				}
				for _, es := range set.slices {
					u.OnEndpointSliceAdd(es)
				}
				u.OnServiceSynced()
				b.StartTimer()
				syncIn(b, ns, u.OnEndpointSlicesSynced)
				size = len(u.last(b))
			}
			b.ReportMetric(float64(size), "payload-bytes")
		})
	}
}

// BenchmarkIPTablesOneServiceChange: one Service's endpoints change among
// 10000; the partial sync that follows.
func BenchmarkIPTablesOneServiceChange(b *testing.B) {
	ns := testenv.NetNSes(b, "kubeproxy")[0]
	set := benchCluster(10000)
	before := set.slices[5000]
	after := before.DeepCopy()
	after.Endpoints = after.Endpoints[:9]
	b.Run("impl=nodekit/services=10000/endpoints=10", func(b *testing.B) {
		// As a running proxy: a Tracker fed by informer events, then a
		// partial sync.
		b.ReportAllocs()
		tr := trackerFor(b, set)
		var g proxyrules.IPTables
		m, _ := tr.Model()
		g.Sync(m, true).Commit()
		var size int
		for i := 0; b.Loop(); i++ {
			tr.SetEndpointSlice([]*discoveryv1.EndpointSlice{after, before}[i%2])
			m, _ := tr.Model()
			s := g.Sync(m, false)
			s.Commit()
			size = len(s.Payload)
		}
		b.ReportMetric(float64(size), "payload-bytes")
	})
	b.Run("impl=upstream/services=10000/endpoints=10", func(b *testing.B) {
		b.ReportAllocs()
		u := newUpstreamProxier(b, ns, set.cfg)
		u.fullSync(b, ns, set.services, set.slices)
		var size int
		for i := 0; b.Loop(); i++ {
			b.StopTimer()
			u.OnEndpointSliceUpdate(nil, []*discoveryv1.EndpointSlice{after, before}[i%2])
			b.StartTimer()
			// OnServiceSynced runs syncProxyRules synchronously; after the
			// first sync it is a partial one.
			syncIn(b, ns, u.OnServiceSynced)
			size = len(u.last(b))
		}
		b.ReportMetric(float64(size), "payload-bytes")
	})
}

// trackerFor is a Tracker that has seen every object of set, as a running
// proxy's would after its informers synced.
// benchModel is the model of a proxy's first sync: from a Tracker fed
// set's objects outside the timing (input "tracker", as upstream's
// proxiers are fed their events), or from the objects (NewModel).
func benchModel(b *testing.B, set serviceSet, input string) *proxyrules.Model {
	if input == "tracker" {
		b.StopTimer()
		tr := trackerFor(b, set)
		b.StartTimer()
		m, _ := tr.Model()
		return m
	}
	m, _ := proxyrules.NewModel(set.cfg, set.services, set.slices)
	return m
}

func trackerFor(b *testing.B, set serviceSet) *proxyrules.Tracker {
	b.Helper()
	tr, err := proxyrules.NewTracker(set.cfg)
	if err != nil {
		b.Fatal(err)
	}
	for _, s := range set.services {
		tr.SetService(s)
	}
	for _, es := range set.slices {
		tr.SetEndpointSlice(es)
	}
	return tr
}
