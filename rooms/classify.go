package rooms

import (
	"strings"

	"github.com/tidwall/gjson"

	"github.com/parley-im/parley/pushrules"
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

// classify applies the server-default push rules to ev (see
// pushrules.Classify), once, at write time.
func classify(ev *pdu.Event, rs *roomState) pushrules.Class {
	return pushrules.Classify(ev, func() bool {
		pl := rs.powerLevels()
		return pl.UserLevel(ev.Sender) >= pl.Notifications.Room
	})
}
