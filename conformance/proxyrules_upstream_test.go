package conformance

import (
	"bytes"
	"context"
	"net"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/kube-nodekit/nodekit/internal/testenv"
	"github.com/kube-nodekit/nodekit/proxyrules"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	sysctltest "k8s.io/component-helpers/node/util/sysctl/testing"
	"k8s.io/klog/v2"
	kubeproxyconfig "k8s.io/kubernetes/pkg/proxy/apis/config"
	upstreamiptables "k8s.io/kubernetes/pkg/proxy/iptables"
	proxyutil "k8s.io/kubernetes/pkg/proxy/util"
	utiliptables "k8s.io/kubernetes/pkg/util/iptables"
	iptablestest "k8s.io/kubernetes/pkg/util/iptables/testing"
	"k8s.io/utils/ptr"
)

func init() {
	// kube-proxy logs every Service it finds odd; the tests judge the rules.
	klog.SetLogger(logr.Discard())
}

// capturingIPTables is upstream's fake iptables, but it keeps the payload
// of every restore instead of parsing it, so that what is measured and
// compared is kube-proxy's rule generation alone.
type capturingIPTables struct {
	*iptablestest.FakeIPTables
	payloads [][]byte
}

func (c *capturingIPTables) RestoreAll(data []byte, _ utiliptables.FlushFlag, _ utiliptables.RestoreCountersFlag) error {
	c.payloads = append(c.payloads, bytes.Clone(data))
	return nil
}

// upstreamProxier is kube-proxy 1.37's iptables proxier (NewProxier, the
// exported constructor kube-proxy itself calls) fed with cfg's settings.
type upstreamProxier struct {
	*upstreamiptables.Proxier
	ipt *capturingIPTables
}

// newUpstreamProxier builds the proxier inside ns, so that the netlink
// sockets it opens (conntrack, nfacct) belong to a throw-away namespace
// and never touch the host.
func newUpstreamProxier(t testing.TB, ns *testenv.NetNS, cfg proxyrules.Config) *upstreamProxier {
	t.Helper()
	ipt := &capturingIPTables{FakeIPTables: iptablestest.NewFake()}
	pcfg := &kubeproxyconfig.KubeProxyConfiguration{
		IPTables: kubeproxyconfig.KubeProxyIPTablesConfiguration{
			MasqueradeBit:      ptr.To(int32(cfg.MasqueradeBit)),
			LocalhostNodePorts: ptr.To(cfg.LocalhostNodePorts),
		},
		Linux:         kubeproxyconfig.KubeProxyLinuxConfiguration{MasqueradeAll: cfg.MasqueradeAll},
		SyncPeriod:    metav1.Duration{Duration: time.Hour},
		MinSyncPeriod: metav1.Duration{},
	}
	detector := proxyutil.NewNoOpLocalDetector()
	if cfg.ClusterCIDR.IsValid() {
		detector = proxyutil.NewDetectLocalByCIDR(cfg.ClusterCIDR.String())
	}
	var p *upstreamiptables.Proxier
	err := ns.Do(func() (err error) {
		p, err = upstreamiptables.NewProxier(context.Background(), pcfg, corev1.IPv4Protocol, ipt,
			sysctltest.NewFake(), detector, cfg.NodeName, net.IP(cfg.NodeIP.AsSlice()), nil, nil, false)
		return err
	})
	if err != nil {
		t.Fatalf("upstream NewProxier: %v", err)
	}
	if cfg.Zone != "" {
		p.OnTopologyChange(map[string]string{corev1.LabelTopologyZone: cfg.Zone})
	}
	return &upstreamProxier{Proxier: p, ipt: ipt}
}

// fullSync gives the proxier the objects and returns the payload of its
// first (full) sync, which OnEndpointSlicesSynced runs synchronously.
func (u *upstreamProxier) fullSync(t testing.TB, ns *testenv.NetNS, services []*corev1.Service, slices []*discoveryv1.EndpointSlice) []byte {
	t.Helper()
	for _, s := range services {
		u.OnServiceAdd(s)
	}
	for _, es := range slices {
		u.OnEndpointSliceAdd(es)
	}
	u.OnServiceSynced()
	syncIn(t, ns, u.OnEndpointSlicesSynced)
	return u.last(t)
}

func (u *upstreamProxier) last(t testing.TB) []byte {
	t.Helper()
	if len(u.ipt.payloads) == 0 {
		t.Fatal("upstream proxier restored nothing")
	}
	return u.ipt.payloads[len(u.ipt.payloads)-1]
}

// syncIn runs one of an upstream proxier's synchronous sync entry points in
// ns, where its netlink sockets belong.
func syncIn(t testing.TB, ns *testenv.NetNS, fn func()) {
	t.Helper()
	if err := ns.Do(func() error { fn(); return nil }); err != nil {
		t.Fatal(err)
	}
}
