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
	if block < poolBlock/4 || n > poolBlock {
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
