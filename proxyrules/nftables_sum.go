package proxyrules

import (
	"hash/maphash"
	"net/netip"
)

// configSum fingerprints what of the configuration the rules depend on
// beyond the ports; when it changes, the next sync is full.
func (g *NFTables) configSum(m *Model) uint64 {
	var h maphash.Hash
	h.SetSeed(g.seed())
	c := &m.Config
	h.WriteString(string(c.Family))
	writePrefix(&h, c.ClusterCIDR)
	writeInt(&h, c.MasqueradeBit)
	writeBool(&h, c.MasqueradeAll)
	writeAddr(&h, c.NodeIP)
	writeInt(&h, len(c.NodePortAddresses))
	for _, a := range c.NodePortAddresses {
		writeAddr(&h, a)
	}
	writeInt(&h, len(g.ServiceCIDRs))
	for _, p := range g.ServiceCIDRs {
		writePrefix(&h, p)
	}
	writeInt(&h, int(g.Layout))
	return h.Sum64()
}

// portSum fingerprints everything a ServicePort's rules and elements are
// made of, so that an unchanged port is skipped without writing its rules.
// buf is scratch space, returned for the next call.
func (g *NFTables) portSum(p *PortState, buf []byte) (uint64, []byte) {
	b := buf[:0]
	b = appendAddr(b, p.ClusterIP)
	b = appendInts(b, p.Port, p.NodePort, len(p.ExternalIPs), len(p.LoadBalancerVIPs), len(p.SourceRanges), p.StickyMaxAgeSeconds)
	for _, a := range p.ExternalIPs {
		b = appendAddr(b, a)
	}
	for _, a := range p.LoadBalancerVIPs {
		b = appendAddr(b, a)
	}
	for _, r := range p.SourceRanges {
		b = appendAddr(b, r.Addr())
		b = append(b, byte(r.Bits()))
	}
	b = appendBools(b, p.ClientIPAffinity, p.ExternalPolicyLocal, p.InternalPolicyLocal, p.HasAny)
	for _, eps := range [...][]*Endpoint{p.Cluster, p.Local, p.Reachable} {
		b = appendInts(b, len(eps))
		for _, e := range eps {
			b = appendAddr(b, e.Addr.Addr())
			b = append(b, byte(e.Addr.Port()), byte(e.Addr.Port()>>8))
			b = appendBools(b, e.Local)
		}
	}
	return maphash.Bytes(g.seed(), b), b
}

func appendAddr(b []byte, a netip.Addr) []byte {
	a16 := a.As16()
	b = append(b, a16[:]...)
	return appendBools(b, a.Is4())
}

func appendInts(b []byte, ns ...int) []byte {
	for _, n := range ns {
		b = append(b, byte(n), byte(n>>8), byte(n>>16), byte(n>>24), byte(n>>32), byte(n>>40), byte(n>>48), byte(n>>56))
	}
	return b
}

func appendBools(b []byte, vs ...bool) []byte {
	for _, v := range vs {
		if v {
			b = append(b, 1)
		} else {
			b = append(b, 0)
		}
	}
	return b
}

func writeAddr(h *maphash.Hash, a netip.Addr) {
	b := a.As16()
	h.Write(b[:])
	writeBool(h, a.Is4())
}

func writePrefix(h *maphash.Hash, p netip.Prefix) {
	writeAddr(h, p.Addr())
	writeInt(h, p.Bits())
}

func writeInt(h *maphash.Hash, n int) {
	var b [8]byte
	for i := range b {
		b[i] = byte(n >> (8 * i))
	}
	h.Write(b[:])
}

func writeBool(h *maphash.Hash, v bool) {
	if v {
		h.WriteByte(1)
	} else {
		h.WriteByte(0)
	}
}
