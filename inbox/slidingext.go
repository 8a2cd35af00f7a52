package inbox

import (
	"context"
	"encoding/json"
	"maps"
	"slices"
	"strconv"

	"github.com/tidwall/gjson"

	"github.com/parley-im/parley/rooms"
	"github.com/parley-im/parley/storage"
)

// extensions fills the to_device, e2ee, account_data, receipts and typing
// extensions. accountData is what build read of the user's account data
// (everything for a new connection, the changes otherwise).
func (sl *Sliding) extensions(ctx context.Context, b *slidingBuild, accountData []storage.AccountData,
	ruleset json.RawMessage, ownNews, peerNews bool) error {
	s, req, prev, next := sl.s, b.req, b.prev, b.next
	ext := req.Extensions
	upto := next.token.Pos

	if ext.ToDevice {
		since, _ := parseToDeviceSince(ext.ToDeviceSince) // checked by ParseSlidingBody
		b.toDeviceNext = max(since, upto)
		// With no own news since the last response and nothing delivered
		// waiting for its acknowledgement, there is nothing to read.
		if prev == nil || ownNews || since != prev.toDeviceNext || prev.toDeviceOwed {
			msgs, err := s.store.ToDeviceFor(ctx, req.UserID, req.DeviceID, since, upto, ext.ToDeviceLimit)
			if err != nil {
				return err
			}
			b.toDevice = msgs
			if len(msgs) == ext.ToDeviceLimit {
				b.toDeviceNext = msgs[len(msgs)-1].Pos
			}
		}
		next.toDeviceNext, next.toDeviceOwed = b.toDeviceNext, len(b.toDevice) > 0
	}

	if ext.E2EE {
		var err error
		if b.otk, b.fallback, err = s.store.OneTimeKeyCounts(ctx, req.UserID, req.DeviceID); err != nil {
			return err
		}
		if _, ok := b.otk["signed_curve25519"]; !ok {
			// Clients read a missing count as "unknown"; zero says "upload".
			if b.otk == nil {
				b.otk = map[string]int{}
			}
			b.otk["signed_curve25519"] = 0
		}
		if prev != nil && peerNews {
			if b.changed, err = s.store.DeviceListChangesSince(ctx, req.UserID, prev.token.Pos, upto); err != nil {
				return err
			}
		}
	}

	if ext.AccountData {
		relevant := b.scope(ext.AccountDataScope)
		hasRules := false
		b.roomData = map[string][]storage.AccountData{}
		for _, a := range accountData {
			switch {
			case a.RoomID == "":
				hasRules = hasRules || a.Type == "m.push_rules"
				b.global = append(b.global, a)
			case relevant[a.RoomID]:
				b.roomData[a.RoomID] = append(b.roomData[a.RoomID], a)
			}
		}
		if prev == nil && !hasRules && len(ruleset) > 0 {
			b.global = append(b.global, storage.AccountData{Type: "m.push_rules", Content: string(ruleset)})
		}
		// A room sent afresh on an older connection gets all its account
		// data, not only the changes.
		if prev != nil && len(b.initial) > 0 {
			all, err := s.store.AccountDataSince(ctx, req.UserID, 0, upto)
			if err != nil {
				return err
			}
			for _, a := range all {
				if a.RoomID != "" && b.initial[a.RoomID] && relevant[a.RoomID] && a.Pos <= prev.token.Pos {
					b.roomData[a.RoomID] = append(b.roomData[a.RoomID], a)
				}
			}
		}
		if prev == nil {
			// A new connection lists every room in view, as Synapse does.
			for _, id := range b.relevant {
				if b.roomData[id] == nil && relevant[id] {
					b.roomData[id] = []storage.AccountData{}
				}
			}
		}
		if len(b.roomData) == 0 {
			b.roomData = nil
		}
	}

	if ext.Receipts {
		b.receipts = map[string][]storage.Receipt{}
		inScope := b.scopeFilter(ext.ReceiptsScope)
		for id, r := range b.rms {
			if !inScope(id) {
				continue
			}
			for _, rc := range r.receipts {
				// A room sent afresh carries the receipts on its timeline's
				// events and the user's own, not the room's whole history.
				if (b.initial[id] || b.grown[id]) && rc.UserID != req.UserID && !inTimeline(r, rc.EventID) {
					continue
				}
				b.receipts[id] = append(b.receipts[id], rc)
			}
		}
		if prev != nil {
			var ids []string
			for _, id := range s.n.receiptNewsIn(b.relevant, prev.token.Pos) {
				if b.rms[id] == nil && !next.invitedTo(id) && inScope(id) {
					ids = append(ids, id)
				}
			}
			if len(ids) > 0 {
				rs, err := s.store.ReceiptsSinceOwnIn(ctx, req.UserID, ids, prev.token.Pos, upto, s.n.quietAmong(ids))
				if err != nil {
					return err
				}
				for _, rc := range rs {
					b.receipts[rc.RoomID] = append(b.receipts[rc.RoomID], rc)
				}
			}
		}
		if len(b.receipts) == 0 {
			b.receipts = nil
		}
	}

	if ext.Typing {
		var joinedIDs, fresh []string
		inScope := b.scopeFilter(ext.TypingScope)
		for _, id := range b.relevant {
			if next.invitedTo(id) || !inScope(id) {
				continue
			}
			joinedIDs = append(joinedIDs, id)
			if prev != nil && b.initial[id] {
				fresh = append(fresh, id)
			}
		}
		var since int64
		if prev != nil {
			since = prev.token.Typing
		}
		b.typing = s.n.TypingIn(req.UserID, joinedIDs, since)
		for id, users := range s.n.TypingIn(req.UserID, fresh, 0) {
			if b.typing == nil {
				b.typing = map[string][]string{}
			}
			b.typing[id] = users
		}
		for id, users := range b.typing {
			// A room seen for the first time has no typing to clear.
			if len(users) == 0 && (prev == nil || b.initial[id]) {
				delete(b.typing, id)
			}
		}
	}
	return nil
}

