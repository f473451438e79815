package testenv

import (
	"os/exec"
	"strings"
	"testing"
)

// TestNetNSPacketFilter is the test bed's smoke test for network namespaces:
// an nftables table and an iptables chain made inside a fresh namespace are
// listed back there, are not visible on the host, and two linked namespaces
// reach each other.
func TestNetNSPacketFilter(t *testing.T) {
	nss := NetNSes(t, "client", "node")
	client, node := nss[0], nss[1]
	table := "nk_smoke_" + strings.ReplaceAll(node.Name[len(NetNSPrefix):], "-", "_")

	node.Run(t, "nft", "add", "table", "ip", table)
	node.Run(t, "nft", "add", "chain", "ip", table, "prerouting", "{ type nat hook prerouting priority -100 ; }")
	if out := node.Run(t, "nft", "list", "tables"); !strings.Contains(out, "table ip "+table) {
		t.Fatalf("nft list tables in %s = %q, want table ip %s", node.Name, out, table)
	}
	node.Run(t, "iptables", "-t", "nat", "-N", "NK-SMOKE")
	if out := node.Run(t, "iptables", "-t", "nat", "-S"); !strings.Contains(out, "-N NK-SMOKE") {
		t.Fatalf("iptables -t nat -S in %s = %q, want -N NK-SMOKE", node.Name, out)
	}

	host, err := exec.Command("nft", "list", "tables").CombinedOutput()
	if err != nil {
		t.Fatalf("nft list tables on the host: %v: %s", err, host)
	}
	if strings.Contains(string(host), table) {
		t.Fatalf("table %s leaked into the host namespace", table)
	}

	Link(t, client, "192.0.2.1/24", node, "192.0.2.2/24")
	client.Run(t, "ping", "-c", "1", "-W", "2", "192.0.2.2")
}
