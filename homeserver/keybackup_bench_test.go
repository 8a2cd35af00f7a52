package homeserver_test

import (
	"fmt"
	"os"
	"strconv"
	"testing"

	"github.com/parley-im/parley/homeserver/hstest"
)

// BenchmarkKeyBackupUpload: one PUT /room_keys/keys of a batch of sessions
// (Element uploads 200 at a time), half of them new and half replacing
// stored ones, on SQLite (PARLEY_BENCH_PG=1: PostgreSQL). The upload holds
// the store's write connection, which on SQLite the room writer shares, so
// its time is time sends wait. PARLEY_BENCH_BACKUP_BATCH sets the batch.
func BenchmarkKeyBackupUpload(b *testing.B) {
	batch := 200
	if v, err := strconv.Atoi(os.Getenv("PARLEY_BENCH_BACKUP_BATCH")); err == nil && v > 0 {
		batch = v
	}
	st := hstest.Store{Name: "sqlite"}
	if os.Getenv("PARLEY_BENCH_PG") != "" {
		for _, s := range hstest.Stores(b) {
			if s.Name == "postgres" {
				st = s
			}
		}
	}
	srv := hstest.Start(b, hstest.Options{Store: st})
	alice := srv.Register(b, "alice")
	v := alice.MustDo("POST", "/_matrix/client/v3/room_keys/version", map[string]any{"algorithm": backupAlg, "auth_data": map[string]any{}}).Get("version").String()
	body := func(n int) map[string]any {
		sessions := map[string]any{}
		for i := range batch {
			// Half the batch repeats the previous one's IDs with a lower
			// index (a replacement), half is new.
			id := fmt.Sprintf("s%d-%d", n, i)
			if i%2 == 0 && n > 0 {
				id = fmt.Sprintf("s%d-%d", n-1, i)
			}
			sessions[id] = backupKey(100-n%100, 0, false, id)
		}
		return map[string]any{"rooms": map[string]any{"!room:localhost": map[string]any{"sessions": sessions}}}
	}
	bodies := make([]map[string]any, b.N)
	for i := range bodies {
		bodies[i] = body(i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		alice.MustDo("PUT", "/_matrix/client/v3/room_keys/keys?version="+v, bodies[i])
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/1000, "ms/upload")
}
