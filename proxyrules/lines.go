package proxyrules

import (
	"net/netip"
	"strconv"
)

// lines is an iptables-restore line buffer: each write is one line of
// space-separated words, like kube-proxy's LineBuffer. Numbers and
// addresses are appended in place, so writing a rule allocates nothing.
type lines struct {
	buf []byte
}

func (l *lines) write(words ...string) {
	l.start(words...)
	l.end()
}

// Lines built in parts, without building an argument slice: start writes
// the first words, more appends words, the typed methods append one word,
// end closes the line.
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

// quoted appends one word in double quotes, made of parts.
func (l *lines) quoted(parts ...string) {
	l.buf = append(l.buf, ' ', '"')
	for _, p := range parts {
		l.buf = append(l.buf, p...)
	}
	l.buf = append(l.buf, '"')
}

func (l *lines) addr(a netip.Addr) {
	l.buf = append(l.buf, ' ')
	l.buf = a.AppendTo(l.buf)
}

func (l *lines) prefix(p netip.Prefix) {
	l.buf = append(l.buf, ' ')
	l.buf = p.AppendTo(l.buf)
}

func (l *lines) int(n int) {
	l.buf = append(l.buf, ' ')
	l.buf = strconv.AppendInt(l.buf, int64(n), 10)
}

// raw appends s as it is (with no space before it).
func (l *lines) raw(s string) { l.buf = append(l.buf, s...) }

func (l *lines) end() { l.buf = append(l.buf, '\n') }

// chain declares (and, under --noflush, flushes) a chain.
func (l *lines) chain(name string) {
	l.buf = append(l.buf, ':')
	l.buf = append(l.buf, name...)
	l.buf = append(l.buf, " - [0:0]\n"...)
}
