package proxyrules

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
	"sigs.k8s.io/knftables"
)

// An endpoint change in the NFTablesEndpointMaps layout is a few elements
// of the endpoint maps (and of the hairpin set, for an endpoint on this
// node), and, when the number of endpoints changes, the rewrite of the
// one rule of one or two per-ServicePort chains (see
// nftables_netlink_rules.go). nft takes tens of ms to apply that to a
// large table (it starts, and reads every chain and set of the table
// before it applies anything; about 40 ms at 10,000 Services here), the
// kernel under 1 ms to add elements (about 13 ms, at any table size, for
// a batch that also deletes some): NFTablesApplier sends such a sync over
// netlink itself, as one batch (one transaction, all or nothing, as
// nft's).

// Netlink constants (linux/netfilter/nfnetlink.h, nf_tables.h).
const (
	nfnlSubsysNFTables = 10
	nfnlMsgBatchBegin  = 0x10
	nfnlMsgBatchEnd    = 0x11
	nftMsgNewSetElem   = 12
	nftMsgDelSetElem   = 14

	nftaSetElemListTable    = 1
	nftaSetElemListSet      = 2
	nftaSetElemListElements = 3
	nftaListElem            = 1
	nftaSetElemKey          = 1
	nftaSetElemData         = 2
	nftaDataValue           = 1
)

// netlinkApplicable reports whether applyNetlink can send the sync: it
// only adds and deletes elements of the endpoint maps and of the hairpin
// set (which an endpoint on this node has), and adds and flushes
// per-ServicePort chains and adds endpoint-map rules to them (what a
// change in the number of a ServicePort's endpoints rewrites).
func (s *NFTablesSync) netlinkApplicable() bool {
	if s.Full || s.NumOperations() == 0 {
		return false
	}
	ops := s.operations()
	for i := range ops {
		op := &ops[i]
		element := op.verb == nftAdd || op.verb == nftDelete
		switch {
		case op.kind == nftMapElem && element && strings.HasPrefix(op.name, nftPrefixEndpointMap):
		case op.kind == nftSetElem && element && op.name == nftHairpin && op.comment == "":
		case (op.kind == nftChain || op.kind == nftRule) && s.netlinkChainOp(op):
		default:
			return false
		}
	}
	return true
}

// hairpinKeyBytes is a hairpin-connections key, "address . address .
// protocol . port", as the kernel holds it: each part padded to 4 bytes.
func hairpinKeyBytes(k string) ([]byte, error) {
	parts := strings.Split(k, " . ")
	if len(parts) != 4 {
		return nil, fmt.Errorf("proxyrules: hairpin element %q", k)
	}
	var b []byte
	for _, a := range parts[:2] {
		addr, err := netip.ParseAddr(a)
		if err != nil {
			return nil, fmt.Errorf("proxyrules: hairpin element %q: %w", k, err)
		}
		b = append(b, addr.AsSlice()...)
	}
	proto, ok := map[string]byte{"tcp": unix.IPPROTO_TCP, "udp": unix.IPPROTO_UDP, "sctp": unix.IPPROTO_SCTP}[parts[2]]
	if !ok {
		return nil, fmt.Errorf("proxyrules: hairpin element %q: protocol", k)
	}
	port, err := strconv.ParseUint(parts[3], 10, 16)
	if err != nil {
		return nil, fmt.Errorf("proxyrules: hairpin element %q: %w", k, err)
	}
	return append(b, proto, 0, 0, 0, byte(port>>8), byte(port), 0, 0), nil
}

// netlinkBatch encodes the sync's operations as one nf_tables batch: a
// message per operation, the last asking for an acknowledgement (the
// kernel reports every refused message whether asked or not, all after
// the whole batch, so the last message's answer comes last).
func (s *NFTablesSync) netlinkBatch(ops nftOps) ([]byte, error) {
	var b []byte
	b = nlMessage(b, nfnlMsgBatchBegin, unix.NLM_F_REQUEST, 0, unix.AF_UNSPEC, nfnlSubsysNFTables, nil)
	last := 0
	for i := range ops {
		last = len(b)
		var err error
		if op := &ops[i]; op.kind == nftChain || op.kind == nftRule {
			b, err = appendNetlinkChainOp(b, s.family, op, uint32(i+1))
		} else {
			b, err = appendNetlinkElement(b, s.family, op, uint32(i+1))
		}
		if err != nil {
			return nil, err
		}
	}
	if len(ops) > 0 {
		flags := b[last+6 : last+8] // nlmsghdr's nlmsg_flags
		binary.NativeEndian.PutUint16(flags, binary.NativeEndian.Uint16(flags)|unix.NLM_F_ACK)
	}
	return nlMessage(b, nfnlMsgBatchEnd, unix.NLM_F_REQUEST, uint32(len(ops)+1), unix.AF_UNSPEC, nfnlSubsysNFTables, nil), nil
}