// scope returns the rooms an extension reports on: those in the windows
// of the lists it names and the subscriptions it names (Synapse's
// find_relevant_room_ids_for_extension).
func (b *slidingBuild) scope(sc SlidingScope) map[string]bool {
	out := map[string]bool{}
	for _, name := range b.listNames {
		if scopeHas(sc.Lists, name) {
			for _, id := range b.windows[name] {
				out[id] = true
			}
		}
	}
	for _, id := range b.subs {
		if scopeHas(sc.Rooms, id) {
			out[id] = true
		}
	}
	return out
}

// scopeFilter is scope as a test; the default scope (every list and
// subscription) admits every room without building the set.
func (b *slidingBuild) scopeFilter(sc SlidingScope) func(string) bool {
	if slices.Equal(sc.Lists, allScope) && slices.Equal(sc.Rooms, allScope) {
		return func(string) bool { return true }
	}
	set := b.scope(sc)
	return func(id string) bool { return set[id] }
}

func (n *slidingSnap) invitedTo(id string) bool {
	_, ok := n.invites[id]
	return ok
}

// receiptNewsIn returns the rooms of ids with a receipt after since, or
// all of them when the notifier's tables do not reach back that far.
func (n *Notifier) receiptNewsIn(ids []string, since int64) []string {
	if since < n.startPos {
		return ids
	}
	n.mu.RLock()
	defer n.mu.RUnlock()
	var out []string
	for _, id := range ids {
		if n.receiptPos[id] > since {
			out = append(out, id)
		}
	}
	return out
}

