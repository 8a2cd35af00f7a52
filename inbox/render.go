package inbox

import (
	"context"
	"encoding/json"
	"maps"
	"slices"
	"sort"
	"strconv"

	"github.com/parley-im/parley/rooms"
	"github.com/parley-im/parley/storage"
)

// jsonWriter builds a response by appending: event JSON is stored rendered,
// so a sync copies bytes instead of decoding and re-encoding events.
type jsonWriter struct{ buf []byte }

// writer returns a jsonWriter with a recycled buffer when one is free (see
// Release): a message in a big room makes every woken member build a
// response, and a fresh 4 KiB buffer each was the largest allocation on
// that path. It is a value, to stay off the heap.
func (s *Syncer) writer(n int) jsonWriter {
	if b, ok := s.bodies.Get().(*[]byte); ok {
		buf := (*b)[:0]
		*b = nil
		s.holders.Put(b) // for Release: no new *[]byte per response
		return jsonWriter{buf: buf}
	}
	return jsonWriter{buf: make([]byte, 0, n)}
}

// maxRecycledBody bounds the buffers Release keeps: an initial sync's
// megabytes are not worth holding on to.
const maxRecycledBody = 64 << 10

// Release hands back a body Sync returned, once it has been written: its
// buffer serves a later response. The caller must not touch body after.
func (s *Syncer) Release(body []byte) {
	if cap(body) == 0 || cap(body) > maxRecycledBody {
		return
	}
	h, ok := s.holders.Get().(*[]byte)
	if !ok {
		h = new([]byte)
	}
	*h = body[:0]
	s.bodies.Put(h)
}

func (w *jsonWriter) raw(s string) *jsonWriter { w.buf = append(w.buf, s...); return w }
func (w *jsonWriter) str(s string) *jsonWriter {
	w.buf = rooms.AppendJSONString(w.buf, s)
	return w
}
func (w *jsonWriter) int(n int64) *jsonWriter { w.buf = strconv.AppendInt(w.buf, n, 10); return w }
func (w *jsonWriter) bytes() []byte           { return w.buf }

func (w *jsonWriter) events(evs []storage.Event, now int64, v rooms.Viewer) *jsonWriter {
	w.buf = append(w.buf, '[')
	for i := range evs {
		if i > 0 {
			w.buf = append(w.buf, ',')
		}
		w.buf = rooms.AppendClientEvent(w.buf, &evs[i], now, v)
	}
	w.buf = append(w.buf, ']')
	return w
}

