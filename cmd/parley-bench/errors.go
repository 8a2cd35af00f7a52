package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"strings"
	"sync"
	"syscall"
)

// maxErrorSamples bounds how many error messages a report quotes: under
// load the same failure repeats thousands of times.
const maxErrorSamples = 5

// errorLog counts the errors of a run by kind and keeps the first few
// messages, so a report can say what went wrong without a log file.
type errorLog struct {
	mu      sync.Mutex
	byKind  map[string]int64 // guarded by mu
	samples []string         // guarded by mu
}

func newErrorLog() *errorLog { return &errorLog{byKind: map[string]int64{}} }

func (l *errorLog) add(err error) {
	kind := errorKind(err)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.byKind[kind] == 0 && len(l.samples) < maxErrorSamples {
		l.samples = append(l.samples, err.Error())
	}
	l.byKind[kind]++
}

func (l *errorLog) total() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	var n int64
	for _, v := range l.byKind {
		n += v
	}
	return n
}

func (l *errorLog) snapshot() (map[string]int64, []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return maps.Clone(l.byKind), append([]string(nil), l.samples...)
}

// errorKind names an error for counting: http_<status>[_<errcode>],
// timeout, refused, reset, canceled or neterr.
func errorKind(err error) string {
	var se *statusError
	var ne net.Error
	switch {
	case errors.As(err, &se) && se.Errcode != "":
		return fmt.Sprintf("http_%d_%s", se.Status, se.Errcode)
	case errors.As(err, &se):
		return fmt.Sprintf("http_%d", se.Status)
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.Is(err, syscall.EMFILE), errors.Is(err, syscall.ENFILE):
		return "too_many_open_files"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.EPIPE), strings.Contains(err.Error(), "server closed idle connection"):
		return "reset"
	}
	return "other"
}
