package desks

import (
	"testing"
	"time"

	"github.com/parley-im/parley/storage"
)

func TestReplyFigures(t *testing.T) {
	var st stats
	// Loaded newest first, as the store returns them: 1..10 seconds.
	var recent []int64
	for s := 10; s >= 1; s-- {
		recent = append(recent, int64(s)*1000)
	}
	st.load(storage.DeskTotals{Opened: 12, Replied: 10, ReplyMsSum: 55_000}, recent)
	d := &desk{stats: st, open: map[string]*consultation{}}
	m := d.metricsLocked(time.Now())
	if m.FirstReply.P50 != 5 || m.FirstReply.P90 != 9 || m.FirstReply.Count != 10 || m.FirstReply.SumS != 55 {
		t.Errorf("first reply = %+v, want p50 5, p90 9, count 10, sum 55", m.FirstReply)
	}
	// The ring keeps the newest sampleSize: after that many 100 s replies,
	// the loaded ones are gone.
	for range sampleSize {
		d.stats.reply(100 * time.Second)
	}
	if m := d.metricsLocked(time.Now()); m.FirstReply.P50 != 100 || m.FirstReply.Sample != sampleSize || m.FirstReply.Count != 10+sampleSize {
		t.Errorf("after %d more = %+v, want p50 100 over a full sample", sampleSize, m.FirstReply)
	}
}

func TestRatings(t *testing.T) {
	d := &desk{open: map[string]*consultation{}}
	for _, r := range []int{5, 4, 5, 0, 7} { // 0 is no rating; 7 never reaches here
		d.stats.rate(r)
	}
	m := d.metricsLocked(time.Now())
	if m.Ratings.Count != 3 || m.Ratings.ByValue["5"] != 2 || m.Ratings.ByValue["4"] != 1 || m.Ratings.Average < 4.66 || m.Ratings.Average > 4.67 {
		t.Errorf("ratings = %+v, want 3 ratings averaging 4.67", m.Ratings)
	}
}
