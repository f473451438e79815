package conformance

import (
	"fmt"
	"math/rand/v2"
	"net/netip"

	"github.com/kube-nodekit/nodekit/proxyrules"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

// serviceSet is a random but valid (as the apiserver would accept it) set
// of Services and EndpointSlices, with the node config to build rules for.
type serviceSet struct {
	cfg      proxyrules.Config
	services []*corev1.Service
	slices   []*discoveryv1.EndpointSlice
}

const genNode = "node-a"

func genConfig(r *rand.Rand) proxyrules.Config {
	cfg := proxyrules.DefaultConfig(genNode)
	cfg.NodeIP = netip.MustParseAddr("192.168.0.10")
	if r.IntN(4) > 0 {
		cfg.ClusterCIDR = netip.MustParsePrefix("10.244.0.0/16")
	}
	cfg.MasqueradeAll = r.IntN(6) == 0
	cfg.LocalhostNodePorts = r.IntN(4) > 0
	if r.IntN(2) == 0 {
		cfg.Zone = pick(r, "zone-a", "zone-b")
	}
	return cfg
}

func genServiceSet(r *rand.Rand, n int) serviceSet {
	s := serviceSet{cfg: genConfig(r)}
	for i := range n {
		svc, slices := genService(r, i)
		s.services = append(s.services, svc)
		s.slices = append(s.slices, slices...)
	}
	return s
}

func pick[T any](r *rand.Rand, vs ...T) T { return vs[r.IntN(len(vs))] }

func genService(r *rand.Rand, i int) (*corev1.Service, []*discoveryv1.EndpointSlice) {
	name := fmt.Sprintf("svc%d", i)
	ns := pick(r, "default", "ns1", "kube-system")
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.ServiceSpec{
			Type:       pick(r, corev1.ServiceTypeClusterIP, corev1.ServiceTypeClusterIP, corev1.ServiceTypeNodePort, corev1.ServiceTypeLoadBalancer),
			IPFamilies: []corev1.IPFamily{corev1.IPv4Protocol},
		},
	}
	ip := fmt.Sprintf("10.96.%d.%d", i/250, i%250+1)
	svc.Spec.ClusterIP, svc.Spec.ClusterIPs = ip, []string{ip}
	nports := 1 + r.IntN(3)
	for p := range nports {
		port := corev1.ServicePort{
			Port:       int32(80 + p),
			Protocol:   pick(r, corev1.ProtocolTCP, corev1.ProtocolTCP, corev1.ProtocolUDP, corev1.ProtocolSCTP),
			TargetPort: intstr.FromInt32(int32(8080 + p)),
		}
		if nports > 1 || r.IntN(2) == 0 {
			port.Name = fmt.Sprintf("p%d", p)
		}
		if svc.Spec.Type != corev1.ServiceTypeClusterIP {
			port.NodePort = int32(30000 + i*3 + p)
		}
		svc.Spec.Ports = append(svc.Spec.Ports, port)
	}
	if r.IntN(5) == 0 {
		svc.Spec.ExternalIPs = []string{fmt.Sprintf("203.0.113.%d", i%250+1)}
	}
	if svc.Spec.Type == corev1.ServiceTypeLoadBalancer && r.IntN(4) > 0 {
		svc.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: fmt.Sprintf("198.51.100.%d", i%250+1)}}
		if r.IntN(5) == 0 {
			svc.Status.LoadBalancer.Ingress[0].IPMode = ptr.To(corev1.LoadBalancerIPModeProxy)
		}
		if r.IntN(3) == 0 {
			svc.Spec.LoadBalancerSourceRanges = pick(r, []string{"192.168.0.0/24"}, []string{" 10.0.0.0/8 ", "172.16.0.0/12"}, []string{"0.0.0.0/0"})
		}
	}
	accessible := svc.Spec.Type != corev1.ServiceTypeClusterIP || len(svc.Spec.ExternalIPs) > 0
	if accessible && r.IntN(3) == 0 {
		// Health-check node ports are left at 0: upstream would open real
		// listeners for them. Unit tests pin that rule instead.
		svc.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
	} else if accessible {
		svc.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyCluster
	}
	if r.IntN(5) == 0 {
		svc.Spec.InternalTrafficPolicy = ptr.To(corev1.ServiceInternalTrafficPolicyLocal)
	}
	if r.IntN(5) == 0 {
		svc.Spec.SessionAffinity = corev1.ServiceAffinityClientIP
		svc.Spec.SessionAffinityConfig = &corev1.SessionAffinityConfig{ClientIP: &corev1.ClientIPConfig{TimeoutSeconds: ptr.To(int32(10800 - r.IntN(10000)))}}
	}

	var slices []*discoveryv1.EndpointSlice
	if r.IntN(8) == 0 {
		return svc, nil // no endpoints at all
	}
	zoned := r.IntN(3) == 0
	next := 1 // endpoint addresses are unique per Service, but for one duplicate below
	for si := range 1 + r.IntN(2) {
		es := &discoveryv1.EndpointSlice{
			ObjectMeta:  metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("%s-%d", name, si), Labels: map[string]string{discoveryv1.LabelServiceName: name}},
			AddressType: discoveryv1.AddressTypeIPv4,
		}
		for _, sp := range svc.Spec.Ports {
			es.Ports = append(es.Ports, discoveryv1.EndpointPort{Name: ptr.To(sp.Name), Port: ptr.To(sp.TargetPort.IntVal), Protocol: ptr.To(sp.Protocol)})
		}
		for range r.IntN(5) {
			ep := discoveryv1.Endpoint{
				Addresses: []string{fmt.Sprintf("10.244.%d.%d", i%200, next)},
				NodeName:  ptr.To(pick(r, genNode, "node-b", "node-c")),
			}
			switch r.IntN(6) {
			case 0:
				ep.Conditions = discoveryv1.EndpointConditions{Ready: ptr.To(false), Serving: ptr.To(true), Terminating: ptr.To(true)}
			case 1:
				ep.Conditions = discoveryv1.EndpointConditions{Ready: ptr.To(false), Serving: ptr.To(false), Terminating: ptr.To(true)}
			case 2:
				ep.Conditions = discoveryv1.EndpointConditions{Ready: ptr.To(false)}
			case 3:
				// nil conditions: ready and serving, as the API says
			default:
				ep.Conditions = discoveryv1.EndpointConditions{Ready: ptr.To(true), Serving: ptr.To(true), Terminating: ptr.To(false)}
			}
			if zoned && r.IntN(8) > 0 {
				ep.Hints = &discoveryv1.EndpointHints{ForZones: []discoveryv1.ForZone{{Name: pick(r, "zone-a", "zone-b")}}}
				if r.IntN(3) == 0 {
					ep.Hints.ForNodes = []discoveryv1.ForNode{{Name: pick(r, genNode, "node-b")}}
				}
			}
			next++
			es.Endpoints = append(es.Endpoints, ep)
		}
		// An endpoint seen in two slices, as while a pod moves between
		// slices: the non-terminating copy wins. (Two non-terminating copies,
		// or two terminating ones, are left to slice order upstream, which
		// is map order, so the generator makes none.)
		if si == 1 && len(slices[0].Endpoints) > 0 && r.IntN(2) == 0 {
			dup := *slices[0].Endpoints[0].DeepCopy()
			t := dup.Conditions.Terminating != nil && *dup.Conditions.Terminating
			dup.Conditions = discoveryv1.EndpointConditions{Ready: ptr.To(false), Serving: ptr.To(true), Terminating: ptr.To(!t)}
			if t {
				dup.Conditions.Ready = ptr.To(true)
			}
			es.Endpoints = append(es.Endpoints, dup)
		}
		slices = append(slices, es)
	}
	return svc, slices
}
