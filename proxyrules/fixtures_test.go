package proxyrules

import (
	"net/netip"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

// service is a ClusterIP Service "ns/name" with one TCP port named "p"; opts
// change it.
func service(name, clusterIP string, port int32, opts ...func(*corev1.Service)) *corev1.Service {
	s := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name},
		Spec: corev1.ServiceSpec{
			Type:       corev1.ServiceTypeClusterIP,
			ClusterIP:  clusterIP,
			ClusterIPs: []string{clusterIP},
			IPFamilies: []corev1.IPFamily{corev1.IPv4Protocol},
			Ports: []corev1.ServicePort{{
				Name: "p", Port: port, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(labTCPPort),
			}},
		},
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

func nodePort(port int32) func(*corev1.Service) {
	return func(s *corev1.Service) {
		s.Spec.Type = corev1.ServiceTypeNodePort
		s.Spec.Ports[0].NodePort = port
	}
}

func udp(s *corev1.Service) { s.Spec.Ports[0].Protocol = corev1.ProtocolUDP }

func externalIPs(ips ...string) func(*corev1.Service) {
	return func(s *corev1.Service) { s.Spec.ExternalIPs = ips }
}

func loadBalancer(nodePortNum, healthCheck int32, ingress ...string) func(*corev1.Service) {
	return func(s *corev1.Service) {
		s.Spec.Type = corev1.ServiceTypeLoadBalancer
		s.Spec.Ports[0].NodePort = nodePortNum
		s.Spec.HealthCheckNodePort = healthCheck
		for _, ip := range ingress {
			s.Status.LoadBalancer.Ingress = append(s.Status.LoadBalancer.Ingress, corev1.LoadBalancerIngress{IP: ip})
		}
	}
}

func sourceRanges(r ...string) func(*corev1.Service) {
	return func(s *corev1.Service) { s.Spec.LoadBalancerSourceRanges = r }
}

func externalLocal(s *corev1.Service) {
	s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
}

func internalLocal(s *corev1.Service) {
	s.Spec.InternalTrafficPolicy = ptr.To(corev1.ServiceInternalTrafficPolicyLocal)
}

func clientIPAffinity(seconds int32) func(*corev1.Service) {
	return func(s *corev1.Service) {
		s.Spec.SessionAffinity = corev1.ServiceAffinityClientIP
		s.Spec.SessionAffinityConfig = &corev1.SessionAffinityConfig{ClientIP: &corev1.ClientIPConfig{TimeoutSeconds: ptr.To(seconds)}}
	}
}

// ep is one endpoint of a slice.
type ep struct {
	ip                          string
	node                        string
	notReady, terminating, busy bool // busy: not serving
	zones                       []string
}

// endpointSlice is the slice of Service "ns/svc" for port "p" on port.
func endpointSlice(svc string, port int32, proto corev1.Protocol, eps ...ep) *discoveryv1.EndpointSlice {
	es := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: "ns", Name: svc + "-abc", Labels: map[string]string{discoveryv1.LabelServiceName: svc}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("p"), Port: ptr.To(port), Protocol: ptr.To(proto)}},
	}
	for _, e := range eps {
		d := discoveryv1.Endpoint{
			Addresses: []string{e.ip},
			Conditions: discoveryv1.EndpointConditions{
				Ready: ptr.To(!e.notReady), Serving: ptr.To(!e.busy), Terminating: ptr.To(e.terminating),
			},
		}
		if e.node != "" {
			d.NodeName = ptr.To(e.node)
		}
		if len(e.zones) > 0 {
			d.Hints = &discoveryv1.EndpointHints{}
			for _, z := range e.zones {
				d.Hints.ForZones = append(d.Hints.ForZones, discoveryv1.ForZone{Name: z})
			}
		}
		es.Endpoints = append(es.Endpoints, d)
	}
	return es
}

func addrPort(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

// trackerOf is a Tracker that has seen svcs and eps, as a running proxy's
// would after its informers synced.
func trackerOf(t testing.TB, cfg Config, svcs []*corev1.Service, eps []*discoveryv1.EndpointSlice) *Tracker {
	t.Helper()
	tr, err := NewTracker(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range svcs {
		tr.SetService(s)
	}
	for _, es := range eps {
		tr.SetEndpointSlice(es)
	}
	return tr
}
