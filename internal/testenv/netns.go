package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// NetNSPrefix starts the name of every namespace testenv makes;
// hack/netns-clean.sh removes leftovers of killed test runs by it.
const NetNSPrefix = "nk-"

// NetNS is a network namespace made for one test and removed when it ends.
// Tests use them as hosts of their own (a client, a node, backends) so that
// every address they send traffic to lives inside a namespace they made.
type NetNS struct {
	// Name is the namespace's name under /run/netns.
	Name string
	// Role is the name the test gave it ("client", "node", ...).
	Role string
}

// NetNSes creates one fresh network namespace for each role, with loopback
// up, and removes them when the test ends.
func NetNSes(t testing.TB, roles ...string) []*NetNS {
	t.Helper()
	requireNetNSTools(t)
	id := randomHex(t, 3)
	out := make([]*NetNS, 0, len(roles))
	for _, role := range roles {
		ns := &NetNS{Name: NetNSPrefix + id + "-" + role, Role: role}
		if msg, err := exec.Command("ip", "netns", "add", ns.Name).CombinedOutput(); err != nil {
			t.Fatalf("testenv: ip netns add %s: %v: %s", ns.Name, err, msg)
		}
		t.Cleanup(func() {
			if msg, err := exec.Command("ip", "netns", "delete", ns.Name).CombinedOutput(); err != nil {
				t.Errorf("testenv: ip netns delete %s: %v: %s", ns.Name, err, msg)
			}
		})
		ns.Run(t, "ip", "link", "set", "lo", "up")
		out = append(out, ns)
	}
	return out
}

// Exec runs a command inside the namespace and returns its combined output.
func (ns *NetNS) Exec(ctx context.Context, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns.Name, name}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("in netns %s: %s %s: %w: %s", ns.Name, name, strings.Join(args, " "), err, out)
	}
	return out, nil
}

// Run is Exec that fails the test on error, with a 30 s bound.
func (ns *NetNS) Run(t testing.TB, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := ns.Exec(ctx, name, args...)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return string(out)
}

// Do runs fn on an OS thread that has entered the namespace. Sockets fn
// opens belong to the namespace for their whole life, so a listener or
// connection made in fn can be used from any goroutine afterwards.
func (ns *NetNS) Do(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		// Unlocked only once back in its own namespace: if switching back
		// fails, the thread stays locked and the runtime ends it with this
		// goroutine, so no other goroutine ever runs in the wrong namespace.
		runtime.LockOSThread()
		self, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			errc <- err
			return
		}
		defer self.Close()
		target, err := os.Open("/run/netns/" + ns.Name)
		if err != nil {
			errc <- err
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns %s: %w", ns.Name, err)
			return
		}
		fnErr := fn()
		if err := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns back from %s: %w", ns.Name, err)
			return
		}
		runtime.UnlockOSThread()
		errc <- fnErr
	}()
	return <-errc
}

// Link joins a and b with a veth pair, gives each end its address (CIDR
// notation, e.g. "192.0.2.1/24") and brings both up. Each end is named after
// the namespace it leads to ("v-<role of the peer>"), which it returns.
func Link(t testing.TB, a *NetNS, aAddr string, b *NetNS, bAddr string) (aIf, bIf string) {
	t.Helper()
	aIf, bIf = ifName(b.Role), ifName(a.Role)
	if msg, err := exec.Command("ip", "link", "add", aIf, "netns", a.Name, "type", "veth",
		"peer", "name", bIf, "netns", b.Name).CombinedOutput(); err != nil {
		t.Fatalf("testenv: veth %s/%s <-> %s/%s: %v: %s", a.Name, aIf, b.Name, bIf, err, msg)
	}
	for _, end := range []struct {
		ns        *NetNS
		ifc, addr string
	}{{a, aIf, aAddr}, {b, bIf, bAddr}} {
		end.ns.Run(t, "ip", "addr", "add", end.addr, "dev", end.ifc)
		end.ns.Run(t, "ip", "link", "set", end.ifc, "up")
	}
	return aIf, bIf
}

// ifName is "v-" and the role, cut to the kernel's 15-character limit.
func ifName(role string) string {
	name := "v-" + role
	if len(name) > 15 {
		name = name[:15]
	}
	return name
}

func requireNetNSTools(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		unavailable(t, "sudo make test", "network namespaces need root")
	}
	for _, tool := range []string{"ip", "nft", "iptables-restore", "iptables-legacy-restore"} {
		if _, err := exec.LookPath(tool); err != nil {
			unavailable(t, "hack/install-deps.sh", "%s not found", tool)
		}
	}
}

func randomHex(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return hex.EncodeToString(b)
}
