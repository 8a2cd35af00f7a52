package main

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// progress draws one bar at a time on a terminal, redrawn in place. When
// disabled (stderr is a pipe or a file and --progress was not given) every
// method is a no-op, so that scripts get clean output.
type progress struct {
	w       io.Writer // nil when disabled
	mu      sync.Mutex
	started time.Time // guarded by mu; start of the current bar
}

func newProgress(w io.Writer, enabled bool) *progress {
	if !enabled {
		return &progress{}
	}
	return &progress{w: w}
}

// track shows label with done()/total until stop is called; status, when
// not nil, adds live figures after the bar. stop draws the final state and
// ends the line.
func (p *progress) track(label string, total int64, done func() int64, status func() string) (stop func()) {
	if p.w == nil {
		return func() {}
	}
	p.mu.Lock()
	p.started = time.Now()
	p.mu.Unlock()
	quit := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			p.draw(label, total, done(), status)
			select {
			case <-quit:
				p.draw(label, total, done(), status)
				fmt.Fprintln(p.w)
				return
			case <-tick.C:
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			close(quit)
			<-finished
		})
	}
}

func (p *progress) draw(label string, total, done int64, status func() string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, "\r\033[K%s", progressLine(label, total, done, time.Since(p.started), status))
}

// progressLine renders "label [#####.....]  45%  450/1000  3.2s  status".
func progressLine(label string, total, done int64, elapsed time.Duration, status func() string) string {
	const width = 30
	frac := 0.0
	if total > 0 {
		frac = min(max(float64(done)/float64(total), 0), 1)
	}
	filled := int(frac * width)
	bar := strings.Repeat("#", filled) + strings.Repeat(".", width-filled)
	line := fmt.Sprintf("%-14s [%s] %3.0f%%  %d/%d  %.1fs", label, bar, frac*100, done, total, elapsed.Seconds())
	if status != nil {
		line += "  " + status()
	}
	return line
}
