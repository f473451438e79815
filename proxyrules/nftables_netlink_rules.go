package proxyrules

import (
	"encoding/binary"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
	"sigs.k8s.io/knftables"
)

// When the number of a ServicePort's endpoints changes, the sync rewrites
// its chains in the NFTablesEndpointMaps layout (add chain, flush chain,
// the one rule) besides changing map elements. At 10,000 Services that
// takes about 52 ms through nft and 21 ms over netlink
// (BenchmarkNFTablesKernelChange, BenchmarkNFTablesKernelRewrite): the
// kernel re-validates the table at commit when a DNAT rule was added
// (about 20 ms), and a batch that deletes anything, rules or elements,
// takes about 13 ms more whatever the size of the table; the rest is nft
// starting and reading the table. NFTablesApplier sends such a sync over
// netlink, in the one batch that carries its elements, encoding the rule
// as nft 1.0.6 does; `nft --debug=netlink` shows, for
// `meta l4proto tcp dnat ip addr . port to numgen random mod 12 offset
// 1234 map @endpoints-tcp-6b`:
//
//	[ meta load l4proto => reg 1 ]
//	[ cmp eq reg 1 0x00000006 ]
//	[ numgen reg 1 = random mod 12 offset 1234 ]
//	[ lookup reg 1 set endpoints-tcp-6b dreg 1 ]
//	[ nat dnat ip addr_min reg 1 proto_min reg 9 ]
//
// and in family ip6 `nat dnat ip6 addr_min reg 1 proto_min reg 2`: the
// map's value, "address . port", lands in the registers from 1 on, each
// part padded to 4 bytes, so the port follows an IPv4 address in the
// 32-bit register 9 (NFT_REG32_01) and an IPv6 one in the 128-bit
// register 2. nft sends no NAT flags; the kernel derives them from the
// registers given. Constants are linux/netfilter/nf_tables.h's, under
// the names golang.org/x/sys/unix gives them.

// nftEndpointRule is a rule of the endpoint-maps layout:
//
//	meta l4proto P dnat F addr . port to numgen random mod M offset B map @endpoints-P-XX
//
// with F the table's family (ip or ip6).
type nftEndpointRule struct {
	proto   uint8 // index in nftSlotProtocols
	shard   uint8 // the map, endpoints-P-<shard in hex>
	modulus uint32
	offset  uint32
}

// parseNFTEndpointRule reads a rule of that shape, written exactly as the
// generator writes it: single spaces, decimal numbers without leading
// zeros, a modulus of at least 1, the map of the rule's own protocol.
// Anything else is not one (and a sync holding it goes through nft).
func parseNFTEndpointRule(family knftables.Family, text string) (nftEndpointRule, bool) {
	var r nftEndpointRule
	if family != knftables.IPv4Family && family != knftables.IPv6Family {
		return r, false
	}
	rest, ok := strings.CutPrefix(text, "meta l4proto ")
	if !ok {
		return r, false
	}
	proto, rest, _ := strings.Cut(rest, " ")
	p := slices.Index(nftSlotProtocols[:], proto)
	if p < 0 {
		return r, false
	}
	if rest, ok = strings.CutPrefix(rest, "dnat "+string(family)+" addr . port to numgen random mod "); !ok {
		return r, false
	}
	modulus, rest, _ := strings.Cut(rest, " ")
	m, ok := parseNFTUint32(modulus)
	if !ok || m == 0 {
		return r, false
	}
	if rest, ok = strings.CutPrefix(rest, "offset "); !ok {
		return r, false
	}
	offset, rest, _ := strings.Cut(rest, " ")
	b, ok := parseNFTUint32(offset)
	if !ok {
		return r, false
	}
	if rest, ok = strings.CutPrefix(rest, "map @"+nftPrefixEndpointMap+proto+"-"); !ok || len(rest) != 2 {
		return r, false
	}
	shard, err := strconv.ParseUint(rest, 16, 8)
	if err != nil || strings.ToLower(rest) != rest { // the generator writes lower-case hex
		return r, false
	}
	return nftEndpointRule{proto: uint8(p), shard: uint8(shard), modulus: m, offset: b}, true
}

// parseNFTUint32 reads a decimal uint32 written canonically: digits only,
// no leading zero but in "0".
func parseNFTUint32(s string) (uint32, bool) {
	if s == "" || len(s) > 1 && s[0] == '0' || strings.IndexFunc(s, func(c rune) bool { return c < '0' || c > '9' }) >= 0 {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 32)
	return uint32(n), err == nil
}

// netlinkChainOp reports whether op is an operation on a chain or a rule
// that applyNetlink can send: adding or flushing a per-ServicePort chain,
// and adding one of the endpoint-map rules to it.
func (s *NFTablesSync) netlinkChainOp(op *nftOp) bool {
	if !isNFTServiceChain(op.name) {
		return false
	}
	switch op.kind {
	case nftChain:
		return op.verb == nftAdd || op.verb == nftFlush
	case nftRule:
		_, ok := parseNFTEndpointRule(s.family, op.text)
		return op.verb == nftAdd && op.comment == "" && ok
	}
	return false
}

