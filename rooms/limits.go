package rooms

import (
	"errors"
	"fmt"

	"github.com/parley-im/parley/rooms/pdu"
)

// Refusals of the writer when it is too busy. Both change nothing; the caller
// may retry after RetryAfter.
var (
	// ErrBusy: this user already has as many writes waiting as one user may.
	ErrBusy = errors.New("too many writes waiting")
	// ErrOverloaded: the writer's whole queue is full.
	ErrOverloaded = errors.New("server busy")
)

// RetryAfter is how long a client refused with ErrBusy or ErrOverloaded
// should wait: about what the writer takes to work off a full queue of
// single sends, so a retry usually finds room.
const RetryAfter = 500 // milliseconds

// Limits bound what one request can make the writer do and how large a
// room's state may grow. The zero value of each field means its default.
type Limits struct {
	// MaxInitialState caps createRoom's initial_state events. Zero means 50.
	// Every opening event is written in the room's one commit, so this bounds
	// how long one createRoom holds the writer (about 0.3 ms an event on a
	// loaded 2-core box); clients send a handful.
	MaxInitialState int
	// MaxCreateInvites caps createRoom's invite list, for the same reason.
	// Zero means 100.
	MaxCreateInvites int
	// MaxStateEvents caps a room's state entries other than memberships.
	// Zero means 1000. Members are bounded by the room's size instead.
	MaxStateEvents int
	// MaxStateBytes caps the total size of a room's state events other than
	// memberships (their canonical JSON). Zero means 4 MiB.
	MaxStateBytes int64
}

func (l *Limits) fillDefaults() {
	if l.MaxInitialState <= 0 {
		l.MaxInitialState = 50
	}
	if l.MaxCreateInvites <= 0 {
		l.MaxCreateInvites = 100
	}
	if l.MaxStateEvents <= 0 {
		l.MaxStateEvents = 1000
	}
	if l.MaxStateBytes <= 0 {
		l.MaxStateBytes = 4 << 20
	}
}

// checkCreate refuses a createRoom whose opening events would make one
// oversized writer job, before anything is built.
func (s *Service) checkCreate(req CreateRequest) error {
	l := &s.cfg.Limits
	if n := len(req.InitialState); n > l.MaxInitialState {
		return fmt.Errorf("%w: initial_state has %d events, the most is %d", ErrTooLarge, n, l.MaxInitialState)
	}
	if n := len(req.Invite); n > l.MaxCreateInvites {
		return fmt.Errorf("%w: invite lists %d users, the most is %d; invite the rest afterwards", ErrTooLarge, n, l.MaxCreateInvites)
	}
	return nil
}

// checkStateSize refuses a state event that would take the room's state
// (memberships aside) over its count or byte cap. Every route that writes
// state (createRoom, the state PUT, federation) appends through appendEvent,
// which calls this. Replacing an entry with a smaller one is always allowed,
// so a room over a lowered cap can still shrink.
func (b *batch) checkStateSize(rs *roomState, ev *pdu.Event) error {
	if ev.StateKey == nil || ev.Type == "m.room.member" {
		return nil
	}
	l := &b.s.cfg.Limits
	count, size := rs.otherCount, rs.otherBytes+int64(len(ev.Raw))
	if prev := rs.state[keyOf(ev.Type, *ev.StateKey)]; prev != nil {
		size -= int64(len(prev.ev.Raw))
		if len(ev.Raw) <= len(prev.ev.Raw) {
			return nil
		}
	} else {
		count++
	}
	if count > l.MaxStateEvents {
		return fmt.Errorf("%w: the room has %d state events, the most a room may have", ErrTooLarge, l.MaxStateEvents)
	}
	if size > l.MaxStateBytes {
		return fmt.Errorf("%w: the room's state would be %d bytes, over the %d a room may have", ErrTooLarge, size, l.MaxStateBytes)
	}
	return nil
}
