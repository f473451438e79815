package cri

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// The CRI container log format, written by the runtime to the LogPath of a
// container and read back by the kubelet (k8s.io/cri-client/pkg/logs):
//
//	2016-10-06T00:17:09.669794202Z stdout P first half of a long line
//	2016-10-06T00:17:09.669794203Z stdout F second half
//	2016-10-06T00:17:09.669794204Z stderr F a whole line
//
// One record a line: an RFC 3339 timestamp, the stream, a tag ("F" for a
// full line, "P" for a partial one the runtime had to split; more tags may
// follow after ':'), and the content.
const (
	// LogTimeFormat is how records are written: fixed-width nanoseconds.
	LogTimeFormat = "2006-01-02T15:04:05.000000000Z07:00"
	// logTimeFormatIn parses any RFC 3339 precision (time.RFC3339Nano).
	logTimeFormatIn = time.RFC3339Nano
)

// LogLine is one parsed record of a container log.
type LogLine struct {
	Time   time.Time
	Stream runtimeapi.LogStreamType // runtimeapi.Stdout or runtimeapi.Stderr
	// Partial is true for a "P" record: the content continues in the next
	// record of the stream.
	Partial bool
	// Log is the content as the kubelet writes it out: a full record keeps
	// its newline, a partial one loses it. It aliases the parsed input.
	Log []byte
}

// ParseLogLine parses one record of the CRI log format, with or without its
// trailing newline, exactly as the kubelet does (parseCRILog in
// k8s.io/cri-client/pkg/logs/logs.go): the timestamp must parse as RFC 3339,
// the stream must be stdout or stderr, and the tag must be followed by a
// space. Malformed input returns an error, never a panic.
func ParseLogLine(line []byte) (LogLine, error) {
	var l LogLine
	err := parseCRILog(line, &l)
	return l, err
}

func parseCRILog(log []byte, l *LogLine) error {
	i := bytes.IndexByte(log, ' ')
	if i < 0 {
		return errors.New("cri: log line: timestamp is not found")
	}
	t, err := time.Parse(logTimeFormatIn, string(log[:i]))
	if err != nil {
		return fmt.Errorf("cri: log line: unexpected timestamp format %q: %w", logTimeFormatIn, err)
	}
	log = log[i+1:]
	i = bytes.IndexByte(log, ' ')
	if i < 0 {
		return errors.New("cri: log line: stream type is not found")
	}
	stream := runtimeapi.LogStreamType(log[:i])
	if stream != runtimeapi.Stdout && stream != runtimeapi.Stderr {
		return fmt.Errorf("cri: log line: unexpected stream type %q", stream)
	}
	log = log[i+1:]
	i = bytes.IndexByte(log, ' ')
	if i < 0 {
		return errors.New("cri: log line: log tag is not found")
	}
	// Only the first tag counts; later ones are for forward compatibility.
	tag := log[:i]
	if j := bytes.IndexByte(tag, runtimeapi.LogTagDelimiter[0]); j >= 0 {
		tag = tag[:j]
	}
	partial := string(tag) == string(runtimeapi.LogTagPartial)
	if partial && log[len(log)-1] == '\n' {
		log = log[:len(log)-1]
	}
	l.Time, l.Stream, l.Partial, l.Log = t, stream, partial, log[i+1:]
	return nil
}

// AppendLogLine appends one record in the CRI log format to dst: a full
// record ("F") unless partial, with a newline at the end. content must not
// contain a newline; a runtime splits lines before writing them.
func AppendLogLine(dst []byte, t time.Time, stream runtimeapi.LogStreamType, partial bool, content []byte) []byte {
	dst = t.AppendFormat(dst, LogTimeFormat)
	dst = append(dst, ' ')
	dst = append(dst, stream...)
	if partial {
		dst = append(dst, " P "...)
	} else {
		dst = append(dst, " F "...)
	}
	dst = append(dst, content...)
	return append(dst, '\n')
}

// dockerJSONLog is a record of Docker's json-file log driver, which the
// kubelet still reads (parseDockerJSONLog).
type dockerJSONLog struct {
	Log     string    `json:"log,omitempty"`
	Stream  string    `json:"stream,omitempty"`
	Created time.Time `json:"time"`
}

func parseDockerJSONLog(log []byte, l *LogLine) error {
	var d dockerJSONLog
	if err := json.Unmarshal(log, &d); err != nil {
		return fmt.Errorf("cri: log line: not Docker JSON: %w", err)
	}
	l.Time, l.Stream, l.Partial, l.Log = d.Created, runtimeapi.LogStreamType(d.Stream), false, []byte(d.Log)
	return nil
}

// logParser picks the format from the first line, as the kubelet does: CRI
// first, then Docker JSON.
func logParser(first []byte) (func([]byte, *LogLine) error, error) {
	var l LogLine
	if parseCRILog(first, &l) == nil {
		return parseCRILog, nil
	}
	if parseDockerJSONLog(first, &l) == nil {
		return parseDockerJSONLog, nil
	}
	return nil, fmt.Errorf("cri: unsupported log format: %q", first)
}