// appendNetlinkChainOp appends the message of a chain or rule operation
// that netlinkChainOp accepts.
func appendNetlinkChainOp(b []byte, family knftables.Family, op *nftOp, seq uint32) ([]byte, error) {
	fam := nfproto(family)
	table := append([]byte(NFTablesTable), 0)
	chain := append([]byte(op.name), 0)
	flags := uint16(unix.NLM_F_REQUEST)
	var attrs []byte
	switch {
	case op.kind == nftChain && op.verb == nftAdd:
		// No NLM_F_EXCL: as nft's "add chain", an existing chain is
		// left as it is.
		attrs = nlAttr(attrs, unix.NFTA_CHAIN_TABLE, table)
		attrs = nlAttr(attrs, unix.NFTA_CHAIN_NAME, chain)
		return nlMessage(b, nfnlSubsysNFTables<<8|unix.NFT_MSG_NEWCHAIN, flags|unix.NLM_F_CREATE, seq, fam, 0, attrs), nil
	case op.kind == nftChain && op.verb == nftFlush:
		// Deleting rules by chain, without a handle, deletes them all.
		attrs = nlAttr(attrs, unix.NFTA_RULE_TABLE, table)
		attrs = nlAttr(attrs, unix.NFTA_RULE_CHAIN, chain)
		return nlMessage(b, nfnlSubsysNFTables<<8|unix.NFT_MSG_DELRULE, flags, seq, fam, 0, attrs), nil
	case op.kind == nftRule && op.verb == nftAdd && op.comment == "":
		r, ok := parseNFTEndpointRule(family, op.text)
		if !ok {
			break
		}
		attrs = nlAttr(attrs, unix.NFTA_RULE_TABLE, table)
		attrs = nlAttr(attrs, unix.NFTA_RULE_CHAIN, chain)
		attrs = nlAttr(attrs, unix.NFTA_RULE_EXPRESSIONS|unix.NLA_F_NESTED, r.expressions(fam))
		// NLM_F_APPEND: at the end of the chain, as "add rule" (without
		// it the kernel inserts at the start).
		return nlMessage(b, nfnlSubsysNFTables<<8|unix.NFT_MSG_NEWRULE, flags|unix.NLM_F_CREATE|unix.NLM_F_APPEND, seq, fam, 0, attrs), nil
	}
	return nil, fmt.Errorf("proxyrules: no netlink encoding for %q", strings.TrimSpace(string(nftOps{*op}.script(family, false))))
}

// expressions are the rule's expressions as nft encodes them (see above),
// for a table of nfgenmsg family fam.
func (r nftEndpointRule) expressions(fam byte) []byte {
	u32 := func(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
	var b []byte
	expr := func(name string, data []byte) {
		e := nlAttr(nil, unix.NFTA_EXPR_NAME, append([]byte(name), 0))
		e = nlAttr(e, unix.NFTA_EXPR_DATA|unix.NLA_F_NESTED, data)
		b = nlAttr(b, unix.NFTA_LIST_ELEM|unix.NLA_F_NESTED, e)
	}
	var d []byte
	// meta load l4proto => reg 1
	d = nlAttr(nil, unix.NFTA_META_KEY, u32(unix.NFT_META_L4PROTO))
	d = nlAttr(d, unix.NFTA_META_DREG, u32(unix.NFT_REG_1))
	expr("meta", d)
	// cmp eq reg 1 <protocol>
	d = nlAttr(nil, unix.NFTA_CMP_SREG, u32(unix.NFT_REG_1))
	d = nlAttr(d, unix.NFTA_CMP_OP, u32(unix.NFT_CMP_EQ))
	d = nlAttr(d, unix.NFTA_CMP_DATA|unix.NLA_F_NESTED, nlAttr(nil, unix.NFTA_DATA_VALUE, []byte{nftSlotIPProtocols[r.proto]}))
	expr("cmp", d)
	// numgen reg 1 = random mod M offset B
	d = nlAttr(nil, unix.NFTA_NG_DREG, u32(unix.NFT_REG_1))
	d = nlAttr(d, unix.NFTA_NG_MODULUS, u32(r.modulus))
	d = nlAttr(d, unix.NFTA_NG_TYPE, u32(unix.NFT_NG_RANDOM))
	d = nlAttr(d, unix.NFTA_NG_OFFSET, u32(r.offset))
	expr("numgen", d)
	// lookup reg 1 set endpoints-P-XX dreg 1. nft also sends the map's
	// NFTA_LOOKUP_SET_ID, which the kernel reads only when no map of that
	// name exists, to find one added earlier in the same batch: never so
	// here (every full sync adds all the maps).
	d = nlAttr(nil, unix.NFTA_LOOKUP_SREG, u32(unix.NFT_REG_1))
	d = nlAttr(d, unix.NFTA_LOOKUP_DREG, u32(unix.NFT_REG_1))
	d = nlAttr(d, unix.NFTA_LOOKUP_SET, append([]byte(nftEndpointMapNames[int(r.proto)*nftEndpointMaps+int(r.shard)]), 0))
	expr("lookup", d)
	// nat dnat F addr_min reg 1 proto_min reg 9 (ip) or 2 (ip6)
	proto := uint32(unix.NFT_REG32_01)
	if fam == unix.NFPROTO_IPV6 {
		proto = unix.NFT_REG_2
	}
	d = nlAttr(nil, unix.NFTA_NAT_TYPE, u32(unix.NFT_NAT_DNAT))
	d = nlAttr(d, unix.NFTA_NAT_FAMILY, u32(uint32(fam)))
	d = nlAttr(d, unix.NFTA_NAT_REG_ADDR_MIN, u32(unix.NFT_REG_1))
	d = nlAttr(d, unix.NFTA_NAT_REG_PROTO_MIN, u32(proto))
	expr("nat", d)
	return b
}

// nftSlotIPProtocols are the IP protocol numbers of nftSlotProtocols.
var nftSlotIPProtocols = [len(nftSlotProtocols)]byte{unix.IPPROTO_TCP, unix.IPPROTO_UDP, unix.IPPROTO_SCTP}
