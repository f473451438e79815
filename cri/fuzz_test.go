package cri_test

import (
	"bytes"
	"strings"
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/kube-nodekit/nodekit/cri"
)

// FuzzParseLogLine: any input parses or errors without panicking; what
// parses has a valid stream, content that is a suffix of the input, and
// survives re-encoding. Seeds are in testdata/fuzz/FuzzParseLogLine;
// conformance/cri_logs_test.go compares with upstream's reader.
func FuzzParseLogLine(f *testing.F) {
	f.Fuzz(func(t *testing.T, line []byte) {
		l, err := cri.ParseLogLine(line)
		if err != nil {
			return
		}
		if l.Stream != runtimeapi.Stdout && l.Stream != runtimeapi.Stderr {
			t.Fatalf("stream %q", l.Stream)
		}
		trimmed := bytes.TrimSuffix(line, []byte("\n"))
		if !bytes.HasSuffix(line, l.Log) && !bytes.HasSuffix(trimmed, l.Log) {
			t.Fatalf("content %q is not the end of %q", l.Log, line)
		}
		content := bytes.TrimSuffix(l.Log, []byte("\n"))
		if bytes.IndexByte(content, '\n') >= 0 {
			return // a record with an inner newline cannot be re-encoded
		}
		again, err := cri.ParseLogLine(cri.AppendLogLine(nil, l.Time, l.Stream, l.Partial, content))
		if err != nil || !again.Time.Equal(l.Time) || again.Stream != l.Stream || again.Partial != l.Partial ||
			!bytes.Equal(bytes.TrimSuffix(again.Log, []byte("\n")), content) {
			t.Fatalf("re-encoded %q: %+v, %v; want %+v", line, again, err, l)
		}
	})
}

// FuzzParseImageRef: any input parses or errors without panicking;
// normalization is idempotent, its output parses to itself, and the
// default-tagged form has a tag or digest. Seeds are in
// testdata/fuzz/FuzzParseImageRef; conformance/cri_imageref_test.go compares
// with distribution/reference.
func FuzzParseImageRef(f *testing.F) {
	f.Fuzz(func(t *testing.T, s string) {
		r, err := cri.ParseImageRef(s)
		if err != nil {
			if _, err2 := cri.NormalizeImage(s); err2 == nil {
				t.Fatalf("ParseImageRef(%q) failed but NormalizeImage did not", s)
			}
			return
		}
		if r.Path == "" || strings.Contains(r.Tag, ":") || strings.Contains(r.Path, ":") {
			t.Fatalf("ParseImageRef(%q) = %+v", s, r)
		}
		n, err := cri.NormalizeImage(s)
		if err != nil {
			t.Fatalf("NormalizeImage(%q): %v", s, err)
		}
		n2, err := cri.NormalizeImage(n)
		if err != nil || n2 != n {
			t.Fatalf("NormalizeImage not idempotent: %q -> %q -> %q, %v", s, n, n2, err)
		}
		if back, err := cri.ParseImageRef(n); err != nil || back.String() != n {
			t.Fatalf("ParseImageRef(%q) = %q, %v", n, back, err)
		}
		d, err := cri.DefaultImageTag(s)
		if err != nil {
			t.Fatalf("DefaultImageTag(%q): %v", s, err)
		}
		if dr, err := cri.ParseImageRef(d); err != nil || dr.Tag == "" && dr.Digest == "" {
			t.Fatalf("DefaultImageTag(%q) = %q: %+v, %v", s, d, dr, err)
		}
	})
}
