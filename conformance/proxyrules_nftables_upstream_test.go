package conformance

import (
	"context"
	"net"
	"reflect"
	"testing"
	"time"
	"unsafe"

	"github.com/kube-nodekit/nodekit/internal/testenv"
	"github.com/kube-nodekit/nodekit/proxyrules"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kubeproxyconfig "k8s.io/kubernetes/pkg/proxy/apis/config"
	upstreamnftables "k8s.io/kubernetes/pkg/proxy/nftables"
	proxyutil "k8s.io/kubernetes/pkg/proxy/util"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/knftables"
)

// capturingNFTables is knftables' Fake that also keeps every transaction
// the proxier runs. With apply false it records without applying, so that
// what is measured is kube-proxy's rule generation alone.
type capturingNFTables struct {
	*knftables.Fake
	apply bool
	txs   []*knftables.Transaction
}

func (c *capturingNFTables) Run(ctx context.Context, tx *knftables.Transaction) error {
	c.txs = append(c.txs, tx)
	if !c.apply {
		return nil
	}
	return c.Fake.Run(ctx, tx)
}

// upstreamNFTProxier is kube-proxy 1.37's nftables proxier, built by its
// exported NewProxier.
type upstreamNFTProxier struct {
	*upstreamnftables.Proxier
	nft *capturingNFTables
}

// newUpstreamNFTProxier builds the proxier inside ns (NewProxier probes the
// real nft there, and opens conntrack sockets), then swaps the knftables
// interface it made for a Fake. NewProxier offers no way to pass one in,
// and the package's own NewFakeProxier is test code that cannot be
// imported; the field is set through reflect, the only thing this harness
// reaches into.
func newUpstreamNFTProxier(t testing.TB, ns *testenv.NetNS, cfg proxyrules.Config, apply bool) *upstreamNFTProxier {
	t.Helper()
	pcfg := &kubeproxyconfig.KubeProxyConfiguration{
		NFTables: kubeproxyconfig.KubeProxyNFTablesConfiguration{
			MasqueradeBit: ptr.To(int32(cfg.MasqueradeBit)),
		},
		Linux:         kubeproxyconfig.KubeProxyLinuxConfiguration{MasqueradeAll: cfg.MasqueradeAll},
		SyncPeriod:    metav1.Duration{Duration: time.Hour},
		MinSyncPeriod: metav1.Duration{},
	}
	detector := proxyutil.NewNoOpLocalDetector()
	if cfg.ClusterCIDR.IsValid() {
		detector = proxyutil.NewDetectLocalByCIDR(cfg.ClusterCIDR.String())
	}
	family := corev1.IPv4Protocol
	tableFamily := knftables.IPv4Family
	if cfg.Family == corev1.IPv6Protocol {
		family, tableFamily = corev1.IPv6Protocol, knftables.IPv6Family
	}
	var p *upstreamnftables.Proxier
	err := ns.Do(func() (err error) {
		p, err = upstreamnftables.NewProxier(context.Background(), pcfg, family, detector,
			cfg.NodeName, net.IP(cfg.NodeIP.AsSlice()), nil, nil, false)
		return err
	})
	if err != nil {
		t.Fatalf("upstream nftables NewProxier: %v", err)
	}
	nft := &capturingNFTables{Fake: knftables.NewFake(tableFamily, "kube-proxy"), apply: apply}
	field := reflect.ValueOf(p).Elem().FieldByName("nftables")
	reflect.NewAt(field.Type(), unsafe.Pointer(field.UnsafeAddr())).Elem().Set(reflect.ValueOf(knftables.Interface(nft)))
	if cfg.Zone != "" {
		p.OnTopologyChange(map[string]string{corev1.LabelTopologyZone: cfg.Zone})
	}
	return &upstreamNFTProxier{Proxier: p, nft: nft}
}

// feed gives the proxier the objects without syncing.
func (u *upstreamNFTProxier) feed(services []*corev1.Service, slices []*discoveryv1.EndpointSlice) {
	for _, s := range services {
		u.OnServiceAdd(s)
	}
	for _, es := range slices {
		u.OnEndpointSliceAdd(es)
	}
	u.OnServiceSynced()
}

// fullSync feeds the objects and runs the first (full) sync, which
// OnEndpointSlicesSynced runs synchronously; it returns its transaction.
func (u *upstreamNFTProxier) fullSync(t testing.TB, ns *testenv.NetNS, services []*corev1.Service, slices []*discoveryv1.EndpointSlice) *knftables.Transaction {
	t.Helper()
	u.feed(services, slices)
	syncIn(t, ns, u.OnEndpointSlicesSynced)
	return u.last(t)
}

func (u *upstreamNFTProxier) last(t testing.TB) *knftables.Transaction {
	t.Helper()
	if len(u.nft.txs) == 0 {
		t.Fatal("upstream nftables proxier ran no transaction")
	}
	return u.nft.txs[len(u.nft.txs)-1]
}