// appendNetlinkElement appends the message that adds or deletes an
// element of an endpoint map or of the hairpin set.
func appendNetlinkElement(b []byte, family knftables.Family, op *nftOp, seq uint32) ([]byte, error) {
	var keyBytes []byte
	if op.kind == nftSetElem {
		k, err := hairpinKeyBytes(op.text)
		if err != nil {
			return nil, err
		}
		keyBytes = k
	} else {
		key, err := strconv.ParseUint(op.text, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("proxyrules: endpoint map key %q: %w", op.text, err)
		}
		keyBytes = binary.NativeEndian.AppendUint32(nil, uint32(key))
	}
	elem := nlAttr(nil, nftaSetElemKey|unix.NLA_F_NESTED, nlAttr(nil, nftaDataValue, keyBytes))
	msg, flags := uint16(nftMsgDelSetElem), uint16(unix.NLM_F_REQUEST)
	if op.verb == nftAdd && op.kind == nftSetElem {
		msg, flags = nftMsgNewSetElem, flags|unix.NLM_F_CREATE
	} else if op.verb == nftAdd {
		msg, flags = nftMsgNewSetElem, flags|unix.NLM_F_CREATE
		value, err := slotValueBytes(op.value)
		if err != nil {
			return nil, err
		}
		elem = nlAttr(elem, nftaSetElemData|unix.NLA_F_NESTED, nlAttr(nil, nftaDataValue, value))
	}
	var attrs []byte
	attrs = nlAttr(attrs, nftaSetElemListTable, append([]byte(NFTablesTable), 0))
	attrs = nlAttr(attrs, nftaSetElemListSet, append([]byte(op.name), 0))
	attrs = nlAttr(attrs, nftaSetElemListElements|unix.NLA_F_NESTED, nlAttr(nil, nftaListElem|unix.NLA_F_NESTED, elem))
	return nlMessage(b, nfnlSubsysNFTables<<8|msg, flags, seq, nfproto(family), 0, attrs), nil
}

// nfproto is the nfgenmsg family of a table of family f.
func nfproto(f knftables.Family) byte {
	if f == knftables.IPv6Family {
		return unix.NFPROTO_IPV6
	}
	return unix.NFPROTO_IPV4
}

// slotValueBytes is an endpoint map value, "address . port", as the kernel
// holds it: the address, then the port in network order padded to 4 bytes.
func slotValueBytes(v string) ([]byte, error) {
	addr, port, _ := strings.Cut(v, " . ")
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return nil, fmt.Errorf("proxyrules: endpoint map value %q: %w", v, err)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("proxyrules: endpoint map value %q: %w", v, err)
	}
	return append(a.AsSlice(), byte(p>>8), byte(p), 0, 0), nil
}

// nlMessage appends a netlink message with an nfgenmsg header.
func nlMessage(b []byte, typ, flags uint16, seq uint32, family byte, resID uint16, attrs []byte) []byte {
	n := unix.NLMSG_HDRLEN + 4 + len(attrs)
	b = binary.NativeEndian.AppendUint32(b, uint32(n))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = binary.NativeEndian.AppendUint16(b, flags)
	b = binary.NativeEndian.AppendUint32(b, seq)
	b = binary.NativeEndian.AppendUint32(b, 0)
	b = append(b, family, 0)
	b = binary.BigEndian.AppendUint16(b, resID)
	return append(b, attrs...)
}

