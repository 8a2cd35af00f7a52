package main

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that a run leaves no goroutine behind: pollers, senders
// and the progress bar all have an end.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
