package observe

import (
	"net/url"
	"strconv"
	"testing"
)

// FuzzLongPollParams checks longPollParams against url.ParseQuery, which
// Wrap used before.
func FuzzLongPollParams(f *testing.F) {
	for _, s := range []string{"", "timeout=30000&since=s1_2", "since=&timeout=5", "timeout=1;x&timeout=2",
		"since=%zz&since=a", "time%6Fut=7&since=b%20c", "a=b&&timeout=-1", "timeout=1&timeout=2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, _ := url.ParseQuery(raw)
		wantMS, err := strconv.ParseInt(q.Get("timeout"), 10, 64)
		wantOK, wantSince := err == nil, q.Get("since")
		ms, ok, since := longPollParams(raw)
		if ok != wantOK || (ok && ms != wantMS) || since != wantSince {
			t.Errorf("longPollParams(%q) = %d, %v, %q; want %d, %v, %q", raw, ms, ok, since, wantMS, wantOK, wantSince)
		}
	})
}
