package cri

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
	"google.golang.org/grpc/codes"
	corev1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// LogOptions selects what ReadLogs writes, as kubectl logs does.
type LogOptions struct {
	// TailLines, when set, starts at the last n lines (0: none).
	TailLines *int64
	// LimitBytes, when set, stops after that many bytes.
	LimitBytes *int64
	// Since skips records older than this.
	Since time.Time
	// Follow keeps reading while the container runs.
	Follow bool
	// Timestamps prefixes each line with its RFC 3339 time.
	Timestamps bool
}

// LogOptionsFor converts the apiserver's PodLogOptions as the kubelet does
// (pkg/kubelet/kuberuntime/kuberuntime_logs.go): the later of SinceSeconds
// (relative to now) and SinceTime wins.
func LogOptionsFor(o *corev1.PodLogOptions, now time.Time) LogOptions {
	opts := LogOptions{TailLines: o.TailLines, LimitBytes: o.LimitBytes, Follow: o.Follow, Timestamps: o.Timestamps}
	if o.SinceSeconds != nil {
		opts.Since = now.Add(-time.Duration(*o.SinceSeconds) * time.Second)
	}
	if o.SinceTime != nil && o.SinceTime.After(opts.Since) {
		opts.Since = o.SinceTime.Time
	}
	return opts
}

// StatusSource answers whether a container still runs; ReadLogs asks it
// while following. *Client and critest.Runtime implement it.
type StatusSource interface {
	ContainerStatus(ctx context.Context, containerID string, verbose bool) (*runtimeapi.ContainerStatusResponse, error)
}

// logForceCheckPeriod is how often a follower looks again without a file
// event (k8s.io/cri-client/pkg/logs).
const logForceCheckPeriod = time.Second

var (
	errMaximumWrite = errors.New("maximum write")
	errShortWrite   = errors.New("short write")
)

// ReadLogs writes the container log at path to stdout and stderr (either may
// be nil to drop that stream), with the kubelet's semantics
// (k8s.io/cri-client/pkg/logs.ReadLogs): TailLines counts records from the
// end; LimitBytes cuts the output; a Timestamps prefix goes only at the start
// of a line, not on the continuation of a partial record; malformed records
// after the first are skipped. With Follow it keeps reading, waking on file
// events or every second, until the container (containerID, asked through
// rs) is no longer running and the file is drained, or ctx is cancelled.
// rs and containerID are only used when following.
func ReadLogs(ctx context.Context, path, containerID string, opts LogOptions, rs StatusSource, stdout, stderr io.Writer) error {
	evaluated, err := filepath.EvalSymlinks(path)
	if err != nil {
		return fmt.Errorf("cri: logs: resolve %q: %w", path, err)
	}
	path = evaluated
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("cri: logs: %w", err)
	}
	defer func() { f.Close() }()

	tail := int64(-1)
	if opts.TailLines != nil {
		tail = *opts.TailLines
	}
	start, err := tailStart(f, tail)
	if err != nil {
		return fmt.Errorf("cri: logs: tail %d lines of %q: %w", tail, path, err)
	}
	if _, err := f.Seek(start, io.SeekStart); err != nil {
		return fmt.Errorf("cri: logs: seek %q: %w", path, err)
	}

	limited := opts.TailLines != nil && !opts.Follow
	left := tail
	r := bufio.NewReader(f)
	w := newLogWriter(stdout, stderr, &opts)
	var (
		watcher *fsnotify.Watcher
		parse   func([]byte, *LogLine) error
		msg     LogLine
		stop    bool
	)
	newLine, found := true, true
	var long []byte // a line longer than the read buffer
	for {
		if stop || (limited && left == 0) {
			return nil
		}
		l, err := readLine(r, &long)
		if err != nil {
			if err != io.EOF {
				return fmt.Errorf("cri: logs: read %q: %w", path, err)
			}
			if opts.Follow {
				if !found {
					return nil // the container stopped and the file is drained
				}
				// Read an incomplete last line again once it is complete.
				if _, err := f.Seek(-int64(len(l)), io.SeekCurrent); err != nil {
					return fmt.Errorf("cri: logs: seek %q: %w", path, err)
				}
				r.Reset(f)
				if watcher == nil {
					if watcher, err = fsnotify.NewWatcher(); err != nil {
						return fmt.Errorf("cri: logs: watch: %w", err)
					}
					defer watcher.Close()
					if err := watcher.Add(filepath.Dir(path)); err != nil {
						return fmt.Errorf("cri: logs: watch %q: %w", filepath.Dir(path), err)
					}
					continue // an event may have been missed before the watch
				}
				var recreated bool
				found, recreated, err = waitLogs(ctx, containerID, filepath.Base(path), watcher, rs)
				if err != nil {
					return err
				}
				if recreated {
					nf, err := os.Open(path)
					if err != nil {
						if os.IsNotExist(err) {
							continue
						}
						return fmt.Errorf("cri: logs: %w", err)
					}
					f.Close()
					f = nf
					r.Reset(f)
				}
				continue
			}
			stop = true // write what is left, then stop
			if len(l) == 0 {
				continue
			}
		}
		if parse == nil {
			if parse, err = logParser(l); err != nil {
				return err
			}
		}
		msg = LogLine{}
		if parse(l, &msg) != nil {
			continue // the kubelet logs and skips a malformed record
		}
		if err := w.write(&msg, newLine); err != nil {
			if err == errMaximumWrite {
				return nil
			}
			return err
		}
		if limited {
			left--
		}
		newLine = len(msg.Log) == 0 || msg.Log[len(msg.Log)-1] == '\n'
	}
}

