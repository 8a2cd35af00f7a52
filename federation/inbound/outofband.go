package inbound

import (
	"bytes"
	"context"

	checks "github.com/parley-im/parley/rooms/inbound"
	"github.com/parley-im/parley/rooms/pdu"
	"github.com/tidwall/gjson"
)

// Out-of-band leaves. A server whose user knocked on a room, or was
// invited to it, holds the room without being in it; when the resident
// server kicks (denies the knock) or bans that user, or rescinds the
// invite, it sends that one event (federation/outbound's point span). Its
// prev_events are unknown here and the room's history cannot be fetched,
// so the pipeline could not place it: it is verified and stored over the
// state held instead, as the knock or invite was.

// OutOfBand stores such a leave. *rooms.Service is one.
type OutOfBand interface {
	// OutOfBandLeave stores ev when it ends a local user's knock or
	// invite in a room no local user is joined to; handled is false when
	// it does not, and the event then goes through the pipeline.
	OutOfBandLeave(ctx context.Context, ev *pdu.Event) (handled bool, err error)
}

// outOfBand takes raw aside when it is an out-of-band leave that was
// stored (handled true, with its result). Only member events of another
// server's user leaving or banning one of ours get past the first test,
// so the rest of a busy room's traffic costs one gjson read.
func (h *Handler) outOfBand(ctx context.Context, origin, version string, raw []byte) (id string, r PDUResult, handled bool) {
	if h.cfg.OutOfBand == nil || h.cfg.Keys == nil || !bytes.Contains(raw, []byte(`"m.room.member"`)) {
		return "", r, false
	}
	f := gjson.GetManyBytes(raw, "type", "state_key", "sender", "content.membership")
	if f[0].Str != "m.room.member" || pdu.Domain(f[1].Str) != h.cfg.ServerName || f[1].Str == f[2].Str ||
		(f[3].Str != "leave" && f[3].Str != "ban") {
		return "", r, false
	}
	ev, err := pdu.Parse(raw, version)
	if err != nil || pdu.Domain(ev.Sender) != origin {
		return "", r, false // the pipeline gives the error
	}
	if err := checks.VerifySignatures(ctx, h.cfg.Keys, version, ev); err != nil {
		return ev.ID, PDUResult{Error: "bad signature: " + err.Error()}, true
	}
	handled, err = h.cfg.OutOfBand.OutOfBandLeave(ctx, ev)
	switch {
	case err != nil:
		h.log.Warn("federation: storing an out-of-band leave", "room", ev.RoomID, "event", ev.ID, "err", err)
		return ev.ID, PDUResult{Error: "internal error storing the event"}, true
	case !handled:
		return "", r, false
	}
	return ev.ID, PDUResult{}, true
}
