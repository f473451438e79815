package proxyrules_test

import (
	"context"
	"fmt"
	"net/netip"
	"strings"

	"github.com/kube-nodekit/nodekit/proxyrules"
)

// Generate kube-proxy's nftables ruleset; NFTablesApplier would load it
// with nft -f, or a caller may add it to its own knftables transaction.
// In the default layout the Service's chain picks its endpoint from a
// shared map (NFTablesLayout). A second sync with nothing changed has
// nothing to do.
func ExampleNFTables_Sync() {
	services, slices := exampleObjects()
	cfg := proxyrules.DefaultConfig("node-a")
	cfg.ClusterCIDR = netip.MustParsePrefix("10.244.0.0/16")
	m, err := proxyrules.NewModel(cfg, services, slices)
	if err != nil {
		panic(err)
	}
	var g proxyrules.NFTables
	s := g.Sync(m, false)
	for _, line := range strings.Split(s.Transaction().String(), "\n") {
		if strings.Contains(line, "default/web") || strings.Contains(line, "10.244.1.5 . 8080") {
			fmt.Println(line)
		}
	}
	s.Commit()
	fmt.Println("next sync:", g.Sync(m, false).NumOperations(), "operations")
	// Output:
	// add chain ip kube-proxy service-SUSTUHLJ-default/web/tcp/http
	// flush chain ip kube-proxy service-SUSTUHLJ-default/web/tcp/http
	// add rule ip kube-proxy service-SUSTUHLJ-default/web/tcp/http meta l4proto tcp dnat ip addr . port to numgen random mod 1 offset 0 map @endpoints-tcp-fc
	// add element ip kube-proxy service-ips { 10.96.0.10 . tcp . 80 : goto service-SUSTUHLJ-default/web/tcp/http }
	// add element ip kube-proxy endpoints-tcp-fc { 0 : 10.244.1.5 . 8080 }
	// next sync: 0 operations
}

// NFTablesKubeProxy writes kube-proxy's own ruleset, rule for rule: here
// the Service's chain DNATs straight to its one ready endpoint.
func ExampleNFTablesLayout() {
	services, slices := exampleObjects()
	m, _ := proxyrules.NewModel(proxyrules.DefaultConfig("node-a"), services, slices)
	g := proxyrules.NFTables{Layout: proxyrules.NFTablesKubeProxy}
	for _, line := range strings.Split(g.Sync(m, false).Transaction().String(), "\n") {
		if strings.Contains(line, "default/web") && strings.HasPrefix(line, "add rule") {
			fmt.Println(line)
		}
	}
	// Output:
	// add rule ip kube-proxy service-SUSTUHLJ-default/web/tcp/http meta l4proto tcp dnat to 10.244.1.5:8080
}

// Load the rules into the kernel; with NetNS set, endpoint changes skip
// nft and go over netlink. (Not run here: it needs root.)
func ExampleNFTablesApplier_Apply() {
	services, slices := exampleObjects()
	m, _ := proxyrules.NewModel(proxyrules.DefaultConfig("node-a"), services, slices)
	applier := &proxyrules.NFTablesApplier{NetNS: "host"}
	if _, err := applier.Apply(context.Background(), m, false); err != nil {
		fmt.Println(err)
	}
}