// render writes the response.
func (b *slidingBuild) render(pos string) []byte {
	w := &jsonWriter{buf: make([]byte, 0, 4096)}
	v := rooms.Viewer{UserID: b.req.UserID, DeviceID: b.req.DeviceID}
	w.raw(`{"pos":`).str(pos)

	// Lists: the count, and the window's rooms as Synapse sends them
	// (one SYNC op per range) for clients that still read ops.
	if len(b.listNames) > 0 { // no lists, no key, as Synapse answers
		w.raw(`,"lists":{`)
	}
	for i, name := range b.listNames {
		if i > 0 {
			w.raw(",")
		}
		w.str(name).raw(`:{"count":`).int(int64(b.counts[name])).raw(`,"ops":[`)
		ids := b.lists[name]
		for j, rg := range b.req.Lists[name].Ranges {
			if j > 0 {
				w.raw(",")
			}
			w.raw(`{"op":"SYNC","range":[`).int(int64(rg[0])).raw(",").int(int64(rg[1])).raw(`],"room_ids":[`)
			for k := rg[0]; k <= rg[1] && k < len(ids); k++ {
				if k > rg[0] {
					w.raw(",")
				}
				w.str(ids[k])
			}
			w.raw("]}")
		}
		w.raw("]}")
	}
	if len(b.listNames) > 0 {
		w.raw("}")
	}

	w.raw(`,"rooms":{`)
	for i, id := range slices.Sorted(maps.Keys(b.rms)) {
		if i > 0 {
			w.raw(",")
		}
		w.str(id).raw(":")
		b.renderRoom(w, b.rms[id], v)
	}
	w.raw("}")

	w.raw(`,"extensions":{`)
	first := true
	sep := func(name string) {
		if !first {
			w.raw(",")
		}
		first = false
		w.str(name).raw(":")
	}
	ext := b.req.Extensions
	if ext.ToDevice {
		sep("to_device")
		w.raw(`{"next_batch":"`).int(b.toDeviceNext).raw(`","events":[`)
		for i, m := range b.toDevice {
			if i > 0 {
				w.raw(",")
			}
			w.raw(`{"sender":`).str(m.Sender).raw(`,"type":`).str(m.Type).raw(`,"content":`).raw(m.Content).raw("}")
		}
		w.raw("]}")
	}
	if ext.E2EE {
		sep("e2ee")
		w.raw(`{"device_one_time_keys_count":{`)
		for i, a := range slices.Sorted(maps.Keys(b.otk)) {
			if i > 0 {
				w.raw(",")
			}
			w.str(a).raw(":").int(int64(b.otk[a]))
		}
		w.raw(`},"device_unused_fallback_key_types":[`)
		for i, a := range b.fallback {
			if i > 0 {
				w.raw(",")
			}
			w.str(a)
		}
		w.raw("]")
		if b.prev != nil {
			w.raw(`,"device_lists":{"changed":[`)
			for i, u := range b.changed {
				if i > 0 {
					w.raw(",")
				}
				w.str(u)
			}
			w.raw(`],"left":[]}`)
		}
		w.raw("}")
	}
	if ext.AccountData {
		sep("account_data")
		w.raw(`{"global":`)
		writeAccountData(w, b.global)
		w.raw(`,"rooms":{`)
		for i, id := range slices.Sorted(maps.Keys(b.roomData)) {
			if i > 0 {
				w.raw(",")
			}
			w.str(id).raw(":")
			writeAccountData(w, b.roomData[id])
		}
		w.raw("}}")
	}
	if ext.Receipts {
		sep("receipts")
		w.raw(`{"rooms":{`)
		for i, id := range slices.Sorted(maps.Keys(b.receipts)) {
			if i > 0 {
				w.raw(",")
			}
			w.str(id).raw(":")
			renderReceipts(w, b.receipts[id])
		}
		w.raw("}}")
	}
	if ext.Typing {
		sep("typing")
		w.raw(`{"rooms":{`)
		for i, id := range slices.Sorted(maps.Keys(b.typing)) {
			if i > 0 {
				w.raw(",")
			}
			w.str(id).raw(`:{"type":"m.typing","content":{"user_ids":[`)
			for j, u := range b.typing[id] {
				if j > 0 {
					w.raw(",")
				}
				w.str(u)
			}
			w.raw("]}}")
		}
		w.raw("}}")
	}
	w.raw("}}")
	return w.bytes()
}

func writeAccountData(w *jsonWriter, data []storage.AccountData) {
	w.raw("[")
	for i, a := range data {
		if i > 0 {
			w.raw(",")
		}
		w.raw(`{"type":`).str(a.Type).raw(`,"content":`).raw(a.Content).raw("}")
	}
	w.raw("]")
}

