package synapse_test

import (
	"fmt"
	"net/url"
	"os"
	"slices"
	"strconv"
	"testing"

	"github.com/parley-im/parley/homeserver/hstest"
)

// backfillEvents is how many messages a late joiner reads through
// backfill: issue 11's 500, or PARLEY_SYNAPSE_BACKFILL_EVENTS.
func backfillEvents(t *testing.T) int {
	if v := os.Getenv("PARLEY_SYNAPSE_BACKFILL_EVENTS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("PARLEY_SYNAPSE_BACKFILL_EVENTS=%q: want a positive number", v)
		}
		return n
	}
	return 500
}

// TestSynapseBackfill: a user of the other server joins a room after 500
// messages and reads them all, in order, through /messages, which its
// server fills by federation backfill from the room's first server.
func TestSynapseBackfill(t *testing.T) {
	syn := needSynapse(t)
	n := backfillEvents(t)
	for _, st := range []hstest.Store{hstestSQLite} { // 500 sends: once is enough
		t.Run(st.Name, func(t *testing.T) {
			p := startParley(t, st)
			alice := p.Register(t, "alice")
			bob := syn.Register(t, uniq("bob"))
			for _, dir := range []struct {
				name       string
				home, late *hstest.Client
				homeServer string
				skip       string
			}{
				{"Synapse reads a Parley room", alice, bob, p.FedName, ""},
				{"Parley reads a Synapse room", bob, alice, syn.Name, ""},
			} {
				t.Run(dir.name, func(t *testing.T) {
					if dir.skip != "" {
						t.Skip(dir.skip)
					}
					home, late := dir.home.WithT(t), dir.late.WithT(t)
					room := home.CreateRoom(map[string]any{"preset": "public_chat"})
					want := make([]string, n)
					for i := range want {
						want[i] = fmt.Sprintf("m-%04d", i)
						home.Send(room, want[i], want[i])
					}
					if st, res := joinVia(late, room, dir.homeServer); st != 200 {
						t.Fatalf("%s joins %s = %d %s, want 200", late.UserID, room, st, res.Raw)
					}
					got := history(t, late, room)
					if !slices.Equal(got, want) {
						t.Errorf("%s reads %d messages (first %q, last %q), want %d from m-0000 to %s in order",
							late.UserID, len(got), first(got), last(got), n, want[n-1])
					}
				})
			}
		})
	}
}

// history pages /messages backwards from the end of c's view of the room
// and returns the m.room.message bodies, oldest first.
func history(t *testing.T, c *hstest.Client, room string) []string {
	t.Helper()
	var out []string
	from := ""
	for page := 0; page < 1000; page++ {
		q := "/_matrix/client/v3/rooms/" + hstest.Esc(room) + "/messages?dir=b&limit=100"
		if from != "" {
			q += "&from=" + url.QueryEscape(from)
		}
		res := c.MustDo("GET", q, nil)
		for _, ev := range res.Get("chunk").Array() {
			if ev.Get("type").String() == "m.room.message" {
				out = append(out, ev.Get("content.body").String())
			}
		}
		end := res.Get("end")
		if !end.Exists() || end.String() == from {
			break
		}
		from = end.String()
	}
	slices.Reverse(out)
	return out
}

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

func last(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[len(s)-1]
}
