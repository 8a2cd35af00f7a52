package pushrules

import (
	"strings"

	"github.com/tidwall/gjson"

	"github.com/parley-im/parley/rooms/pdu"
)

// Class is what the server-default push rules say about an event for any
// member other than its sender. The room writer computes it once per event;
// unread counts are then derived from positions (see storage.UnreadCounts)
// instead of writing a counter row per member per message.
type Class struct {
	Notify      bool     // the underride rules notify (message, encrypted, call invite)
	RoomMention bool     // highlight for everyone (@room by a sender allowed to, or a tombstone)
	Mentions    []string // users the event highlights (m.mentions.user_ids), at most 100
}

// Classify applies the default ruleset's override and underride rules in the
// spec's order: suppress_notices, member_event, is_user_mention,
// is_room_mention/roomnotif, tombstone, reaction, server_acl, suppress_edits,
// then call, encrypted and message. senderMayNotifyRoom reports whether the
// sender's power level reaches notifications.room; it is called only for an
// event that tries an @room mention, so most events never load power levels.
// A user's own rules (muted rooms) apply when counts are read, not here.
func Classify(ev *pdu.Event, senderMayNotifyRoom func() bool) Class {
	var c Class
	content := gjson.ParseBytes(ev.Content)
	if ev.Type == "m.room.message" && content.Get("msgtype").String() == "m.notice" {
		return c // .m.rule.suppress_notices
	}
	if ev.Type == "m.room.member" {
		return c // .m.rule.member_event (invites reach the invitee through the invite section)
	}
	mentions := content.Get(`m\.mentions`)
	if mentions.Exists() {
		for _, u := range mentions.Get("user_ids").Array() {
			if id := u.String(); id != ev.Sender && pdu.ValidUserID(id) && len(c.Mentions) < 100 {
				c.Mentions = append(c.Mentions, id)
			}
		}
		if mentions.Get("room").Bool() && senderMayNotifyRoom() {
			c.RoomMention = true
		}
	} else if strings.Contains(content.Get("body").String(), "@room") &&
		senderMayNotifyRoom() {
		c.RoomMention = true // .m.rule.roomnotif, for clients without intentional mentions
	}
	if ev.Type == "m.room.tombstone" && ev.StateKey != nil && *ev.StateKey == "" {
		c.RoomMention = true
	}
	// The mention rules match only the users mentioned; everyone else goes
	// on through the rules below, so a reply that mentions its parent's
	// sender still notifies the rest of the room (.m.rule.message).
	if ev.Type == "m.reaction" || ev.Type == "m.room.server_acl" {
		return c
	}
	if content.Get(`m\.relates_to.rel_type`).String() == "m.replace" {
		return c // .m.rule.suppress_edits
	}
	switch ev.Type {
	case "m.call.invite", "m.room.encrypted", "m.room.message":
		c.Notify = ev.StateKey == nil
	}
	return c
}
