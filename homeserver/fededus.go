package homeserver

import (
	"context"
	"encoding/json"
	"log/slog"
	"time"

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
	e := &eduSink{d: d, log: log}
	// Presence is not taken: inbox.Presence keeps every user it has
	// seen in memory, without eviction, so a remote server could grow it
	// without bound by naming made-up users.
	return inbound.EDUSinks{Typing: e, Receipts: e, ToDevice: e, DeviceList: e, SigningKey: e}
}

// eduSink is the EDU sinks over the notifier, the room writer and
// to-device. Static after eduSinks.
type eduSink struct {
	d   fedDeps
	log *slog.Logger
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

// RemoteDeviceListUpdate implements inbound.DeviceListSink: it records
// that the user's devices changed, so /keys/changes and sync's
// device_lists tell local users who share a room with them to query the
// keys again. The device's keys themselves are not cached (a query goes to
// the user's server, once remote key queries exist).
func (e *eduSink) RemoteDeviceListUpdate(ctx context.Context, userID, _ string, _ json.RawMessage) {
	if err := e.d.rooms.DeviceListChanged(ctx, userID); err != nil {
		e.log.Warn("federation: remote device-list update dropped", "user", userID, "err", err)
	}
}

// RemoteSigningKeyUpdate implements inbound.SigningKeySink: a change of
// cross-signing keys is reported like a device change (Synapse does the
// same), so clients query the user's keys again.
func (e *eduSink) RemoteSigningKeyUpdate(ctx context.Context, userID string, _ json.RawMessage) {
	if err := e.d.rooms.DeviceListChanged(ctx, userID); err != nil {
		e.log.Warn("federation: remote signing-key update dropped", "user", userID, "err", err)
	}
}
