package inbox

import (
	"context"
	"maps"
	"strings"

	"github.com/tidwall/gjson"

	"github.com/parley-im/parley/storage"
)

// List filters (MSC4186, as Synapse 1.163 applies them). They run before
// the ranges and the ordering, over the rooms build already holds, with
// what the connection already has: m.direct and m.tag from the account
// data build reads anyway, and the few state events the filters look at
// (create, encryption, name, space children), read for every room of the
// user in one query the first time a list asks for them and then only for
// rooms with news. No filter queries per room.

// The state the filters read, by type: a bit set of what a request needs
// and a snapshot's attrs hold.
const (
	attrCreate     uint8 = 1 << iota // m.room.create: room_types, not_room_types, is_encrypted (known)
	attrEncryption                   // m.room.encryption: is_encrypted
	attrName                         // m.room.name: room_name_like
	attrChildren                     // m.space.child: spaces
)

var attrTypes = [...]string{"m.room.create", "m.room.encryption", "m.room.name", "m.space.child"}

// stateNeeds returns the state f reads.
func (f SlidingFilters) stateNeeds() uint8 {
	var m uint8
	if f.IsEncrypted != nil {
		m |= attrCreate | attrEncryption
	}
	if f.RoomTypes != nil || f.NotRoomTypes != nil {
		m |= attrCreate
	}
	if f.RoomNameLike != nil {
		m |= attrName
	}
	if f.Spaces != nil {
		m |= attrChildren
	}
	return m
}

// slidingAttrs is what the filters know of a room's state. Immutable once
// stored on a snapshot.
type slidingAttrs struct {
	known     bool   // the create event is known: room_types and is_encrypted can judge the room
	typed     bool   // the create event has a content.type string
	roomType  string // that type
	encrypted bool
	name      string
	children  map[string]bool // rooms named by m.space.child events with a via; nil for none
}

// filterState brings next.attrs up to date for the rooms in all when a
// list's filters read room state; otherwise it carries the previous
// snapshot's attrs over untouched (and their position with them, so rooms
// that change meanwhile are read again when a filter next needs them).
func (sl *Sliding) filterState(ctx context.Context, b *slidingBuild, all []slidingRoom, joined map[string]int64) error {
	next := b.next
	if b.prev != nil {
		next.attrs, next.attrsPos, next.attrsMask = b.prev.attrs, b.prev.attrsPos, b.prev.attrsMask
	}
	var need uint8
	for _, l := range b.req.Lists {
		need |= l.stateNeeds()
	}
	if need == 0 {
		return nil
	}
	mask := next.attrsMask
	all0 := need&^mask != 0 // a type not read before: read every room again, for all types
	if all0 {
		mask |= need
	}
	var stale []string
	for _, r := range all {
		_, ok := next.attrs[r.id]
		if all0 || !ok || (!r.invite && joined[r.id] > next.attrsPos) || (r.invite && r.bump > next.attrsPos) {
			stale = append(stale, r.id)
		}
	}
	upto := next.token.Pos
	if len(stale) == 0 {
		next.attrsPos = upto
		return nil
	}
	var types []string
	for i, t := range attrTypes {
		if mask&(1<<i) != 0 {
			types = append(types, t)
		}
	}
	evs, err := sl.s.store.StateOfTypes(ctx, stale, types)
	if err != nil {
		return err
	}
	attrs := make(map[string]*slidingAttrs, len(all))
	if !all0 {
		for _, r := range all {
			if a, ok := next.attrs[r.id]; ok {
				attrs[r.id] = a
			}
		}
	}
	fresh := make(map[string]*slidingAttrs, len(stale))
	for _, id := range stale {
		fresh[id] = &slidingAttrs{}
	}
	for _, e := range evs {
		a := fresh[e.RoomID]
		if a == nil {
			continue
		}
		content := gjson.GetBytes(e.Client, "content")
		switch e.Type {
		case "m.room.create":
			a.known = true
			if t := content.Get("type"); t.Type == gjson.String {
				a.typed, a.roomType = true, t.String()
			}
		case "m.room.encryption":
			a.encrypted = content.Get("algorithm").Exists()
		case "m.room.name":
			a.name = content.Get("name").String()
		case "m.space.child":
			if via := content.Get("via"); via.IsArray() && len(via.Array()) > 0 {
				if a.children == nil {
					a.children = map[string]bool{}
				}
				a.children[e.StateKeyOr()] = true
			}
		}
	}
	maps.Copy(attrs, fresh)
	next.attrs, next.attrsPos, next.attrsMask = attrs, upto, mask
	return nil
}

