package staticpod

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	testclock "k8s.io/utils/clock/testing"
)

// server serves whatever body and status the test sets.
type server struct {
	mu     sync.Mutex
	status int
	body   string
	delay  time.Duration
	header string
}

func (s *server) set(status int, body string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status, s.body = status, body
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	status, body, delay := s.status, s.body, s.delay
	s.header = r.Header.Get("X-Test")
	s.mu.Unlock()
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
	}
	w.WriteHeader(status)
	w.Write([]byte(body))
}

const podListJSON = `{"apiVersion":"v1","kind":"PodList","items":[
 {"metadata":{"name":"a"},"spec":{"containers":[{"name":"c","image":"img-a"}]}},
 {"metadata":{"name":"b"},"spec":{"containers":[{"name":"c","image":"img-b"}]}}]}`

// TestURLSource walks extractFromURL (pkg/kubelet/config/http.go) through
// Pod, PodList, 404, 500, garbage, an empty body and repeated bodies, one
// poll per step of the injected clock.
func TestURLSource(t *testing.T) {
	srv := &server{status: 200, body: podYAML("web", "v1")}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	clk := testclock.NewFakeClock(time.Now())
	src, err := NewURL(URLConfig{URL: ts.URL, NodeName: "n1", Clock: clk, Header: http.Header{"X-Test": {"yes"}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan Update, 16)
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, ch) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	c := &collector{t: t, ch: ch}
	poll := func() {
		t.Helper()
		waitForWaiters(t, clk)
		clk.Step(20 * time.Second)
	}

	u := c.waitFor("Pod", time.Second, setIs("web-n1=v1"))
	if u.Source != SourceHTTP || u.Pods[0].Annotations[AnnotationSource] != SourceHTTP {
		t.Fatalf("source %q", u.Source)
	}
	srv.mu.Lock()
	if srv.header != "yes" {
		t.Errorf("header not sent: %q", srv.header)
	}
	srv.mu.Unlock()

	srv.set(200, podListJSON)
	poll()
	c.waitFor("PodList", time.Second, setIs("a-n1=img-a", "b-n1=img-b"))

	for _, tc := range []struct {
		name   string
		status int
		body   string
		want   error
	}{
		{"404", 404, "not here", nil},
		{"500", 500, "", nil},
		{"garbage", 200, "<html>oops</html>", ErrNotPod},
		{"invalid pod", 200, podYAML("Web", "v1"), ErrInvalid},
		{"same invalid body again: upstream is silent, nodekit reports", 200, podYAML("Web", "v1"), ErrUnchanged},
	} {
		srv.set(tc.status, tc.body)
		poll()
		c.waitFor(tc.name+" keeps the last good set", time.Second, func(u Update) bool {
			return u.Keep && u.Pods == nil && len(u.Errors) == 1 && (tc.want == nil || errors.Is(u.Errors[0], tc.want))
		})
	}

	srv.set(200, podListJSON)
	poll()
	c.waitFor("the list again", time.Second, setIs("a-n1=img-a", "b-n1=img-b"))

	srv.set(200, "")
	poll()
	c.waitFor("an empty body is an empty set", time.Second, func(u Update) bool {
		return setIs()(u) && errors.Is(u.Errors[0], ErrEmptyBody)
	})

	srv.set(200, podListJSON)
	poll()
	c.waitFor("the same list after an empty body: no set, as upstream, but reported", time.Second, func(u Update) bool {
		return u.Keep && errors.Is(u.Errors[0], ErrUnchanged)
	})
}

// TestURLUnchangedBodySendsNothing: a repeated good body yields no update.
func TestURLUnchangedBodySendsNothing(t *testing.T) {
	srv := &server{status: 200, body: podYAML("web", "v1")}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	src, err := NewURL(URLConfig{URL: ts.URL, NodeName: "n1"})
	if err != nil {
		t.Fatal(err)
	}
	if u, ok := src.read(context.Background()); !ok || !setIs("web-n1=v1")(u) {
		t.Fatalf("first read: %v %v", ok, u)
	}
	if u, ok := src.read(context.Background()); ok {
		t.Fatalf("second read of the same body sent %+v", u)
	}
}

// TestURLSlowServer: a server slower than the client's timeout is an error
// and keeps the set.
func TestURLSlowServer(t *testing.T) {
	srv := &server{status: 200, body: podYAML("web", "v1"), delay: 5 * time.Second}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	src, err := NewURL(URLConfig{URL: ts.URL, NodeName: "n1", Client: &http.Client{Timeout: 100 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	u, ok := src.read(context.Background())
	if !ok || !u.Keep || !strings.Contains(u.Errors[0].Error(), "Timeout") {
		t.Fatalf("slow server: %v %+v", ok, u)
	}
}

func TestNewSourcesCheckConfig(t *testing.T) {
	if _, err := NewURL(URLConfig{NodeName: "n"}); err == nil {
		t.Error("NewURL without URL")
	}
	if _, err := NewURL(URLConfig{URL: "http://x"}); err == nil {
		t.Error("NewURL without NodeName")
	}
	if _, err := NewDir(DirConfig{NodeName: "n"}); err == nil {
		t.Error("NewDir without Path")
	}
	if _, err := NewDir(DirConfig{Path: "/x"}); err == nil {
		t.Error("NewDir without NodeName")
	}
}
