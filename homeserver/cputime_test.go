package homeserver_test

import (
	"syscall"
	"testing"
	"time"
)

// cpuMeter reports the process's CPU time (user + system) per benchmark
// iteration. On a machine shared with other work the wall-clock figures of
// the send benchmarks swing widely; the CPU time the process spends per send
// moves much less, so it is the figure to compare between two versions.
type cpuMeter struct{ start time.Duration }

// startCPU starts measuring; call it right after b.ResetTimer.
func startCPU() cpuMeter { return cpuMeter{start: processCPU()} }

// report adds the "cpu-µs/op" metric to b.
func (m cpuMeter) report(b *testing.B) {
	if b.N > 0 {
		b.ReportMetric(float64(processCPU()-m.start)/float64(time.Microsecond)/float64(b.N), "cpu-µs/op")
	}
}

// processCPU is the CPU time this process has used, 0 where getrusage fails.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