// renderRoom writes one room's result.
func (b *slidingBuild) renderRoom(w *jsonWriter, r *roomResp, v rooms.Viewer) {
	id := r.id
	initial := b.initial[id]
	w.raw("{")
	bump := b.bumps[id].bump
	w.raw(`"bump_stamp":`).int(bump)
	if initial {
		w.raw(`,"initial":true`)
	}
	if b.next.direct[id] {
		w.raw(`,"is_dm":true`) // absent on other rooms, as Synapse sends it
	}
	if r.section == "invite" {
		// The name and avatar of the stripped state, as Synapse sends them.
		for _, e := range r.state {
			if e.StateKeyOr() != "" {
				continue
			}
			switch e.Type {
			case "m.room.name":
				if n := gjson.GetBytes(e.Client, "content.name").String(); n != "" {
					w.raw(`,"name":`).str(n)
				}
			case "m.room.avatar":
				if a := gjson.GetBytes(e.Client, "content.url").String(); a != "" {
					w.raw(`,"avatar":`).str(a)
				}
			}
		}
		w.raw(`,"invite_state":[`)
		for i, e := range r.state {
			if i > 0 {
				w.raw(",")
			}
			writeStripped(w, e)
		}
		w.raw(`],"notification_count":0,"highlight_count":0}`)
		return
	}
	o := b.out[id]
	st, req, name, avatar := o.state, o.required, o.name, o.avatar
	if name != nil && *name != "" {
		w.raw(`,"name":`).str(*name)
	}
	if avatar != nil && *avatar != "" {
		w.raw(`,"avatar":`).str(*avatar)
	}
	if r.summary != nil {
		if (name == nil || *name == "") && len(r.summary.Heroes) > 0 {
			w.raw(`,"heroes":[`)
			for i, h := range r.summary.Heroes {
				if i > 0 {
					w.raw(",")
				}
				w.raw(`{"user_id":`).str(h)
				for _, e := range st {
					if e.Type == "m.room.member" && e.StateKeyOr() == h {
						if dn := gjson.GetBytes(e.Client, "content.displayname"); dn.Type == gjson.String {
							w.raw(`,"displayname":`).str(dn.String())
						}
						if av := gjson.GetBytes(e.Client, "content.avatar_url"); av.Type == gjson.String {
							w.raw(`,"avatar_url":`).str(av.String())
						}
					}
				}
				w.raw("}")
			}
			w.raw("]")
		}
		w.raw(`,"joined_count":`).int(r.summary.Joined).raw(`,"invited_count":`).int(r.summary.Invited)
	}
	if len(req) > 0 {
		w.raw(`,"required_state":`).events(req, b.now, v)
	}
	if o.noTimeline {
		if r.unread != nil {
			w.raw(`,"notification_count":`).int(r.unread.Notifications).raw(`,"highlight_count":`).int(r.unread.Highlights)
		}
		w.raw("}")
		return
	}
	if len(r.timeline) > 0 || initial {
		w.raw(`,"timeline":`).events(r.timeline, b.now, v)
		prev := r.since
		if len(r.timeline) > 0 {
			prev = r.timeline[0].Pos - 1
		}
		w.raw(`,"prev_batch":"`)
		w.buf = appendRoomToken(w.buf, prev)
		w.raw(`"`)
	}
	if b.grown[id] {
		w.raw(`,"unstable_expanded_timeline":true`)
	}
	live := 0
	if b.prev != nil {
		for _, e := range r.timeline {
			if e.Pos > b.prev.token.Pos {
				live++
			}
		}
	}
	w.raw(`,"limited":`).raw(strconv.FormatBool(r.limited)).raw(`,"num_live":`).int(int64(live))
	if r.unread != nil {
		w.raw(`,"notification_count":`).int(r.unread.Notifications).raw(`,"highlight_count":`).int(r.unread.Highlights)
	}
	w.raw("}")
}

// writeStripped writes e as stripped state: content, sender, state_key and
// type only.
func writeStripped(w *jsonWriter, e storage.Event) {
	c := gjson.GetBytes(e.Client, "content")
	w.raw(`{"content":`)
	if c.Exists() {
		w.raw(c.Raw)
	} else {
		w.raw("{}")
	}
	w.raw(`,"sender":`).str(e.Sender).raw(`,"state_key":`).str(e.StateKeyOr()).raw(`,"type":`).str(e.Type).raw("}")
}
