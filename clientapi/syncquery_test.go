package clientapi

import (
	"net/url"
	"strings"
	"testing"
)

// FuzzParseSyncQuery: parseSyncQuery reads the same values as
// url.ParseQuery followed by Values.Get, whatever the query.
func FuzzParseSyncQuery(f *testing.F) {
	for _, s := range []string{
		"", "since=s1_2&timeout=30000", "filter=%7B%22room%22%3A%7B%7D%7D&full_state=true",
		"since=&since=s5", "since=%zz&since=s5", "a;b=c&since=s1", "sinc%65=s9", "set_presence=online&set_presence=offline",
		"timeout=1+2", "&&=&since", "filter=0&filter=1;x",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		if strings.Count(raw, "&") > 1000 {
			t.Skip() // url.ParseQuery's parameter cap, not this parser's
		}
		want, _ := url.ParseQuery(raw)
		got := parseSyncQuery(raw)
		for key, g := range map[string]string{"since": got.since, "timeout": got.timeout, "filter": got.filter,
			"full_state": got.fullState, "set_presence": got.setPresence} {
			if w := want.Get(key); g != w {
				t.Errorf("parseSyncQuery(%q).%s = %q, want %q", raw, key, g, w)
			}
		}
	})
}
