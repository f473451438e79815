package staticpod

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"k8s.io/utils/clock"
)

// URLConfig configures a URL source. DefaultURLConfig has the kubelet's
// defaults.
type URLConfig struct {
	// URL serves a Pod or a PodList, in YAML or JSON (the kubelet's
	// --manifest-url).
	URL string
	// Header is sent with every request (--manifest-url-header).
	Header http.Header
	// NodeName is the node's name, as for DirConfig.
	NodeName string
	// Source names the source. Default SourceHTTP.
	Source string
	// Period is the time between the end of one read and the start of the
	// next (the kubelet's httpCheckFrequency). Default 20s.
	Period time.Duration
	// Client makes the requests. Default: an http.Client with a 10s
	// timeout, as the kubelet's.
	Client *http.Client
	// Clock drives the polling. Default: the real clock.
	Clock clock.WithTicker
	// Logger receives errors. Default: discarded.
	Logger *slog.Logger
}

// DefaultURLConfig returns the kubelet's defaults.
func DefaultURLConfig() URLConfig {
	return URLConfig{Source: SourceHTTP, Period: 20 * time.Second}
}

// URL is the kubelet's HTTP source (pkg/kubelet/config/http.go): the
// static pods served at a URL, polled.
type URL struct {
	url, node, source string
	header            http.Header
	period            time.Duration
	client            *http.Client
	clock             clock.WithTicker
	log               *slog.Logger

	// Run's state: the last body read and what came of it.
	last    []byte
	lastErr error
}

// NewURL checks cfg and returns a URL source.
func NewURL(cfg URLConfig) (*URL, error) {
	def := DefaultURLConfig()
	if cfg.URL == "" {
		return nil, errors.New("staticpod: URLConfig.URL is empty")
	}
	if cfg.NodeName == "" {
		return nil, errors.New("staticpod: URLConfig.NodeName is empty")
	}
	u := &URL{url: cfg.URL, node: cfg.NodeName, source: cmpOr(cfg.Source, def.Source), header: cfg.Header,
		period: cmpOr(cfg.Period, def.Period), client: cfg.Client, clock: cfg.Clock, log: cfg.Logger}
	if u.client == nil {
		u.client = &http.Client{Timeout: 10 * time.Second}
	}
	if u.clock == nil {
		u.clock = clock.RealClock{}
	}
	if u.log == nil {
		u.log = slog.New(slog.DiscardHandler)
	}
	return u, nil
}

// Run reads the URL at once and then Period after each read ends, and
// sends what each read yields, until ctx is cancelled; then it returns
// nil. As upstream (extractFromURL):
//
//   - a transport error, a status other than 200, or a body that is not a
//     valid Pod or PodList: no set (Keep) and the error. The pods of the
//     last good read stay;
//   - a 200 with an empty body: an empty set, which removes every pod of
//     the source, and ErrEmptyBody;
//   - the same body as the last non-empty one: nothing new is sent. Where
//     upstream then stays silent, the URL source sends Keep with
//     ErrUnchanged when the body had been rejected (and with the original
//     error), or when an empty body came in between, because the pods it
//     removed do not come back until the body changes;
//   - otherwise: the set of the body's pods.
func (s *URL) Run(ctx context.Context, out chan<- Update) error {
	for {
		if u, ok := s.read(ctx); ok {
			select {
			case out <- u:
			case <-ctx.Done():
				return nil
			}
		}
		t := s.clock.NewTimer(s.period)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C():
		}
	}
}

// read does one poll; ok is false when there is nothing to send.
func (s *URL) read(ctx context.Context) (u Update, ok bool) {
	u.Source = s.source
	fail := func(err error) (Update, bool) {
		err = &ManifestError{Path: s.url, Err: err}
		s.log.Info("failed to read pods from URL", "err", err)
		u.Keep, u.Errors = true, []error{err}
		return u, true
	}
	data, err := s.get(ctx)
	if err != nil {
		return fail(err)
	}
	if len(data) == 0 {
		s.lastErr = ErrEmptyBody
		u.Pods = emptyPods()
		u.Errors = []error{&ManifestError{Path: s.url, Err: ErrEmptyBody}}
		return u, true
	}
	if bytes.Equal(data, s.last) {
		if s.lastErr == nil {
			return u, false
		}
		if errors.Is(s.lastErr, ErrEmptyBody) {
			return fail(fmt.Errorf("%w: the pods an empty body removed stay removed until the body changes", ErrUnchanged))
		}
		return fail(fmt.Errorf("%w: %w", ErrUnchanged, s.lastErr))
	}
	s.last = data
	pods, err := DecodeURL(data, s.node, s.url)
	s.lastErr = err
	if err != nil {
		return fail(err)
	}
	for _, p := range pods {
		p.Annotations[AnnotationSource] = s.source
	}
	u.Pods = pods
	return u, true
}

func (s *URL) get(ctx context.Context) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url, nil)
	if err != nil {
		return nil, err
	}
	if s.header != nil {
		req.Header = s.header.Clone()
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, MaxManifestSize))
	if err != nil {
		return nil, err
	}
	if len(data) >= MaxManifestSize {
		return nil, ErrTooLarge
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", s.url, resp.Status)
	}
	return data, nil
}
