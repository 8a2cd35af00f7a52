// Package authrules owns the Matrix authorization rules of room versions 10,
// 11 and 12 (version 12: creators with unlimited power, MSC4289; the create
// event named by the room ID rather than listed in auth_events, MSC4291):
// which state events authorise an event (auth events selection),
// whether an event is allowed given those events, and the power levels
// model those rules use.
//
// It is a pure function of its inputs. It must not fetch events or keys,
// read storage, verify signatures (callers verify them before asking, see
// pdu.Event.RequiredSigners), track rejected events, or resolve state: the
// caller decides which set of state to check against (the event's own auth
// events, the state before it, or the current state for soft failure).
//
// m.room.redaction events get no special treatment here, as the room
// version 3+ rules say: they pass on the ordinary event power level. Whether
// the redaction may take effect on its target (same sender, or the redact
// level) is decided by the server when it applies or serves the redaction.
package authrules
