//go:build unix

package main

import (
	"fmt"
	"syscall"
)

// filesBesidesPolls is what the tool needs beyond one descriptor per
// connection: stdio, the Go runtime's poller, connections being replaced.
const filesBesidesPolls = 64

// ensureFileLimit raises the soft RLIMIT_NOFILE to the hard limit and
// fails clearly if conns connections still would not fit: otherwise
// thousands of held polls end in a confusing "too many open files" midway.
func ensureFileLimit(conns int) error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("read RLIMIT_NOFILE: %w", err)
	}
	if lim.Cur < lim.Max {
		raised := lim
		raised.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised); err == nil {
			lim = raised
		}
	}
	need := uint64(conns) + filesBesidesPolls
	if lim.Cur < need {
		return fmt.Errorf("%d connections need about %d open files, but RLIMIT_NOFILE is %d (hard %d): "+
			"raise it (ulimit -n) or use fewer --conns/--users/--members", conns, need, lim.Cur, lim.Max)
	}
	return nil
}
