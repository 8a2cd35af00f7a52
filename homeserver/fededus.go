package homeserver

import (
	"context"
	"encoding/json"
	"log/slog"
	"time"

	"github.com/parley-im/parley/federation/edus"
	"github.com/parley-im/parley/federation/inbound"
	"github.com/parley-im/parley/todevice"
)

// remoteTypingTimeout is how long a remote user stays typing without a
// new m.typing: the EDU carries no timeout, and Synapse keeps remote
// typing for 60 s (FEDERATION_TIMEOUT) too.
const remoteTypingTimeout = 60 * time.Second

// eduSinks maps each inbound EDU kind to what handles it locally. Each
// sink logs its failures: an EDU has no answer to carry them back.
func eduSinks(serverName string, d fedDeps, log *slog.Logger) inbound.EDUSinks {
	e := &eduSink{d: d, log: log, server: serverName}
	sinks := inbound.EDUSinks{Typing: e, Receipts: e, ToDevice: e, DeviceList: e, SigningKey: e}
	if d.presence != nil {
		// Remote presence is held in a bounded cache (inbox/remotepresence.go),
		// and only for users who share a room with a local user.
		sinks.Presence = e
	}
	return sinks
}

// eduSink is the EDU sinks over the notifier, the room writer and
// to-device. Static after eduSinks.
type eduSink struct {
	d      fedDeps
	log    *slog.Logger
	server string
}

// RemoteTyping implements inbound.TypingSink: the typing table is the
// same one local users write, so /sync shows remote typing alike.
func (e *eduSink) RemoteTyping(_ context.Context, roomID, userID string, typing bool) {
	e.d.notifier.SetTyping(roomID, userID, typing, remoteTypingTimeout, time.Now())
}

// RemoteReceipt implements inbound.ReceiptSink: one receipt per event
// named, through the room writer, which checks the user is joined and the
// event is in the room.
func (e *eduSink) RemoteReceipt(ctx context.Context, r inbound.Receipt) {
	var data struct {
		ThreadID string `json:"thread_id"`
	}
	if len(r.Data) > 0 {
		_ = json.Unmarshal(r.Data, &data) // a bad data object only loses the thread
	}
	for _, ev := range r.EventIDs {
		if err := e.d.rooms.PutReceipt(ctx, r.RoomID, r.UserID, r.Type, ev, data.ThreadID); err != nil {
			e.log.Info("federation: remote receipt dropped", "room", r.RoomID, "user", r.UserID, "event", ev, "err", err)
		}
	}
}

// RemoteToDevice implements inbound.ToDeviceSink through the same service
// as local sendToDevice (unknown devices dropped, blocks honoured). The
// message ID is the transaction ID, so a transaction sent again after a
// restart does not deliver the message twice.
func (e *eduSink) RemoteToDevice(ctx context.Context, m inbound.ToDevice) {
	err := e.d.toDevice.Send(ctx, todevice.Request{Sender: m.Sender, TxnID: "fed:" + m.MessageID, Type: m.Type, Messages: m.Messages})
	if err != nil {
		e.log.Warn("federation: remote to-device dropped", "sender", m.Sender, "message_id", m.MessageID, "err", err)
	}
}

// RemoteDeviceListUpdate implements inbound.DeviceListSink: it updates the
// cache of the user's devices that /keys/query reads (which asks their
// server again on a gap in prev_id), and records that the user's devices
// changed, so /keys/changes and sync's device_lists tell local users who
// share a room with them to query the keys again.
func (e *eduSink) RemoteDeviceListUpdate(ctx context.Context, userID, deviceID string, content json.RawMessage) {
	if e.d.edus != nil && e.d.edus.remote != nil {
		e.d.edus.remote.Update(userID, deviceID, content)
	}
	if err := e.d.rooms.DeviceListChanged(ctx, userID); err != nil {
		e.log.Warn("federation: remote device-list update dropped", "user", userID, "err", err)
	}
}

// RemoteSigningKeyUpdate implements inbound.SigningKeySink: a change of
// cross-signing keys is reported like a device change (Synapse does the
// same), so clients query the user's keys again.
func (e *eduSink) RemoteSigningKeyUpdate(ctx context.Context, userID string, content json.RawMessage) {
	if e.d.edus != nil && e.d.edus.remote != nil {
		e.d.edus.remote.SigningKeyUpdate(userID, content)
	}
	if err := e.d.rooms.DeviceListChanged(ctx, userID); err != nil {
		e.log.Warn("federation: remote signing-key update dropped", "user", userID, "err", err)
	}
}

// maxLastActiveAgo caps a remote last_active_ago (ms), so a huge one
// cannot overflow a time.Duration: a year is as long ago as any.
const maxLastActiveAgo = 365 * 24 * 3600 * 1000

// RemotePresence implements inbound.PresenceSink: a remote user's presence
// is kept when they share a room with a local user (anyone else's would
// reach nobody here, and would only fill memory), and reaches those local
// users through /sync and GET /presence like a local user's.
func (e *eduSink) RemotePresence(ctx context.Context, p inbound.Presence) {
	if !edus.SharesWithLocal(e.d.notifier, e.server, p.UserID) {
		return
	}
	msg := ""
	if p.StatusMsg != nil {
		msg = *p.StatusMsg
	}
	lastActive := time.Now().Add(-time.Duration(min(max(p.LastActiveAgo, 0), maxLastActiveAgo)) * time.Millisecond)
	if err := e.d.presence.Remote(ctx, p.UserID, p.Presence, msg, lastActive, p.CurrentlyActive); err != nil {
		e.log.Warn("federation: remote presence dropped", "user", p.UserID, "err", err)
	}
}
