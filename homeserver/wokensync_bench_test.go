package homeserver_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strconv"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/parley-im/parley/homeserver/hstest"
)

// benchPollFilter is what cmd/parley-bench's long-polls ask for.
const benchPollFilter = `{"room":{"timeline":{"limit":200},"state":{"lazy_load_members":true},` +
	`"ephemeral":{"not_types":["*"]},"account_data":{"not_types":["*"]}},` +
	`"presence":{"not_types":["*"]},"account_data":{"not_types":["*"]}}`

// BenchmarkWokenMemberSync measures what one woken member costs the server:
// one op is one member's incremental /sync after a message, served by the
// handler directly (no network, no client parsing), so B/op and allocs/op
// are the server's own per woken member (plus the test's request and
// recorder, about 12 allocations). A message is sent (untimed) each time
// every member has synced. queries/op is the database queries per woken
// member. Members come from PARLEY_BENCH_WOKEN_MEMBERS (default 50).
// filter_id names a stored filter as Element and parley-bench do;
// inline_filter sends the filter's JSON in every request.
func BenchmarkWokenMemberSync(b *testing.B) {
	for _, stored := range []bool{true, false} {
		name := "inline_filter"
		if stored {
			name = "filter_id"
		}
		b.Run(name, func(b *testing.B) { benchWokenMemberSync(b, stored) })
	}
}

func benchWokenMemberSync(b *testing.B, storedFilter bool) {
	members := 50
	if v, err := strconv.Atoi(os.Getenv("PARLEY_BENCH_WOKEN_MEMBERS")); err == nil && v > 0 {
		members = v
	}
	srv := hstest.Start(b, hstest.Options{})
	owner := srv.Register(b, "owner")
	room := owner.CreateRoom(map[string]any{"preset": "public_chat"})
	clients := make([]*hstest.Client, members)
	since := make([]string, members)
	filters := make([]string, members)
	for i := range clients {
		clients[i] = srv.Register(b, fmt.Sprint("m", i))
		clients[i].Join(room)
		filters[i] = url.QueryEscape(benchPollFilter)
		if storedFilter {
			res := clients[i].MustDo("POST", "/_matrix/client/v3/user/"+url.PathEscape(clients[i].UserID)+"/filter",
				json.RawMessage(benchPollFilter))
			filters[i] = url.QueryEscape(res.Get("filter_id").String())
		}
	}
	h := srv.Srv.Handler()
	sync := func(i int) []byte {
		q := "/_matrix/client/v3/sync?timeout=0&set_presence=offline&filter=" + filters[i]
		if since[i] != "" {
			q += "&since=" + url.QueryEscape(since[i])
		}
		req := httptest.NewRequest("GET", q, nil)
		req.Header.Set("Authorization", "Bearer "+clients[i].Token)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatalf("sync = %d %s", w.Code, w.Body.String())
		}
		body := w.Body.Bytes()
		since[i] = gjson.GetBytes(body, "next_batch").String()
		return body
	}
	for i := range clients {
		sync(i)
	}
	// A first message warms what any first incremental sync warms.
	owner.Send(room, "warm", "warm")
	for i := range clients {
		sync(i)
	}
	var queries int64
	b.ReportAllocs()
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		i := n % members
		if i == 0 {
			b.StopTimer()
			owner.Send(room, fmt.Sprint("t", n), "news")
			b.StartTimer()
		}
		q0 := srv.Srv.Store.Queries()
		res := sync(i)
		queries += srv.Srv.Store.Queries() - q0
		if !bytes.Contains(res, []byte(`"body":"news"`)) {
			b.Fatalf("member %d's sync lacks the message", i)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(queries)/float64(b.N), "queries/op")
	hits, misses := srv.Srv.Notifier.DeltaStats()
	b.ReportMetric(float64(hits)/float64(b.N), "deltahits/op")
	b.ReportMetric(float64(misses)/float64(b.N), "deltamisses/op")
}
