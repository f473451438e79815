package proxyrules_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"strings"

	"github.com/kube-nodekit/nodekit/proxyrules"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

func exampleObjects() ([]*corev1.Service, []*discoveryv1.EndpointSlice) {
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web"},
		Spec: corev1.ServiceSpec{
			ClusterIP: "10.96.0.10", ClusterIPs: []string{"10.96.0.10"},
			IPFamilies: []corev1.IPFamily{corev1.IPv4Protocol},
			Ports:      []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP}},
		},
	}
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: "default", Name: "web-1", Labels: map[string]string{discoveryv1.LabelServiceName: "web"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("http"), Port: ptr.To[int32](8080), Protocol: ptr.To(corev1.ProtocolTCP)}},
		Endpoints: []discoveryv1.Endpoint{
			{Addresses: []string{"10.244.1.5"}, NodeName: ptr.To("node-a")},
			{Addresses: []string{"10.244.2.7"}, NodeName: ptr.To("node-b"), Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(false)}},
		},
	}
	return []*corev1.Service{svc}, []*discoveryv1.EndpointSlice{slice}
}

// Build the model of one node and see where a Service's traffic goes.
func ExampleNewModel() {
	services, slices := exampleObjects()
	cfg := proxyrules.DefaultConfig("node-a")
	cfg.ClusterCIDR = netip.MustParsePrefix("10.244.0.0/16")
	m, err := proxyrules.NewModel(cfg, services, slices)
	if err != nil {
		panic(err)
	}
	for _, p := range m.Ports {
		fmt.Println(p.Name, p.ClusterIP, p.Port)
		for _, ep := range p.Cluster {
			fmt.Println("  ->", ep, "local:", ep.Local)
		}
	}
	// Output:
	// default/web:http 10.96.0.10 80
	//   -> 10.244.1.5:8080 local: true
}

// Generate kube-proxy's iptables-restore payload; the applier would load it
// with iptables-restore --noflush.
func ExampleIPTables_Sync() {
	services, slices := exampleObjects()
	cfg := proxyrules.DefaultConfig("node-a")
	cfg.ClusterCIDR = netip.MustParsePrefix("10.244.0.0/16")
	m, _ := proxyrules.NewModel(cfg, services, slices)
	var g proxyrules.IPTables
	s := g.Sync(m, false)
	sc := bufio.NewScanner(bytes.NewReader(s.Payload))
	for sc.Scan() {
		if line := sc.Text(); strings.Contains(line, "default/web") {
			fmt.Println(line)
		}
	}
	// Output:
	// -A KUBE-SERVICES -m comment --comment "default/web:http cluster IP" -m tcp -p tcp -d 10.96.0.10 --dport 80 -j KUBE-SVC-CDGGSHYLG3RE2FKL
	// -A KUBE-SVC-CDGGSHYLG3RE2FKL -m comment --comment "default/web:http cluster IP" -m tcp -p tcp -d 10.96.0.10 --dport 80 ! -s 10.244.0.0/16 -j KUBE-MARK-MASQ
	// -A KUBE-SVC-CDGGSHYLG3RE2FKL -m comment --comment "default/web:http -> 10.244.1.5:8080" -j KUBE-SEP-AFGSLHOD2HFNCBX4
	// -A KUBE-SEP-AFGSLHOD2HFNCBX4 -m comment --comment default/web:http -s 10.244.1.5 -j KUBE-MARK-MASQ
	// -A KUBE-SEP-AFGSLHOD2HFNCBX4 -m comment --comment default/web:http -m tcp -p tcp -j DNAT --to-destination 10.244.1.5:8080
}

// Chain names are kube-proxy's, so existing tooling and runbooks apply.
func ExampleChainsFor() {
	name := proxyrules.ServicePortName{Namespace: "ns1", Name: "svc1", Port: "p80", Protocol: corev1.ProtocolTCP}
	fmt.Println(proxyrules.ChainsFor(name).Cluster)
	// Output: KUBE-SVC-XPGD46QRK7WJZT7O
}

// Ask where a connection goes, without reading a single rule.
func ExampleModel_Trace() {
	services, slices := exampleObjects()
	cfg := proxyrules.DefaultConfig("node-a")
	cfg.ClusterCIDR = netip.MustParsePrefix("10.244.0.0/16")
	m, _ := proxyrules.NewModel(cfg, services, slices)
	fmt.Println(m.Trace(proxyrules.Packet{Src: netip.MustParseAddr("10.244.3.3"), Dst: netip.MustParseAddrPort("10.96.0.10:80")}))
	fmt.Println(m.Trace(proxyrules.Packet{Src: netip.MustParseAddr("192.0.2.1"), Dst: netip.MustParseAddrPort("10.96.0.10:443")}))
	// Output:
	// DNAT default/web:http (cluster IP) via KUBE-SERVICES > KUBE-SVC-CDGGSHYLG3RE2FKL to [10.244.1.5:8080]
	// NONE: no Service port matches this destination
}

// Load the rules with the iptables backend the node's kubelet uses. (Not
// run here: it needs root.)
func ExampleIPTablesApplier_Apply() {
	services, slices := exampleObjects()
	m, _ := proxyrules.NewModel(proxyrules.DefaultConfig("node-a"), services, slices)
	ctx := context.Background()
	applier := &proxyrules.IPTablesApplier{Backend: proxyrules.DetectIPTablesBackend(ctx, nil)}
	// Apply again whenever the model changes: syncs after the first are
	// partial.
	if _, err := applier.Apply(ctx, m, false); err != nil {
		fmt.Println(err)
	}
}
