package cri

import (
	"strings"
	"unicode/utf8"
)

// Expand replaces $(VAR) references in s the way the kubelet expands a
// container's command, args and env values (third_party/forked/golang/expansion
// in k8s.io/kubernetes): $(NAME) becomes lookup(NAME) when lookup knows the
// name and stays as written otherwise; $$ is a literal $; a $ before
// anything else, or an unterminated $(, is kept. As upstream, the character
// after a lone $ is copied as a decoded rune, so an invalid UTF-8 byte there
// becomes U+FFFD.
func Expand(s string, lookup func(string) (string, bool)) string {
	i := strings.IndexByte(s, '$')
	if i < 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	checkpoint := 0
	for cursor := i; cursor < len(s); cursor++ {
		if s[cursor] != '$' || cursor+1 >= len(s) {
			continue
		}
		b.WriteString(s[checkpoint:cursor])
		rest := s[cursor+1:]
		r, size := utf8.DecodeRuneInString(rest)
		advance := size
		switch r {
		case '$': // escaped operator
			b.WriteString(rest[:size])
		case '(':
			end := strings.IndexByte(rest[1:], ')')
			if end < 0 { // incomplete reference
				b.WriteString("$(")
				advance = 1
				break
			}
			name := rest[1 : 1+end]
			if v, ok := lookup(name); ok {
				b.WriteString(v)
			} else {
				b.WriteString("$(")
				b.WriteString(name)
				b.WriteByte(')')
			}
			advance = end + 2
		default:
			b.WriteByte('$')
			b.WriteRune(r)
		}
		cursor += advance
		checkpoint = cursor + 1
	}
	b.WriteString(s[checkpoint:])
	return b.String()
}

// lookupIn returns a lookup over maps, first match wins.
func lookupIn(maps ...map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		for _, m := range maps {
			if v, ok := m[k]; ok {
				return v, true
			}
		}
		return "", false
	}
}