// nlAttr appends an attribute, padded to 4 bytes.
func nlAttr(b []byte, typ uint16, value []byte) []byte {
	b = binary.NativeEndian.AppendUint16(b, uint16(unix.NLA_HDRLEN+len(value)))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = append(b, value...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

// applyNetlink sends the sync in one batch to the kernel of the network
// namespace netns (a path such as /run/netns/NAME; "" for this process's)
// and waits for the kernel's answer. When the kernel refuses the batch it
// applies none of it, and the error names the first refused operation.
// An error that wraps errNetlinkUnknown leaves it unknown whether the
// kernel applied the batch.
func (s *NFTablesSync) applyNetlink(netns string) error {
	ops := s.operations()
	batch, err := s.netlinkBatch(ops)
	if err != nil {
		return err
	}
	fd, err := netfilterSocket(netns)
	if err != nil {
		return fmt.Errorf("proxyrules: netlink socket: %w", err)
	}
	defer unix.Close(fd)
	// The batch goes in one message, which the socket's send buffer must
	// hold (nft sizes it the same way). A kernel that answered nothing
	// would leave us waiting.
	if len(batch) > 1<<16 {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, len(batch)); err != nil {
			return fmt.Errorf("proxyrules: netlink socket: %w", err)
		}
	}
	tv := unix.Timeval{Sec: 30}
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return fmt.Errorf("proxyrules: netlink socket: %w", err)
	}
	if err := unix.Sendto(fd, batch, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("proxyrules: netlink send: %w", err)
	}
	lastSeq := uint32(len(ops))
	var failed error
	buf := make([]byte, 1<<16)
	for {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if errors.Is(err, unix.ENOBUFS) {
			// Only refusals can overflow the socket (a batch the kernel
			// takes is answered by one acknowledgement): it applied
			// nothing.
			return cmp.Or(failed, fmt.Errorf("proxyrules: the kernel refused the batch (more refusals than the socket holds): %w", err))
		}
		if err != nil {
			return fmt.Errorf("proxyrules: netlink receive: %w: %w", errNetlinkUnknown, err)
		}
		for msg := buf[:n]; len(msg) >= unix.NLMSG_HDRLEN; {
			size := int(binary.NativeEndian.Uint32(msg))
			if size < unix.NLMSG_HDRLEN || size > len(msg) {
				return fmt.Errorf("proxyrules: netlink receive: %w: truncated message", errNetlinkUnknown)
			}
			typ, seq, data := binary.NativeEndian.Uint16(msg[4:]), binary.NativeEndian.Uint32(msg[8:]), msg[unix.NLMSG_HDRLEN:size]
			msg = msg[min(len(msg), (size+3)&^3):]
			if typ != unix.NLMSG_ERROR || len(data) < 4 {
				continue
			}
			if errno := int32(binary.NativeEndian.Uint32(data)); errno != 0 && failed == nil {
				i := int(seq) - 1
				what := "the batch"
				if i >= 0 && i < len(ops) {
					what = strings.TrimSpace(string(ops[i:i+1].script(s.family, false)))
				}
				failed = fmt.Errorf("proxyrules: the kernel refused %q: %w", what, unix.Errno(-errno))
			}
			// The answer to the last message comes last; one to the
			// batch's start (seq 0) means the kernel did not take the
			// batch at all.
			if seq == lastSeq || seq == 0 {
				return failed
			}
		}
	}
}

// errNetlinkUnknown: the kernel may or may not have applied a batch.
var errNetlinkUnknown = errors.New("the outcome is unknown")

// netfilterSocket opens a NETLINK_NETFILTER socket in netns: a socket
// belongs to the namespace its thread was in when it was made.
func netfilterSocket(netns string) (int, error) {
	open := func() (int, error) {
		fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_NETFILTER)
		if err != nil {
			return -1, err
		}
		if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
			unix.Close(fd)
			return -1, err
		}
		return fd, nil
	}
	if netns == "" {
		return open()
	}
	target, err := os.Open(netns)
	if err != nil {
		return -1, err
	}
	defer target.Close()
	runtime.LockOSThread()
	own, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		return -1, err
	}
	defer own.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return -1, err
	}
	fd, openErr := open()
	if err := unix.Setns(int(own.Fd()), unix.CLONE_NEWNET); err != nil {
		// The thread stays in the wrong namespace: keep it locked, so
		// that it ends with this goroutine instead of running others.
		if fd >= 0 {
			unix.Close(fd)
		}
		return -1, errors.Join(openErr, err)
	}
	runtime.UnlockOSThread()
	return fd, openErr
}
