package inbound_test

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/parley-im/parley/rooms/inbound"
	"github.com/parley-im/parley/rooms/inbound/remotetest"
	"github.com/parley-im/parley/rooms/pdu"
	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"
)

// freshStore is a new store and pipeline holding fx's setup events only.
func freshStore(t *testing.T, fx *fixture) (*remotetest.Store, *inbound.Pipeline) {
	t.Helper()
	st := remotetest.NewStore(fx.room)
	p := inbound.New(st, remotetestKeys(), st)
	for _, name := range []string{"create", "alice", "pl", "jr", "mod", "bob"} {
		remotetest.Feed(t, p, inbound.Accepted, fx.ev[name])
	}
	return st, p
}

// runBatch feeds evs through one Batch and returns each event's outcome:
// its kind, or the error's text.
func runBatch(t *testing.T, p *inbound.Pipeline, evs []*pdu.Event) map[string]string {
	t.Helper()
	got := map[string]string{}
	b := p.NewBatch()
	for _, ev := range evs {
		b.Add(context.Background(), ev.Raw, func(v *inbound.Verdict, err error) {
			record(got, ev.ID, v, err)
		})
	}
	b.Flush(context.Background())
	return got
}

// record keeps id's outcome; for an event sent twice, the answer that is
// not "already held" (the Batch answers the copy at once, and the first
// when it is stored).
func record(got map[string]string, id string, v *inbound.Verdict, err error) {
	if _, seen := got[id]; seen && errors.Is(err, inbound.ErrAlreadyHeld) {
		return
	}
	got[id] = outcome(v, err)
}

func outcome(v *inbound.Verdict, err error) string {
	if err != nil {
		return "error: " + err.Error()
	}
	return v.Kind.String()
}

// TestBatchMatchesOneByOne: a transaction's events taken as one Batch end
// as they end taken one Accept each (the kind of every event, the current
// state, the extremities), in fewer writes. The sequence holds the cases
// the Batch runs ahead on (messages and state extending the room, a
// rejected event and one built on it) and those it hands to Accept (an
// event on a stale fork that soft-fails, a duplicate, a forged one).
func TestBatchMatchesOneByOne(t *testing.T) {
	forEachVersion(t, func(t *testing.T, version string) {
		fx := newFixture(t, version)
		f := fx.base
		var evs []*pdu.Event
		for i := range 10 {
			evs = append(evs, f.SendMessage(bob, fmt.Sprint("message ", i)))
		}
		evs = append(evs, f.SendState(alice, "m.room.topic", "", `{"topic":"batched"}`))
		evs = append(evs, f.SendMessage(mod, "after the topic"))
		stale := f.Clone()
		evs = append(evs, f.SendState(alice, "m.room.power_levels", "", fx.powerLevels(nil))) // mod demoted
		evs = append(evs, stale.SendState(mod, "m.room.name", "", `{"name":"too late"}`))     // soft-fails
		evs = append(evs, evs[3])                                                             // a duplicate
		for i := range 5 {
			evs = append(evs, f.SendMessage(alice, fmt.Sprint("tail ", i)))
		}
		rejected := f.BuildMessage(carol, "carol is not in the room")
		f.Apply(rejected)
		evs = append(evs, rejected, f.SendMessage(bob, "built on the rejected event"))
		evs = append(evs, f.SendMessage(bob, "and the last"))

		oneStore, one := freshStore(t, fx)
		want := map[string]string{}
		for _, ev := range evs {
			v, _, err := one.Accept(context.Background(), ev.Raw)
			record(want, ev.ID, v, err)
		}
		batchStore, batched := freshStore(t, fx)
		got := runBatch(t, batched, evs)
		for _, ev := range evs {
			if got[ev.ID] != want[ev.ID] {
				t.Errorf("%s by %s: batch gave %s, want %s", ev.Type, ev.Sender, got[ev.ID], want[ev.ID])
			}
			if g, w := batchStore.Kind(ev.ID), oneStore.Kind(ev.ID); g != w {
				t.Errorf("%s by %s stored as %v, want %v", ev.Type, ev.Sender, g, w)
			}
		}
		if g, w := batchStore.CurrentState(), oneStore.CurrentState(); !maps.Equal(g, w) {
			t.Errorf("current state = %v, want %v", g, w)
		}
		g, w := batchStore.Extremities(), oneStore.Extremities()
		slices.Sort(g)
		slices.Sort(w)
		if !slices.Equal(g, w) {
			t.Errorf("extremities = %v, want %v", g, w)
		}
		// One write for the run up to the event built on the rejected one,
		// which the Batch hands to Accept (its prev event is not an
		// extremity), and one for each event after it.
		if g, w := batchStore.Writes()-6, oneStore.Writes()-6; g > 3 || w < len(evs)-1 {
			t.Errorf("batch took %d writes, one by one %d: want at most 3, and %d", g, w, len(evs)-1)
		}
	})
}

