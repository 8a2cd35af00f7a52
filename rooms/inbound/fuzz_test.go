package inbound_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/parley-im/parley/rooms/inbound"
)

// FuzzCheck feeds any bytes to the inbound entry points (Check and
// CheckOutlier): they must never panic, and must return either a complete
// verdict or a typed error.
func FuzzCheck(f *testing.F) {
	fx := newFixture(f, "11")
	fork := fx.base.Clone()
	msg := fork.BuildMessage(bob, "hello")
	for _, ev := range fx.ev {
		f.Add(ev.Raw)
	}
	f.Add(msg.Raw)
	f.Add(fork.BuildState(alice, "m.room.member", bob, `{"membership":"ban"}`).Raw)
	f.Add(fork.BuildState(carol, "m.room.member", carol, `{"join_authorised_via_users_server":"`+alice+`","membership":"join"}`).Raw)
	f.Add(editRaw(f, msg.Raw, func(m map[string]json.RawMessage) { m["content"] = json.RawMessage(`{"body":"x"}`) }))
	f.Add([]byte(`{"room_id":"` + fx.room.ID + `"}`))
	f.Add([]byte(`{"type":"m.room.create","content":{"room_version":"12"}}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		if v, err := fx.p.CheckOutlier(context.Background(), fx.room.ID, raw); err == nil && (v.Event == nil || v.StateBefore != nil) {
			t.Fatalf("CheckOutlier = %+v; want an event without state", v)
		}
		v, err := fx.p.Check(context.Background(), raw)
		switch {
		case err == nil && (v == nil || v.Event == nil || v.Kind == 0):
			t.Fatalf("Check = %+v, nil; want a complete verdict", v)
		case err != nil && v != nil:
			t.Fatalf("Check = %+v, %v; want no verdict with an error", v, err)
		case err != nil && !errors.Is(err, inbound.ErrDropped) && !errors.Is(err, inbound.ErrMissing) && !errors.Is(err, inbound.ErrUnknownRoom) && !errors.Is(err, inbound.ErrAlreadyHeld):
			t.Fatalf("Check = %v; want ErrDropped, ErrMissing, ErrUnknownRoom or ErrAlreadyHeld", err)
		}
	})
}
