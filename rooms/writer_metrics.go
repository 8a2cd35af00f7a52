package rooms

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// writerStats are the room writer's histograms for the operator metrics
// (issue 16). Histograms are safe for concurrent use and Observe does not
// allocate, so the write path pays a few atomic adds per batch and job.
// Static after New (the histograms themselves are concurrent-safe).
type writerStats struct {
	batchJobs  prometheus.Histogram // jobs per committed transaction
	batchTime  prometheus.Histogram // one transaction, from begin to commit
	commitTime prometheus.Histogram // the commit alone
	jobTime    prometheus.Histogram // a job, from submit to its answer (queue wait included)
}

func newWriterStats() writerStats {
	h := func(name, help string, buckets []float64) prometheus.Histogram {
		return prometheus.NewHistogram(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets})
	}
	lat := []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
	return writerStats{
		batchJobs:  h("parley_writer_batch_jobs", "Writes grouped into one writer transaction.", []float64{1, 2, 4, 8, 16, 32, 64, 128, 256}),
		batchTime:  h("parley_writer_batch_seconds", "Time of one writer transaction, from begin to commit.", lat),
		commitTime: h("parley_writer_commit_seconds", "Time of a writer transaction's commit alone.", lat),
		jobTime:    h("parley_writer_job_seconds", "Time of one write, from submission to its answer, queue wait included.", lat),
	}
}

func (w *writerStats) collectors() []prometheus.Collector {
	return []prometheus.Collector{w.batchJobs, w.batchTime, w.commitTime, w.jobTime}
}

// Running reports whether the writer goroutine still runs (the readiness
// check): false after Shutdown, or if it ever stopped.
func (s *Service) Running() bool {
	select {
	case <-s.done:
		return false
	default:
		return true
	}
}

func sinceSeconds(t time.Time) float64 { return time.Since(t).Seconds() }