// updateTags applies m.tag account data changes to the snapshot's room
// tags (copied on the first change: the previous snapshot's map is
// read-only).
func updateTags(next *slidingSnap, data []storage.AccountData) {
	cloned := false
	for _, a := range data {
		if a.RoomID == "" || a.Type != "m.tag" {
			continue
		}
		if !cloned {
			next.tags, cloned = maps.Clone(next.tags), true
			if next.tags == nil {
				next.tags = map[string][]string{}
			}
		}
		var names []string
		gjson.Get(a.Content, "tags").ForEach(func(k, _ gjson.Result) bool {
			names = append(names, k.String())
			return true
		})
		if len(names) == 0 {
			delete(next.tags, a.RoomID)
		} else {
			next.tags[a.RoomID] = names
		}
	}
}

// listFilter is one list's filters, with its spaces' children worked out.
type listFilter struct {
	f      SlidingFilters
	snap   *slidingSnap
	spaces map[string]bool // rooms in one of the filter's joined spaces; nil without a spaces filter
}

func newListFilter(l SlidingList, snap *slidingSnap, joined map[string]int64) listFilter {
	lf := listFilter{f: l.SlidingFilters, snap: snap}
	if l.Spaces != nil {
		lf.spaces = map[string]bool{}
		for _, sp := range l.Spaces {
			if _, ok := joined[sp]; !ok {
				continue // unknown, or not joined: ignored, as MSC4186 says
			}
			if a := snap.attrs[sp]; a != nil {
				maps.Copy(lf.spaces, a.children)
			}
		}
	}
	return lf
}

// matches reports whether r passes every filter.
func (lf listFilter) matches(r slidingRoom) bool {
	f, snap := lf.f, lf.snap
	if f.Invited != nil && *f.Invited != r.invite {
		return false
	}
	if f.IsDM != nil && *f.IsDM != snap.direct[r.id] {
		return false
	}
	if lf.spaces != nil && !lf.spaces[r.id] {
		return false
	}
	if f.needsState() {
		a := snap.attrs[r.id]
		if a == nil {
			return false // cannot happen: filterState read every room
		}
		if f.IsEncrypted != nil && (!a.known || a.encrypted != *f.IsEncrypted) {
			return false
		}
		if f.RoomTypes != nil || f.NotRoomTypes != nil {
			// A room whose create event is unknown is left out, as Synapse does.
			if !a.known || (f.RoomTypes != nil && !hasType(f.RoomTypes, a)) || hasType(f.NotRoomTypes, a) {
				return false
			}
		}
		if f.RoomNameLike != nil && !containsFold(a.name, *f.RoomNameLike) {
			return false
		}
	}
	if f.Tags != nil || f.NotTags != nil {
		tags := snap.tags[r.id]
		if f.Tags != nil && !anyIn(tags, f.Tags) {
			return false
		}
		if anyIn(tags, f.NotTags) {
			return false
		}
	}
	return true
}

// hasType reports whether the room's type is among types (a nil entry is
// "no type").
func hasType(types []*string, a *slidingAttrs) bool {
	for _, t := range types {
		if (t == nil && !a.typed) || (t != nil && a.typed && *t == a.roomType) {
			return true
		}
	}
	return false
}

func anyIn(have, want []string) bool {
	for _, h := range have {
		for _, w := range want {
			if h == w {
				return true
			}
		}
	}
	return false
}

// containsFold is a case-insensitive strings.Contains: MSC4186's
// room_name_like is SQL's LIKE '%term%'.
func containsFold(s, sub string) bool {
	return s != "" && strings.Contains(strings.ToLower(s), strings.ToLower(sub))
}
