package directory

import (
	"context"
	"fmt"
	"strings"

	"github.com/tidwall/gjson"

	"github.com/parley-im/parley/storage"
)

// Published room list limits.
const (
	DefaultLimit = 100
	MaxLimit     = 500
	// maxScan bounds how many published rooms one filtered search
	// examines; past it the search returns what it has and a next_batch.
	maxScan = 2000
	// maxCountEstimate caps the scan behind the total count estimate.
	maxCountEstimate = 10000
)

// PublicRoom is one entry of the published room directory
// (PublishedRoomsChunk in the spec).
type PublicRoom struct {
	RoomID           string `json:"room_id"`
	NumJoinedMembers int    `json:"num_joined_members"`
	WorldReadable    bool   `json:"world_readable"`
	GuestCanJoin     bool   `json:"guest_can_join"`
	Name             string `json:"name,omitempty"`
	Topic            string `json:"topic,omitempty"`
	CanonicalAlias   string `json:"canonical_alias,omitempty"`
	AvatarURL        string `json:"avatar_url,omitempty"`
	JoinRule         string `json:"join_rule,omitempty"`
	RoomType         string `json:"room_type,omitempty"`
}

// Filter narrows a search of the published rooms (the POST body's
// filter).
type Filter struct {
	GenericSearchTerm string    `json:"generic_search_term"`
	RoomTypes         []*string `json:"room_types"` // null stands for "no type"
}

// Matches reports whether a room passes the filter: the search term,
// case-insensitively, in its name, topic or canonical alias, and its type
// among those asked for.
func (f *Filter) Matches(p *PublicRoom) bool {
	if term := strings.ToLower(strings.TrimSpace(f.GenericSearchTerm)); term != "" {
		if !strings.Contains(strings.ToLower(p.Name), term) && !strings.Contains(strings.ToLower(p.Topic), term) &&
			!strings.Contains(strings.ToLower(p.CanonicalAlias), term) {
			return false
		}
	}
	if len(f.RoomTypes) == 0 {
		return true
	}
	for _, t := range f.RoomTypes {
		if (t == nil && p.RoomType == "") || (t != nil && *t == p.RoomType) {
			return true
		}
	}
	return false
}

// Summarize builds a directory entry from a room's current state.
func Summarize(roomID string, state []storage.Event) PublicRoom {
	p := PublicRoom{RoomID: roomID}
	str := func(e *storage.Event, path string) string {
		if v := gjson.GetBytes(e.Client, path); v.Type == gjson.String {
			return v.Str
		}
		return ""
	}
	for i := range state {
		e := &state[i]
		if e.Type == "m.room.member" {
			if e.Membership == "join" {
				p.NumJoinedMembers++
			}
			continue
		}
		if e.StateKeyOr() != "" {
			continue
		}
		switch e.Type {
		case "m.room.name":
			p.Name = str(e, "content.name")
		case "m.room.topic":
			p.Topic = str(e, "content.topic")
		case "m.room.canonical_alias":
			p.CanonicalAlias = str(e, "content.alias")
		case "m.room.avatar":
			p.AvatarURL = str(e, "content.url")
		case "m.room.join_rules":
			p.JoinRule = str(e, "content.join_rule")
		case "m.room.create":
			p.RoomType = str(e, "content.type")
		case "m.room.history_visibility":
			p.WorldReadable = str(e, "content.history_visibility") == "world_readable"
		case "m.room.guest_access":
			p.GuestCanJoin = str(e, "content.guest_access") == "can_join"
		}
	}
	return p
}

// Page is one page of the published room list.
type Page struct {
	Rooms []PublicRoom
	// Next resumes the list after this page; "" at its end.
	Next string
	// TotalEstimate counts the published rooms, up to a cap.
	TotalEstimate int
}

// PublicRooms pages through published rooms in room ID order; since is the
// last room ID of the previous page. limit <= 0 means DefaultLimit; it is
// capped at MaxLimit. server, when not "", must be this server: Parley
// lists no other server's rooms.
func (s *Service) PublicRooms(ctx context.Context, server string, limit int, since string, f Filter) (Page, error) {
	if server != "" && server != s.serverName {
		return Page{}, fail(ErrInvalidParam, "Parley can only list the rooms of "+s.serverName)
	}
	if limit <= 0 {
		limit = DefaultLimit
	}
	limit = min(limit, MaxLimit)
	chunk := []PublicRoom{}
	cursor, next, scanned := since, "", 0
scan:
	for scanned < maxScan {
		page := limit + 1
		ids, err := s.store.PublishedRooms(ctx, cursor, page)
		if err != nil {
			return Page{}, fmt.Errorf("list published rooms: %w", err)
		}
		state, err := s.store.CurrentStateOf(ctx, ids)
		if err != nil {
			return Page{}, fmt.Errorf("state of published rooms: %w", err)
		}
		byRoom := map[string][]storage.Event{}
		for _, e := range state {
			byRoom[e.RoomID] = append(byRoom[e.RoomID], e)
		}
		for _, id := range ids {
			scanned++
			cursor = id
			p := Summarize(id, byRoom[id])
			if !f.Matches(&p) {
				continue
			}
			if len(chunk) == limit {
				// A further match exists: resume after the last one sent.
				next = chunk[len(chunk)-1].RoomID
				break scan
			}
			chunk = append(chunk, p)
		}
		if len(ids) < page {
			break
		}
		if scanned >= maxScan {
			next = cursor // the search stopped early; go on from here
		}
	}
	total, err := s.store.PublishedRooms(ctx, "", maxCountEstimate)
	if err != nil {
		return Page{}, fmt.Errorf("count published rooms: %w", err)
	}
	return Page{Rooms: chunk, Next: next, TotalEstimate: len(total)}, nil
}
