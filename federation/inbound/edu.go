package inbound

import (
	"context"
	"encoding/json"

	"github.com/parley-im/parley/rooms/pdu"
)

// The sinks EDUs go to once validated, one small interface per kind, so
// each can be wired to what already handles it locally (the typing table,
// receipts, to-device inboxes, device lists). A nil sink drops its kind.
type EDUSinks struct {
	Typing     TypingSink
	Receipts   ReceiptSink
	Presence   PresenceSink
	ToDevice   ToDeviceSink
	DeviceList DeviceListSink
	SigningKey SigningKeySink
}

// TypingSink takes m.typing from a server in the room.
type TypingSink interface {
	RemoteTyping(ctx context.Context, roomID, userID string, typing bool)
}

// Receipt is one user's receipt in a room, from m.receipt.
type Receipt struct {
	RoomID   string
	Type     string // e.g. m.read, m.read.private is never federated
	UserID   string
	EventIDs []string
	// Data is the receipt's data object (ts, thread_id), as sent.
	Data json.RawMessage
}

// ReceiptSink takes receipts from servers in the room.
type ReceiptSink interface {
	RemoteReceipt(ctx context.Context, r Receipt)
}

// Presence is one user's presence from m.presence.
type Presence struct {
	UserID          string          `json:"user_id"`
	Presence        string          `json:"presence"`
	LastActiveAgo   int64           `json:"last_active_ago"`
	CurrentlyActive bool            `json:"currently_active"`
	StatusMsg       *string         `json:"status_msg,omitempty"`
	Raw             json.RawMessage `json:"-"`
}

// PresenceSink takes presence updates of the origin's users.
type PresenceSink interface {
	RemotePresence(ctx context.Context, p Presence)
}

// ToDevice is one m.direct_to_device EDU, cut to this server's users.
type ToDevice struct {
	Sender    string
	Type      string
	MessageID string
	// Messages maps local user ID to device ID (or "*") to content.
	Messages map[string]map[string]json.RawMessage
}

// ToDeviceSink takes to-device messages for local users. MessageID lets
// it drop a message a retried transaction brings again (the transaction
// cache is in memory).
type ToDeviceSink interface {
	RemoteToDevice(ctx context.Context, m ToDevice)
}

// DeviceListSink takes m.device_list_update: one device of one of the
// origin's users changed. Content is the EDU's content as sent (user_id,
// device_id, stream_id, prev_id, deleted, keys, device_display_name).
type DeviceListSink interface {
	RemoteDeviceListUpdate(ctx context.Context, userID, deviceID string, content json.RawMessage)
}

// SigningKeySink takes m.signing_key_update: a user's cross-signing keys
// changed. Content holds user_id, master_key, self_signing_key.
type SigningKeySink interface {
	RemoteSigningKeyUpdate(ctx context.Context, userID string, content json.RawMessage)
}

// maxEDUEntries bounds the users or rooms one EDU may name, so a 100-EDU
// transaction cannot fan out without bound.
const maxEDUEntries = 1000

// handleEDUs validates and dispatches each EDU. An invalid one is dropped
// (EDUs have no answer); an unknown type is ignored, as the spec asks.
func (h *Handler) handleEDUs(ctx context.Context, origin string, edus []EDU) {
	for _, e := range edus {
		if ctx.Err() != nil {
			return
		}
		var taken bool
		switch e.Type {
		case "m.typing":
			taken = h.eduTyping(ctx, origin, e.Content)
		case "m.receipt":
			taken = h.eduReceipt(ctx, origin, e.Content)
		case "m.presence":
			taken = h.eduPresence(ctx, origin, e.Content)
		case "m.direct_to_device":
			taken = h.eduToDevice(ctx, origin, e.Content)
		case "m.device_list_update":
			taken = h.eduDeviceList(ctx, origin, e.Content)
		case "m.signing_key_update":
			taken = h.eduSigningKey(ctx, origin, e.Content)
		default:
			continue
		}
		if taken {
			h.count.eduTaken.Add(1)
		} else {
			h.count.eduDropped.Add(1)
		}
	}
}

// ofOrigin reports whether userID is a valid user ID of origin's.
func ofOrigin(userID, origin string) bool {
	return pdu.ValidUserID(userID) && pdu.Domain(userID) == origin
}

// mayTouchRoom reports whether origin may send typing or receipts for
// roomID: it has a user joined there and the room's ACL allows it.
func (h *Handler) mayTouchRoom(ctx context.Context, origin, roomID string) bool {
	if h.cfg.RoomServers == nil || !pdu.ValidRoomID(roomID) {
		return false
	}
	in, err := h.cfg.RoomServers.ServerInRoom(ctx, roomID, origin)
	if err != nil || !in {
		return false
	}
	acl, err := h.roomACL(ctx, roomID)
	return err == nil && acl.Allowed(origin)
}

