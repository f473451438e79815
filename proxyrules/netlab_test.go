package proxyrules

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/kube-nodekit/nodekit/internal/testenv"
)

// netLab is a small network of namespaces made for one test: a client, a
// node that holds the rules and forwards, and backends that answer with
// their own name. Every address lives inside these namespaces (documentation
// ranges: 192.0.2.0/25 client side, 192.0.2.128/25 upstream, 198.51.100.0/24 backends, 203.0.113.0/24
// for Service VIPs).
type netLab struct {
	client, node *testenv.NetNS
	backends     []*testenv.NetNS
	clientIP     netip.Addr
	nodeIP       netip.Addr // the node's address on the client side
	backendIPs   []netip.Addr
}

const (
	labTCPPort = 8080
	labUDPPort = 5353
)

// labPodCIDR holds every backend address: the lab's cluster CIDR.
var labPodCIDR = netip.MustParsePrefix("198.51.100.0/24")

func newNetLab(t *testing.T, backends int) *netLab {
	t.Helper()
	roles := []string{"client", "node", "upstream"}
	for i := range backends {
		roles = append(roles, fmt.Sprintf("be%d", i+1))
	}
	nss := testenv.NetNSes(t, roles...)
	lab := &netLab{
		client: nss[0], node: nss[1], backends: nss[3:],
		clientIP: netip.MustParseAddr("192.0.2.2"), nodeIP: netip.MustParseAddr("192.0.2.1"),
	}
	upstream := nss[2]
	testenv.Link(t, lab.client, "192.0.2.2/25", lab.node, "192.0.2.1/25")
	lab.client.Run(t, "ip", "route", "add", "default", "via", "192.0.2.1")
	lab.node.Run(t, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	// As on a real node, Service VIPs route somewhere (the default route,
	// here an upstream namespace); without a route the node would answer
	// "network unreachable" before any rule sees the packet.
	testenv.Link(t, lab.node, "192.0.2.129/25", upstream, "192.0.2.130/25")
	lab.node.Run(t, "ip", "route", "add", "default", "via", "192.0.2.130")
	for i, be := range lab.backends {
		nodeSide := fmt.Sprintf("198.51.100.%d", 16*i+1)
		beIP := netip.MustParseAddr(fmt.Sprintf("198.51.100.%d", 16*i+2))
		testenv.Link(t, lab.node, nodeSide+"/28", be, beIP.String()+"/28")
		be.Run(t, "ip", "route", "add", "default", "via", nodeSide)
		lab.backendIPs = append(lab.backendIPs, beIP)
		serveName(t, be)
	}
	return lab
}

// serveName starts, inside ns, a TCP server and a UDP server that answer
// every request with "<ns role> <client address>".
func serveName(t *testing.T, ns *testenv.NetNS) {
	t.Helper()
	var ln net.Listener
	var pc net.PacketConn
	err := ns.Do(func() (err error) {
		if ln, err = net.Listen("tcp4", fmt.Sprintf(":%d", labTCPPort)); err != nil {
			return err
		}
		pc, err = net.ListenPacket("udp4", fmt.Sprintf(":%d", labUDPPort))
		return err
	})
	if err != nil {
		t.Fatalf("listen in %s: %v", ns.Name, err)
	}
	t.Cleanup(func() { ln.Close(); pc.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			fmt.Fprintf(c, "%s %s\n", ns.Role, c.RemoteAddr().(*net.TCPAddr).IP)
			c.Close()
		}
	}()
	go func() {
		buf := make([]byte, 512)
		for {
			_, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = pc.WriteTo(fmt.Appendf(nil, "%s %s\n", ns.Role, from.(*net.UDPAddr).IP), from)
		}
	}()
}

// reply is what a backend answered: its name and the client address it saw.
type reply struct {
	backend string
	source  netip.Addr
}

var errRefused = errors.New("connection refused")

// dialTCP connects from the client namespace and reads one reply. A
// refusal (the REJECT of a Service without endpoints) is errRefused.
// reached makes n TCP connections to addr from the client and counts the
// backends that answered.
func (lab *netLab) reached(t *testing.T, addr string, n int) map[string]int {
	t.Helper()
	seen := map[string]int{}
	for range n {
		r, err := lab.dialTCP(t, addrPort(addr))
		if err != nil {
			t.Fatal(err)
		}
		seen[r.backend]++
	}
	return seen
}

func (lab *netLab) dialTCP(t *testing.T, addr netip.AddrPort) (reply, error) {
	t.Helper()
	return lab.exchange(t, "tcp4", addr)
}

func (lab *netLab) dialUDP(t *testing.T, addr netip.AddrPort) (reply, error) {
	t.Helper()
	return lab.exchange(t, "udp4", addr)
}

func (lab *netLab) exchange(t *testing.T, network string, addr netip.AddrPort) (reply, error) {
	t.Helper()
	var c net.Conn
	err := lab.client.Do(func() (err error) {
		c, err = net.DialTimeout(network, addr.String(), 3*time.Second)
		return err
	})
	if err != nil {
		if strings.Contains(err.Error(), "refused") {
			return reply{}, errRefused
		}
		return reply{}, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(3 * time.Second))
	if network == "udp4" {
		if _, err := c.Write([]byte("hi")); err != nil {
			return reply{}, err
		}
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		if strings.Contains(err.Error(), "refused") {
			return reply{}, errRefused
		}
		return reply{}, err
	}
	var r reply
	var src string
	if _, err := fmt.Sscanf(line, "%s %s", &r.backend, &src); err != nil {
		return reply{}, fmt.Errorf("reply %q: %w", line, err)
	}
	r.source, err = netip.ParseAddr(src)
	return r, err
}

// nodeExec runs the rule tools inside the lab's node namespace.
func (lab *netLab) nodeExec(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error) {
	return HostExec(ctx, stdin, "ip", append([]string{"netns", "exec", lab.node.Name, name}, args...)...)
}