// readLine is bufio.Reader.ReadBytes without a copy per line: the result
// aliases the reader's buffer (or *long, for lines that do not fit in it)
// and is valid until the next call.
func readLine(r *bufio.Reader, long *[]byte) ([]byte, error) {
	l, err := r.ReadSlice('\n')
	if err != bufio.ErrBufferFull {
		return l, err
	}
	*long = append((*long)[:0], l...)
	for err == bufio.ErrBufferFull {
		l, err = r.ReadSlice('\n')
		*long = append(*long, l...)
	}
	return *long, err
}

// waitLogs waits for the log to change. found is false when the container no
// longer runs; recreated when the file was created anew (rotation).
func waitLogs(ctx context.Context, id, name string, w *fsnotify.Watcher, rs StatusSource) (found, recreated bool, err error) {
	if running, err := containerRunning(ctx, id, rs); !running {
		return false, false, err
	}
	retries := 5
	t := time.NewTimer(logForceCheckPeriod)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return false, false, ctx.Err()
		case e := <-w.Events:
			switch {
			case e.Op == fsnotify.Create:
				return true, filepath.Base(e.Name) == name, nil
			case e.Op == fsnotify.Write, e.Op == fsnotify.Rename, e.Op == fsnotify.Remove, e.Op == fsnotify.Chmod:
				return true, false, nil
			}
		case err := <-w.Errors:
			if retries == 0 {
				return false, false, fmt.Errorf("cri: logs: watch: %w", err)
			}
			retries--
		case <-t.C:
			return true, false, nil
		}
	}
}

// containerRunning asks rs; an unavailable runtime counts as running, since
// containers outlive their runtime's API (as in the kubelet).
func containerRunning(ctx context.Context, id string, rs StatusSource) (bool, error) {
	if rs == nil {
		return false, errors.New("cri: logs: following needs a StatusSource")
	}
	resp, err := rs.ContainerStatus(ctx, id, false)
	if err != nil {
		if Code(err) == codes.Unavailable {
			return true, nil
		}
		return false, err
	}
	st := resp.GetStatus()
	if st == nil {
		return false, fmt.Errorf("cri: ContainerStatus %s: %w", id, errStatusNil)
	}
	return st.State == runtimeapi.ContainerState_CONTAINER_RUNNING, nil
}

// tailStart returns the offset of the n-th line from the end (n < 0: the
// start). An incomplete last line does not count.
func tailStart(f io.ReadSeeker, n int64) (int64, error) {
	if n < 0 {
		return 0, nil
	}
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return 0, err
	}
	const block = 1024
	var left, cnt int64
	buf := make([]byte, block)
	for right := size; right > 0 && cnt <= n; right -= block {
		left = right - block
		if left < 0 {
			left, buf = 0, buf[:right]
		}
		if _, err := f.Seek(left, io.SeekStart); err != nil {
			return 0, err
		}
		if _, err := io.ReadFull(f, buf); err != nil {
			return 0, err
		}
		cnt += int64(bytes.Count(buf, []byte{'\n'}))
	}
	for ; cnt > n; cnt-- {
		i := bytes.IndexByte(buf, '\n') + 1
		buf = buf[i:]
		left += int64(i)
	}
	return left, nil
}

// logWriter applies Since, Timestamps and LimitBytes.
type logWriter struct {
	stdout, stderr io.Writer
	opts           *LogOptions
	remain         int64
	prefix         []byte
}

func newLogWriter(stdout, stderr io.Writer, opts *LogOptions) *logWriter {
	w := &logWriter{stdout: stdout, stderr: stderr, opts: opts, remain: math.MaxInt64}
	if opts.LimitBytes != nil {
		w.remain = *opts.LimitBytes
	}
	return w
}

func (w *logWriter) write(msg *LogLine, addPrefix bool) error {
	if msg.Time.Before(w.opts.Since) {
		return nil
	}
	line := msg.Log
	if w.opts.Timestamps && addPrefix {
		w.prefix = msg.Time.AppendFormat(w.prefix[:0], LogTimeFormat)
		w.prefix = append(w.prefix, ' ')
		line = append(w.prefix, line...)
		w.prefix = line[:0]
	}
	if int64(len(line)) > w.remain {
		line = line[:w.remain]
	}
	var out io.Writer
	switch msg.Stream {
	case runtimeapi.Stdout:
		out = w.stdout
	case runtimeapi.Stderr:
		out = w.stderr
	default:
		return fmt.Errorf("cri: logs: unexpected stream type %q", msg.Stream)
	}
	if out == nil {
		return nil // stream not requested: neither written nor counted
	}
	n, err := out.Write(line)
	w.remain -= int64(n)
	if err != nil {
		return err
	}
	if n < len(line) {
		return errShortWrite
	}
	if w.remain <= 0 {
		return errMaximumWrite
	}
	return nil
}