func (h *Handler) eduTyping(ctx context.Context, origin string, content json.RawMessage) bool {
	var c struct {
		RoomID string `json:"room_id"`
		UserID string `json:"user_id"`
		Typing *bool  `json:"typing"`
	}
	if h.cfg.EDUs.Typing == nil || json.Unmarshal(content, &c) != nil || c.Typing == nil || !ofOrigin(c.UserID, origin) {
		return false
	}
	if !h.mayTouchRoom(ctx, origin, c.RoomID) {
		return false
	}
	h.cfg.EDUs.Typing.RemoteTyping(ctx, c.RoomID, c.UserID, *c.Typing)
	return true
}

func (h *Handler) eduReceipt(ctx context.Context, origin string, content json.RawMessage) bool {
	// {room_id: {receipt type: {user_id: {event_ids: [...], data: {...}}}}}
	var rooms map[string]map[string]map[string]struct {
		EventIDs []string        `json:"event_ids"`
		Data     json.RawMessage `json:"data"`
	}
	if h.cfg.EDUs.Receipts == nil || json.Unmarshal(content, &rooms) != nil || len(rooms) > maxEDUEntries {
		return false
	}
	taken := false
	for roomID, types := range rooms {
		if !h.mayTouchRoom(ctx, origin, roomID) {
			continue
		}
		for typ, users := range types {
			if typ == "m.read.private" {
				continue // private receipts never leave their server
			}
			for userID, r := range users {
				if !ofOrigin(userID, origin) || len(r.EventIDs) == 0 || len(r.EventIDs) > 100 || !allValidEventIDs(r.EventIDs) {
					continue
				}
				h.cfg.EDUs.Receipts.RemoteReceipt(ctx, Receipt{RoomID: roomID, Type: typ, UserID: userID, EventIDs: r.EventIDs, Data: r.Data})
				taken = true
			}
		}
	}
	return taken
}

func allValidEventIDs(ids []string) bool {
	for _, id := range ids {
		if !pdu.ValidEventID(id) {
			return false
		}
	}
	return true
}

func (h *Handler) eduPresence(ctx context.Context, origin string, content json.RawMessage) bool {
	var c struct {
		Push []json.RawMessage `json:"push"`
	}
	if h.cfg.EDUs.Presence == nil || json.Unmarshal(content, &c) != nil || len(c.Push) > maxEDUEntries {
		return false
	}
	taken := false
	for _, raw := range c.Push {
		var p Presence
		if json.Unmarshal(raw, &p) != nil || !ofOrigin(p.UserID, origin) {
			continue
		}
		switch p.Presence {
		case "online", "offline", "unavailable":
		default:
			continue
		}
		p.Raw = raw
		h.cfg.EDUs.Presence.RemotePresence(ctx, p)
		taken = true
	}
	return taken
}

func (h *Handler) eduToDevice(ctx context.Context, origin string, content json.RawMessage) bool {
	var c struct {
		Sender    string                                `json:"sender"`
		Type      string                                `json:"type"`
		MessageID string                                `json:"message_id"`
		Messages  map[string]map[string]json.RawMessage `json:"messages"`
	}
	if h.cfg.EDUs.ToDevice == nil || json.Unmarshal(content, &c) != nil || !ofOrigin(c.Sender, origin) || c.Type == "" || len(c.Messages) > maxEDUEntries {
		return false
	}
	local := make(map[string]map[string]json.RawMessage, len(c.Messages))
	for userID, devices := range c.Messages {
		if pdu.ValidUserID(userID) && pdu.Domain(userID) == h.cfg.ServerName && len(devices) > 0 {
			local[userID] = devices
		}
	}
	if len(local) == 0 {
		return false
	}
	h.cfg.EDUs.ToDevice.RemoteToDevice(ctx, ToDevice{Sender: c.Sender, Type: c.Type, MessageID: c.MessageID, Messages: local})
	return true
}

func (h *Handler) eduDeviceList(ctx context.Context, origin string, content json.RawMessage) bool {
	var c struct {
		UserID   string `json:"user_id"`
		DeviceID string `json:"device_id"`
	}
	if h.cfg.EDUs.DeviceList == nil || json.Unmarshal(content, &c) != nil || !ofOrigin(c.UserID, origin) || c.DeviceID == "" {
		return false
	}
	h.cfg.EDUs.DeviceList.RemoteDeviceListUpdate(ctx, c.UserID, c.DeviceID, content)
	return true
}

func (h *Handler) eduSigningKey(ctx context.Context, origin string, content json.RawMessage) bool {
	var c struct {
		UserID string `json:"user_id"`
	}
	if h.cfg.EDUs.SigningKey == nil || json.Unmarshal(content, &c) != nil || !ofOrigin(c.UserID, origin) {
		return false
	}
	h.cfg.EDUs.SigningKey.RemoteSigningKeyUpdate(ctx, c.UserID, content)
	return true
}