func (s *Syncer) render(ctx context.Context, req Request, next Token, rms map[string]*roomResp, us userStreams) []byte {
	globalData, presence, toDevice, changed, otk, fallback := us.globalData, us.presence, us.toDevice, us.changed, us.otk, us.fallback
	now := s.now().UnixMilli()
	v := rooms.Viewer{UserID: req.UserID, DeviceID: req.DeviceID}
	wv := s.writer(4096)
	w := &wv
	w.raw(`{"next_batch":"`)
	next.Epoch = s.epoch
	w.buf = next.appendTo(w.buf)
	w.raw(`"`)

	ids := make([]string, 0, len(rms))
	for id := range rms {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	w.raw(`,"rooms":{`)
	for si, section := range []string{"join", "invite", "knock", "leave"} {
		if si > 0 {
			w.raw(",")
		}
		w.str(section).raw(":{")
		first := true
		for _, id := range ids {
			r := rms[id]
			if r.section != section {
				continue
			}
			if !first {
				w.raw(",")
			}
			first = false
			w.str(id).raw(":")
			switch section {
			case "invite", "knock":
				s.renderInvite(w, r)
			default:
				s.renderRoom(w, r, now, v)
			}
		}
		w.raw("}")
	}
	w.raw("}")

	w.raw(`,"account_data":{"events":[`)
	for i, a := range globalData {
		if i > 0 {
			w.raw(",")
		}
		w.raw(`{"type":`).str(a.Type).raw(`,"content":`).raw(a.Content).raw("}")
	}
	w.raw("]}")

	w.raw(`,"presence":{"events":[`)
	n := 0
	for _, p := range presence {
		if !req.Filter.Presence.Allows("m.presence", p.UserID) {
			continue
		}
		if n > 0 {
			w.raw(",")
		}
		n++
		state, msg, lastActive, active := s.presence.Get(ctx, p.UserID)
		w.raw(`{"type":"m.presence","sender":`).str(p.UserID).raw(`,"content":{"presence":`).str(state)
		if !lastActive.IsZero() {
			w.raw(`,"last_active_ago":`).int(max(now-lastActive.UnixMilli(), 0))
		}
		w.raw(`,"currently_active":`).raw(strconv.FormatBool(active))
		if msg != "" {
			w.raw(`,"status_msg":`).str(msg)
		}
		w.raw("}}")
	}
	w.raw("]}")

	w.raw(`,"to_device":{"events":[`)
	for i, m := range toDevice {
		if i > 0 {
			w.raw(",")
		}
		w.raw(`{"sender":`).str(m.Sender).raw(`,"type":`).str(m.Type).raw(`,"content":`).raw(m.Content).raw("}")
	}
	w.raw("]}")

	w.raw(`,"device_lists":{"changed":[`)
	for i, u := range changed {
		if i > 0 {
			w.raw(",")
		}
		w.str(u)
	}
	w.raw(`],"left":[`)
	for i, u := range us.left {
		if i > 0 {
			w.raw(",")
		}
		w.str(u)
	}
	w.raw(`]}`)

	w.raw(`,"device_one_time_keys_count":{`)
	algs := make([]string, 0, len(otk))
	for a := range otk {
		algs = append(algs, a)
	}
	sort.Strings(algs)
	for i, a := range algs {
		if i > 0 {
			w.raw(",")
		}
		w.str(a).raw(":").int(int64(otk[a]))
	}
	w.raw(`},"device_unused_fallback_key_types":[`)
	for i, a := range fallback {
		if i > 0 {
			w.raw(",")
		}
		w.str(a)
	}
	w.raw("]")
	w.raw(`,"io.parley.relationships":{"events":[`)
	for i, n := range us.notices {
		if i > 0 {
			w.raw(",")
		}
		w.raw(`{"type":`).str(n.Type).raw(`,"content":`).raw(n.Content).raw(`,"origin_server_ts":`).int(n.TS).raw("}")
	}
	w.raw("]}")
	if us.channels != nil {
		w.raw(`,"io.parley.channels":`)
		w.buf = append(w.buf, us.channels...)
	}
	if us.moments != nil {
		w.raw(`,"io.parley.moments":`)
		w.buf = append(w.buf, us.moments...)
	}
	w.raw("}")
	return w.bytes()
}

// writeRoomHead writes a room's "timeline" and "state" objects: for v at
// now, or with share set, for no viewer into the shared delta share (which
// reports false to give up; see roomDelta.appendEvents). It is the one
// writer of both, so a member's own copy and the shared one cannot drift
// apart.
func writeRoomHead(w *jsonWriter, r *roomResp, now int64, v rooms.Viewer, share *roomDelta) bool {
	w.raw(`"timeline":{"events":`)
	if !w.eventList(r.timeline, now, v, share) {
		return false
	}
	w.raw(`,"limited":`).raw(strconv.FormatBool(r.limited))
	prev := r.since
	if len(r.timeline) > 0 {
		prev = r.timeline[0].Pos - 1
	}
	w.raw(`,"prev_batch":"`)
	w.buf = appendRoomToken(w.buf, prev)
	w.raw(`"}`)
	w.raw(`,"state":{"events":`)
	if !w.eventList(r.state, now, v, share) {
		return false
	}
	w.raw("}")
	return true
}

// eventList writes evs for v at now, or into share (see writeRoomHead).
func (w *jsonWriter) eventList(evs []storage.Event, now int64, v rooms.Viewer, share *roomDelta) bool {
	if share != nil {
		return share.appendEvents(w, evs)
	}
	w.events(evs, now, v)
	return true
}

func (s *Syncer) renderRoom(w *jsonWriter, r *roomResp, now int64, v rooms.Viewer) {
	w.raw("{")
	d := r.delta
	if d == nil {
		d = s.shareRoom(r)
	}
	if d != nil && !d.ownedBy(v) {
		w.buf = d.appendTo(w.buf, now)
	} else {
		writeRoomHead(w, r, now, v, nil)
	}
	w.raw(`,"account_data":{"events":[`)
	for i, a := range r.accountDat {
		if i > 0 {
			w.raw(",")
		}
		w.raw(`{"type":`).str(a.Type).raw(`,"content":`).raw(a.Content).raw("}")
	}
	w.raw("]}")
	if r.section == "join" {
		w.raw(`,"ephemeral":{"events":[`)
		n := 0
		if r.typingSet || r.newlyJoin {
			w.raw(`{"type":"m.typing","content":{"user_ids":[`)
			for i, u := range r.typing {
				if i > 0 {
					w.raw(",")
				}
				w.str(u)
			}
			w.raw("]}}")
			n++
		}
		if len(r.receipts) > 0 {
			if n > 0 {
				w.raw(",")
			}
			renderReceipts(w, r.receipts)
		}
		w.raw("]}")
		if r.unread != nil {
			w.raw(`,"unread_notifications":{"notification_count":`).int(r.unread.Notifications).
				raw(`,"highlight_count":`).int(r.unread.Highlights).raw("}")
		}
		if len(r.threads) > 0 {
			w.raw(`,"unread_thread_notifications":{`)
			for i, root := range slices.Sorted(maps.Keys(r.threads)) {
				if i > 0 {
					w.raw(",")
				}
				u := r.threads[root]
				w.str(root).raw(`:{"notification_count":`).int(u.Notifications).
					raw(`,"highlight_count":`).int(u.Highlights).raw("}")
			}
			w.raw("}")
		}
		if r.summary != nil {
			w.raw(`,"summary":{"m.joined_member_count":`).int(r.summary.Joined).
				raw(`,"m.invited_member_count":`).int(r.summary.Invited).raw(`,"m.heroes":[`)
			for i, h := range r.summary.Heroes {
				if i > 0 {
					w.raw(",")
				}
				w.str(h)
			}
			w.raw("]}")
		}
	}
	w.raw("}")
}

type receiptKey struct{ event, typ, user string }

// renderReceipts groups receipts into one m.receipt event.
func renderReceipts(w *jsonWriter, rs []storage.Receipt) {
	byEvent := map[string]map[string][]storage.Receipt{}
	var order []string
	// Without threaded receipts (user, type) is unique per room: no check.
	threaded := slices.ContainsFunc(rs, func(r storage.Receipt) bool { return r.ThreadID != "" })
	var seen map[receiptKey]int
	if threaded {
		seen = map[receiptKey]int{}
	}
	for _, r := range rs {
		if byEvent[r.EventID] == nil {
			byEvent[r.EventID] = map[string][]storage.Receipt{}
			order = append(order, r.EventID)
		}
		list := byEvent[r.EventID][r.Type]
		if threaded {
			// A user may hold receipts at one event in several threads;
			// the event format has room for one per user: the newest.
			k := receiptKey{r.EventID, r.Type, r.UserID}
			if i, ok := seen[k]; ok {
				if r.Pos > list[i].Pos {
					list[i] = r
				}
				continue
			}
			seen[k] = len(list)
		}
		byEvent[r.EventID][r.Type] = append(list, r)
	}
	w.raw(`{"type":"m.receipt","content":{`)
	for i, ev := range order {
		if i > 0 {
			w.raw(",")
		}
		w.str(ev).raw(":{")
		j := 0
		for typ, list := range byEvent[ev] {
			if j > 0 {
				w.raw(",")
			}
			j++
			w.str(typ).raw(":{")
			for k, r := range list {
				if k > 0 {
					w.raw(",")
				}
				w.str(r.UserID).raw(`:{"ts":`).int(r.TS)
				if r.ThreadID != "" {
					w.raw(`,"thread_id":`).str(r.ThreadID)
				}
				w.raw("}")
			}
			w.raw("}")
		}
		w.raw("}")
	}
	w.raw("}}")
}

func (s *Syncer) renderInvite(w *jsonWriter, r *roomResp) {
	w.raw(`{"`).raw(r.section).raw(`_state":{"events":[`)
	for i, e := range r.state {
		if i > 0 {
			w.raw(",")
		}
		var ev struct {
			Content  json.RawMessage `json:"content"`
			Sender   string          `json:"sender"`
			StateKey string          `json:"state_key"`
			Type     string          `json:"type"`
		}
		_ = json.Unmarshal(e.Client, &ev)
		b, _ := json.Marshal(ev)
		w.buf = append(w.buf, b...)
	}
	w.raw("]}}")
}
