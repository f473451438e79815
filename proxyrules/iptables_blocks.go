package proxyrules

import "sync"

// Writers write ports into blocks of memory, and each port's record keeps
// slices of them for later syncs. After a full sync the records point into
// the payload instead, which holds the same bytes, and the writers' big
// blocks go back to a pool for the next sync (of any generator): a full
// sync then allocates its payload, not a second copy of it, and a proxy's
// periodic full syncs reuse the same blocks.

// poolBlock is the size of a pooled block; smaller needs are allocated.
const poolBlock = 1 << 20

var blockPool = sync.Pool{New: func() any {
	b := make([]byte, 0, poolBlock)
	return &b
}}

// blocks are the pooled blocks one writer took.
type blocks []*[]byte

// newBlock replaces l's buffer by one with room for n bytes, from the pool
// when a block of size block would be big enough to be worth pooling.
func (bs *blocks) newBlock(l *lines, n, block int) {
	if block < poolBlock/16 || n > poolBlock {
		l.buf = make([]byte, 0, max(n, block))
		return
	}
	p := blockPool.Get().(*[]byte)
	*bs = append(*bs, p)
	l.buf = (*p)[:0]
}

// release returns the blocks to the pool. Nothing may refer to them.
func (bs blocks) release() {
	for _, p := range bs {
		*p = (*p)[:0]
		blockPool.Put(p)
	}
}

// portSize is a size for each of a portWriter's buffers but filter, which
// most ports leave empty and so grows as needed.
type portSize struct{ natTop, ownChains, ownRules int }

func (s *portSize) add(o portSize) {
	s.natTop += o.natTop
	s.ownChains += o.ownChains
	s.ownRules += o.ownRules
}

// block is the size of the buffers of one of n writers that share the
// work of size s: big enough to be allocated a few times only, small
// enough to waste little.
func (s portSize) block(n int) portSize {
	size := func(total int) int { return min(poolBlock, total/n+1024) }
	return portSize{size(s.natTop), size(s.ownChains), size(s.ownRules)}
}

// estimate is a little above what a port's rules take (about 120 bytes and
// a name per rule, 36 per chain; in a large cluster 265 per endpoint).
func estimate(p *PortState, largeCluster bool) portSize {
	perRule := 120 + len(p.Name.Namespace) + len(p.Name.Name) + len(p.Name.Port)
	destinations := 1 + len(p.ExternalIPs) + len(p.LoadBalancerVIPs)
	if p.NodePort != 0 {
		destinations++
	}
	perEndpoint := 265
	if !largeCluster {
		perEndpoint += 3 * perRule
	}
	return portSize{
		natTop:    perRule * destinations,
		ownChains: 36 * (3 + len(p.Reachable)),
		ownRules:  perRule*destinations + perEndpoint*len(p.Reachable),
	}
}

// reserve makes room in each buffer for a port of size s, in a new buffer
// if need be: the records written so far keep the old one.
func (w *portWriter) reserve(s portSize) {
	for _, r := range []struct {
		l        *lines
		n, block int
	}{{&w.natTop, s.natTop, w.block.natTop}, {&w.ownChains, s.ownChains, w.block.ownChains}, {&w.ownRules, s.ownRules, w.block.ownRules}} {
		if cap(r.l.buf)-len(r.l.buf) < r.n {
			w.blocks.newBlock(r.l, r.n, r.block)
		}
	}
}
