package rooms

import (
	"strings"

	"github.com/tidwall/gjson"

	"github.com/parley-im/parley/rooms/pdu"
)

// mediaPaths are where message content carries media (attachments and
// their thumbnails, plain and encrypted), at the top level and inside an
// edit's m.new_content: an edit can carry media its original never did, and
// media nothing records is served to anyone.
var mediaPaths = [...]string{"url", "info.thumbnail_url", "file.url", "info.thumbnail_file.url",
	`m\.new_content.url`, `m\.new_content.info.thumbnail_url`, `m\.new_content.file.url`, `m\.new_content.info.thumbnail_file.url`}

// localMedia returns the IDs of this server's media a message refers to.
// State events (avatars) are left out: avatars are public like profiles.
func localMedia(ev *pdu.Event, serverName string) []string {
	if ev.StateKey != nil {
		return nil
	}
	return LocalMedia(ev.Content, serverName)
}

// LocalMedia returns the IDs of this server's media that message content
// carries (at most 8, one per path in mediaPaths).
func LocalMedia(content []byte, serverName string) []string {
	prefix := "mxc://" + serverName + "/"
	var ids []string
	for _, p := range mediaPaths {
		if u := gjson.GetBytes(content, p).String(); strings.HasPrefix(u, prefix) && len(u) > len(prefix) && len(ids) < 8 {
			ids = append(ids, u[len(prefix):])
		}
	}
	return ids
}

// eventClass is what the server-default push rules say about an event for
// any member other than its sender, computed once at write time. Unread
// counts are then derived from positions (see storage.UnreadCounts) instead
// of writing a counter row per member per message.
type eventClass struct {
	notify      bool     // the underride rules notify (message, encrypted, call invite)
	roomMention bool     // highlight for everyone (@room by a sender allowed to, or a tombstone)
	mentions    []string // users the event highlights (m.mentions.user_ids)
}

// classify applies the default ruleset's override and underride rules in the
// spec's order: suppress_notices, member_event, is_user_mention,
// is_room_mention/roomnotif, tombstone, reaction, server_acl, suppress_edits,
// then call, encrypted and message.
func classify(ev *pdu.Event, rs *roomState) eventClass {
	var c eventClass
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
			if id := u.String(); id != ev.Sender && pdu.ValidUserID(id) && len(c.mentions) < 100 {
				c.mentions = append(c.mentions, id)
			}
		}
		if mentions.Get("room").Bool() && rs.powerLevels().UserLevel(ev.Sender) >= rs.powerLevels().Notifications.Room {
			c.roomMention = true
		}
	} else if strings.Contains(content.Get("body").String(), "@room") &&
		rs.powerLevels().UserLevel(ev.Sender) >= rs.powerLevels().Notifications.Room {
		c.roomMention = true // .m.rule.roomnotif, for clients without intentional mentions
	}
	if ev.Type == "m.room.tombstone" && ev.StateKey != nil && *ev.StateKey == "" {
		c.roomMention = true
	}
	if len(c.mentions) > 0 || c.roomMention {
		return c
	}
	if ev.Type == "m.reaction" || ev.Type == "m.room.server_acl" {
		return c
	}
	if content.Get(`m\.relates_to.rel_type`).String() == "m.replace" {
		return c // .m.rule.suppress_edits
	}
	switch ev.Type {
	case "m.call.invite", "m.room.encrypted", "m.room.message":
		c.notify = ev.StateKey == nil
	}
	return c
}
