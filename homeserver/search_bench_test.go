package homeserver_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/parley-im/parley/homeserver/hstest"
	"github.com/parley-im/parley/storage"
)

// benchEnv reads a positive integer from the environment, or def.
func benchEnv(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

// BenchmarkSearch measures POST /search (order_by recent, 10 results, as
// Element asks) for a user in PARLEY_BENCH_SEARCH_JOINED rooms of
// PARLEY_BENCH_SEARCH_ROOMS, over PARLEY_BENCH_SEARCH_MSGS messages spread
// evenly over the rooms, half Chinese/Japanese/Korean text and half Latin
// words. The user's rooms are made through the API; the messages are
// written straight into the store (WriteTx.InsertEvent, which indexes them
// like the writer does), in big transactions, after every API write, so
// no position can collide. Terms alternate: a CJK character pair, a single
// CJK character, a Latin word. The defaults are small, for CI's
// -benchtime=100x; the full size is MSGS=1000000 ROOMS=1000
// JOINED=100. p50_ms and p99_ms are the latency percentiles of the run.
// PARLEY_BENCH_SEARCH_PG=1 runs on PostgreSQL (PARLEY_TEST_DATABASE_URL);
// PARLEY_BENCH_SEARCH_PG_KEEP=<database URL> on a PostgreSQL database that
// is kept, as PARLEY_BENCH_SEARCH_DATADIR keeps a SQLite one (set both).
func BenchmarkSearch(b *testing.B) {
	msgs := benchEnv("PARLEY_BENCH_SEARCH_MSGS", 5000)
	nRooms := benchEnv("PARLEY_BENCH_SEARCH_ROOMS", 100)
	joined := min(benchEnv("PARLEY_BENCH_SEARCH_JOINED", 10), nRooms)
	st := hstest.Store{Name: "sqlite"}
	if url := os.Getenv("PARLEY_BENCH_SEARCH_PG_KEEP"); url != "" {
		// A PostgreSQL database that is kept, with PARLEY_BENCH_SEARCH_DATADIR
		// for the server's keys: filled when empty, measured when filled.
		st = hstest.Store{Name: "postgres", URL: url}
	} else if os.Getenv("PARLEY_BENCH_SEARCH_PG") != "" {
		st = hstest.Stores(b)[len(hstest.Stores(b))-1]
		if st.Name != "postgres" {
			b.Skip("PARLEY_BENCH_SEARCH_PG set but no PostgreSQL")
		}
	}
	// PARLEY_BENCH_SEARCH_DATADIR names a SQLite data dir that is kept: an
	// empty one is filled, and a filled one is measured without refilling
	// (the fill of 1,000,000 messages takes many minutes, and can run while
	// the machine is busy; the measurement wants it quiet).
	dataDir := os.Getenv("PARLEY_BENCH_SEARCH_DATADIR")
	srv := hstest.Start(b, hstest.Options{Store: st, DataDir: dataDir})
	ctx := context.Background()
	e0, err0 := srv.Srv.Store.GetEvent(ctx, "$bench0")
	e1, err1 := srv.Srv.Store.GetEvent(ctx, "$bench1")
	if dataDir != "" && err0 == nil && err1 == nil {
		body0 := []rune(gjson.GetBytes(e0.Client, "content.body").String())
		word := strings.Fields(gjson.GetBytes(e1.Client, "content.body").String())[2]
		measureSearch(b, srv.Login(b, "alice"), []string{string(body0[3:5]), string(rune(0x4E00 + 42)), word})
		return
	}
	alice := srv.Register(b, "alice")
	var rooms []string
	for range joined {
		rooms = append(rooms, alice.CreateRoom(map[string]any{"preset": "private_chat"}))
	}
	store := srv.Srv.Store
	start := time.Now()
	tx, err := store.BeginWrite(ctx)
	if err != nil {
		b.Fatal(err)
	}
	for i := joined; i < nRooms; i++ {
		id := fmt.Sprintf("!bench%d:localhost", i)
		if err := tx.InsertRoom(ctx, storage.Room{RoomID: id, Version: "11", Creator: "@other:localhost", CreatedTS: 1}); err != nil {
			b.Fatal(err)
		}
		rooms = append(rooms, id)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	// A vocabulary of 5,000 Latin words and the 600 Han characters from
	// U+4E00, plus Hangul syllables for some CJK messages.
	words := make([]string, 5000)
	for i := range words {
		var w []byte
		for range 3 + rng.IntN(6) {
			w = append(w, byte('a'+rng.IntN(26)))
		}
		words[i] = string(w)
	}
	cjk := func() string {
		var sb strings.Builder
		for range 12 {
			if rng.IntN(8) == 0 {
				sb.WriteRune(rune(0xAC00 + rng.IntN(300))) // Hangul
			} else {
				sb.WriteRune(rune(0x4E00 + rng.IntN(600)))
			}
		}
		return sb.String()
	}
	latin := func() string {
		ws := make([]string, 8)
		for i := range ws {
			ws[i] = words[rng.IntN(len(words))]
		}
		return strings.Join(ws, " ")
	}
	pos := srv.Srv.Notifier.Pos() + 1
	// The writer indexes behind its own sends (rooms/searchindex.go); these
	// rows bypass it, so each transaction indexes its own, as a pass would.
	indexed := pos - 1
	index := func() {
		if _, err := tx.IndexSearchAfter(ctx, indexed, pos-1, 1<<30); err != nil {
			b.Fatal(err)
		}
		indexed = pos - 1
	}
	var pair, word string // taken from a message the user can see
	for i := range msgs {
		if i > 0 && i%50000 == 0 {
			b.Logf("%d messages written after %v", i, time.Since(start).Round(time.Second))
			index()
			if err := tx.Commit(); err != nil {
				b.Fatal(err)
			}
			if tx, err = store.BeginWrite(ctx); err != nil {
				b.Fatal(err)
			}
		}
		body := latin()
		if i%2 == 0 {
			body = cjk()
		}
		room := rooms[i%len(rooms)]
		if i == 0 {
			pair = string([]rune(body)[3:5])
		} else if i == 1 {
			word = strings.Fields(body)[2]
		}
		id := fmt.Sprintf("$bench%d", i)
		client, _ := json.Marshal(map[string]any{"content": map[string]any{"msgtype": "m.text", "body": body}, "event_id": id,
			"origin_server_ts": pos, "room_id": room, "sender": "@alice:localhost", "type": "m.room.message"})
		e := &storage.Event{Pos: pos, EventID: id, RoomID: room, Type: "m.room.message", Sender: "@alice:localhost", Depth: pos, OriginTS: pos, Client: client}
		if err := tx.InsertEvent(ctx, e, []byte("{}")); err != nil {
			b.Fatal(err)
		}
		pos++
	}
	index()
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
	b.Logf("%s: %d messages in %d rooms (user in %d) written and indexed in %v", st.Name, msgs, nRooms, joined, time.Since(start).Round(time.Millisecond))
	measureSearch(b, alice, []string{
		pair,                      // a character pair: rare, as real words are
		string(rune(0x4E00 + 42)), // one character: common
		word,                      // a Latin word
	})
}

// measureSearch runs the timed searches of BenchmarkSearch, the terms in
// turn, and reports the latency percentiles.
func measureSearch(b *testing.B, alice *hstest.Client, terms []string) {
	var durations []time.Duration
	found := 0
	b.ReportAllocs()
	// b.Loop runs the benchmark function once, so the store is filled once.
	for i := 0; b.Loop(); i++ {
		t0 := time.Now()
		res := alice.MustDo("POST", searchPath, searchBody(terms[i%len(terms)], map[string]any{"order_by": "recent", "filter": map[string]any{"limit": 10}}))
		durations = append(durations, time.Since(t0))
		found += len(res.Get("search_categories.room_events.results").Array())
	}
	if found == 0 && len(durations) >= len(terms) {
		b.Fatal("no search found anything")
	}
	slices.Sort(durations)
	b.ReportMetric(float64(durations[len(durations)/2].Microseconds())/1000, "p50_ms")
	b.ReportMetric(float64(durations[(len(durations)*99)/100].Microseconds())/1000, "p99_ms")
}
