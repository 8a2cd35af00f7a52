//go:build !unix

package main

// ensureFileLimit has nothing to raise where there is no RLIMIT_NOFILE.
func ensureFileLimit(conns int) error { return nil }
