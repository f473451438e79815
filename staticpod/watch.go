package staticpod

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
)

// watchRetry is how soon a watch that could not be set up is tried again
// (retryPeriod in pkg/kubelet/config/file_linux.go).
const watchRetry = time.Second

// watcher is the part of *fsnotify.Watcher the source uses.
type watcher interface {
	Add(path string) error
	Close() error
	Events() <-chan fsnotify.Event
	Errors() <-chan error
}

type fsWatcher struct{ *fsnotify.Watcher }

func (w fsWatcher) Events() <-chan fsnotify.Event { return w.Watcher.Events }
func (w fsWatcher) Errors() <-chan error          { return w.Watcher.Errors }

func newFSWatcher() (watcher, error) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, err
	}
	return fsWatcher{w}, nil
}

// watchState is what is being watched: the directory itself, or, for a
// single file (or a path that does not exist yet), its parent directory,
// so that an editor replacing the file, or the path appearing, is seen.
type watchState struct {
	w      watcher
	target string // the watched directory
	base   string // the one name that matters in target, or "" for all
}

// Run sends d's set to out at start, after every change the watch reports
// (within a second of it, in practice milliseconds), and every Resync,
// until ctx is cancelled; then it returns nil. A watch that cannot be set
// up or that fails is retried every second, and the directory is read
// again once it is back, so no change is lost; meanwhile the resync still
// runs. Updates are sent even when nothing changed; a Merger turns
// repeated sets into no updates.
func (d *Dir) Run(ctx context.Context, out chan<- Update) error {
	send := func(u Update) bool {
		select {
		case out <- u:
			return true
		case <-ctx.Done():
			return false
		}
	}
	resync := d.clock.NewTicker(d.resync)
	defer resync.Stop()
	var ws watchState
	defer func() {
		if ws.w != nil {
			ws.w.Close()
		}
	}()
	var retry <-chan time.Time

	for {
		// (Re)establish the watch before reading, so a change made while we
		// read is still reported.
		if err := d.ensureWatch(&ws); err != nil {
			d.log.Info("cannot watch static pod path; retrying", "path", d.path, "err", err)
			if retry == nil {
				retry = d.clock.After(watchRetry)
			}
		}
		if !send(d.List()) {
			return nil
		}
	wait:
		for {
			var events <-chan fsnotify.Event
			var errs <-chan error
			if ws.w != nil {
				events, errs = ws.w.Events(), ws.w.Errors()
			}
			select {
			case <-ctx.Done():
				return nil
			case <-resync.C():
				break wait
			case <-retry:
				retry = nil
				break wait
			case ev, ok := <-events:
				if !ok || !ws.relevant(ev, d.path) {
					continue
				}
				ws.drain()
				break wait
			case err, ok := <-errs:
				if !ok {
					continue
				}
				// Events may have been lost (an inotify queue overflow, say):
				// start a new watch and read everything again.
				werr := &ManifestError{Path: d.path, Err: fmt.Errorf("watch failed: %w", err)}
				d.log.Warn("static pod watch failed", "err", werr)
				ws.w.Close()
				ws = watchState{}
				if !send(Update{Source: d.source, Keep: true, Errors: []error{werr}}) {
					return nil
				}
				break wait
			}
		}
	}
}

// relevant: an event about a manifest (not a dotfile, as upstream) or
// about the watched path itself.
func (ws *watchState) relevant(ev fsnotify.Event, path string) bool {
	if ev.Name == path || ev.Name == ws.target {
		return true
	}
	name := filepath.Base(ev.Name)
	if ws.base != "" {
		return name == ws.base
	}
	return !strings.HasPrefix(name, ".")
}

// drain takes the events already queued, so that one burst (an editor's
// save is several) costs one read.
func (ws *watchState) drain() {
	for {
		select {
		case _, ok := <-ws.w.Events():
			if !ok {
				return
			}
		default:
			return
		}
	}
}

// ensureWatch makes ws watch what d.path needs now: the directory, or the
// parent of a file or of a missing path.
func (d *Dir) ensureWatch(ws *watchState) error {
	target, base := d.path, ""
	if info, err := os.Stat(d.path); err != nil || !info.IsDir() {
		target, base = filepath.Dir(d.path), filepath.Base(d.path)
	}
	if ws.w != nil && ws.target == target && ws.base == base {
		if _, err := os.Stat(target); err == nil {
			return nil
		}
	}
	if ws.w != nil {
		ws.w.Close()
		*ws = watchState{}
	}
	if _, err := os.Stat(target); err != nil {
		return err
	}
	w, err := d.newWatcher()
	if err != nil {
		return fmt.Errorf("unable to create inotify: %w", err)
	}
	if err := w.Add(target); err != nil {
		w.Close()
		return errors.Join(fmt.Errorf("unable to watch %q", target), err)
	}
	*ws = watchState{w: w, target: target, base: base}
	return nil
}
