package proxyrules

// lines is an iptables-restore line buffer: each write is one line of
// space-separated words, like kube-proxy's LineBuffer.
type lines struct {
	buf []byte
	n   int
}

func (l *lines) write(words ...string) {
	for i, w := range words {
		if i > 0 {
			l.buf = append(l.buf, ' ')
		}
		l.buf = append(l.buf, w...)
	}
	l.buf = append(l.buf, '\n')
	l.n++
}

// chain declares (and, under --noflush, flushes) a chain.
func (l *lines) chain(name string) { l.write(":" + name + " - [0:0]") }

func (l *lines) reset() { l.buf, l.n = l.buf[:0], 0 }
