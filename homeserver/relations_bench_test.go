package homeserver_test

import (
	"fmt"
	"testing"

	"github.com/parley-im/parley/homeserver/hstest"
)

// BenchmarkMessagesBundles measures /messages?limit=50 on SQLite over a room
// whose 50 messages each have a thread reply and an edit ("related"), next
// to a room without relations ("plain"): the price of bundling.
func BenchmarkMessagesBundles(b *testing.B) {
	srv := hstest.Start(b, hstest.Options{})
	alice := srv.Register(b, "alice")
	plain := alice.CreateRoom(map[string]any{})
	related := alice.CreateRoom(map[string]any{})
	for i := 0; i < 150; i++ {
		alice.Send(plain, fmt.Sprint("p", i), "message")
	}
	for i := 0; i < 50; i++ {
		id := alice.Send(related, fmt.Sprint("m", i), "message")
		threadReply(alice, related, id, "reply")
		edit(alice, related, id, "edited")
	}
	for _, tc := range []struct{ name, room string }{{"plain", plain}, {"related", related}} {
		b.Run(tc.name, func(b *testing.B) {
			path := "/_matrix/client/v3/rooms/" + hstest.Esc(tc.room) + "/messages?dir=b&limit=50"
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				alice.MustDo("GET", path, nil)
			}
		})
	}
}