// TestBatchRoomMovedMeanwhile: when the room moves on between the checks
// and the write (here another event of the room is stored just before the
// batch's write), the writer refuses the batch and its events are checked
// again one by one: all still end as Accept alone would have them.
func TestBatchRoomMovedMeanwhile(t *testing.T) {
	fx := newFixture(t, "12")
	side := fx.base.Clone()
	var evs []*pdu.Event
	for i := range 6 {
		evs = append(evs, fx.base.SendMessage(bob, fmt.Sprint("message ", i)))
	}
	concurrent := side.SendMessage(alice, "stored while the batch was checked")

	st, p := freshStore(t, fx)
	moved := false
	st.BeforePersist = func(n int, v *inbound.Verdict) {
		if !moved {
			moved = true
			if _, _, err := p.Accept(context.Background(), concurrent.Raw); err != nil {
				t.Errorf("Accept(concurrent) = %v", err)
			}
		}
	}
	got := runBatch(t, p, evs)
	for _, ev := range evs {
		if got[ev.ID] != "accepted" || st.Kind(ev.ID) != inbound.Accepted {
			t.Errorf("%s: got %s, stored as %v, want accepted", ev.ID, got[ev.ID], st.Kind(ev.ID))
		}
	}
	ext := st.Extremities()
	slices.Sort(ext)
	want := []string{concurrent.ID, evs[len(evs)-1].ID}
	slices.Sort(want)
	if !slices.Equal(ext, want) {
		t.Errorf("extremities = %v, want the concurrent event and the batch's last %v", ext, want)
	}
}

// BenchmarkBatch is a transaction's 50 messages of one room through one
// Batch (the checks, with one write), per event.
func BenchmarkBatch(b *testing.B) {
	fx := newFixture(b, "11")
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		st := remotetest.NewStore(fx.room)
		p := inbound.New(st, remotetestKeys(), st)
		for _, name := range []string{"create", "alice", "pl", "jr", "mod", "bob"} {
			remotetest.Feed(b, p, inbound.Accepted, fx.ev[name])
		}
		f := fx.base.Clone()
		evs := make([]*pdu.Event, 50)
		for i := range evs {
			evs[i] = f.SendMessage(bob, fmt.Sprint("message ", i))
		}
		b.StartTimer()
		batch := p.NewBatch()
		for _, ev := range evs {
			batch.Add(ctx, ev.Raw, func(v *inbound.Verdict, err error) {
				if err != nil || v.Kind != inbound.Accepted {
					b.Fatalf("Add = %v, %v", v, err)
				}
			})
		}
		batch.Flush(ctx)
	}
}

// countingKeys counts key lookups: one per signature checked.
type countingKeys struct {
	inbound.Keys
	n atomic.Int64
}

func (k *countingKeys) VerifyKey(ctx context.Context, server, keyID string, at int64, version string) (ed25519.PublicKey, error) {
	k.n.Add(1)
	return k.Keys.VerifyKey(ctx, server, keyID, at, version)
}

// TestBatchPrepare: PDUs parsed and verified ahead (Batch.Prepare, on every
// core) end as they end checked in turn, a forged signature and a PDU that
// does not parse included, and Add checks no signature again.
func TestBatchPrepare(t *testing.T) {
	fx := newFixture(t, "11")
	f := fx.base
	var raws [][]byte
	for i := range 12 {
		raws = append(raws, f.SendMessage(bob, fmt.Sprint("message ", i)).Raw)
	}
	forged := f.BuildMessage(bob, "forged")
	other := f.BuildMessage(bob, "another")
	path := "signatures.remote\\.example"
	bad, err := sjson.SetRawBytes(forged.Raw, path, []byte(gjson.GetBytes(other.Raw, path).Raw))
	if err != nil {
		t.Fatal(err)
	}
	raws = append(raws, bad, []byte(`{"room_id":"`+fx.room.ID+`","type":"m.room.message"}`))
	raws = append(raws, f.SendMessage(alice, "last").Raw)

	outcomes := func(prepare bool) ([]string, int64) {
		st := remotetest.NewStore(fx.room)
		keys := &countingKeys{Keys: remotetestKeys()}
		p := inbound.New(st, keys, st)
		for _, name := range []string{"create", "alice", "pl", "jr", "mod", "bob"} {
			remotetest.Feed(t, p, inbound.Accepted, fx.ev[name])
		}
		b := p.NewBatch()
		if prepare {
			b.Prepare(context.Background(), "11", raws)
		}
		before := keys.n.Load()
		got := make([]string, len(raws))
		for i, raw := range raws {
			b.Add(context.Background(), raw, func(v *inbound.Verdict, err error) { got[i] = outcome(v, err) })
		}
		b.Flush(context.Background())
		return got, keys.n.Load() - before
	}
	want, _ := outcomes(false)
	got, lookups := outcomes(true)
	if !slices.Equal(got, want) {
		t.Errorf("prepared outcomes:\n%q\nwant\n%q", got, want)
	}
	if lookups != 0 {
		t.Errorf("Add looked up %d keys after Prepare, want 0", lookups)
	}
	if !strings.Contains(want[12], "signature") || !strings.HasPrefix(want[13], "error") {
		t.Errorf("forged and broken PDUs gave %q and %q; the fixture is wrong", want[12], want[13])
	}
}
