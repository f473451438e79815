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

// Lines built in parts, without building an argument slice: start writes
// the first words, more appends words, quoted appends one word in double
// quotes made of parts, end closes the line.
func (l *lines) start(words ...string) {
	for i, w := range words {
		if i > 0 {
			l.buf = append(l.buf, ' ')
		}
		l.buf = append(l.buf, w...)
	}
}

func (l *lines) more(words ...string) {
	for _, w := range words {
		l.buf = append(l.buf, ' ')
		l.buf = append(l.buf, w...)
	}
}

func (l *lines) quoted(parts ...string) {
	l.buf = append(l.buf, ' ', '"')
	for _, p := range parts {
		l.buf = append(l.buf, p...)
	}
	l.buf = append(l.buf, '"')
}

func (l *lines) end() {
	l.buf = append(l.buf, '\n')
	l.n++
}

// chain declares (and, under --noflush, flushes) a chain.
func (l *lines) chain(name string) { l.write(":" + name + " - [0:0]") }
