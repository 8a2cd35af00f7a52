package inbox

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// Filter is the subset of the Matrix filter language Parley applies.
type Filter struct {
	EventFields []string    `json:"event_fields,omitempty"`
	EventFormat string      `json:"event_format,omitempty"`
	Presence    EventFilter `json:"presence"`
	AccountData EventFilter `json:"account_data"`
	Room        RoomFilter  `json:"room"`

	// shareKey is the room timeline and state parts of the filter, as
	// canonical JSON: syncs whose filters have the same one may share a
	// rendered room delta (delta.go). Set by ParseFilter; empty (a filter
	// built otherwise) shares nothing.
	shareKey string
}

// RoomFilter filters the rooms section.
type RoomFilter struct {
	Rooms        *[]string       `json:"rooms,omitempty"`
	NotRooms     []string        `json:"not_rooms,omitempty"`
	IncludeLeave bool            `json:"include_leave,omitempty"`
	Timeline     RoomEventFilter `json:"timeline"`
	State        RoomEventFilter `json:"state"`
	Ephemeral    RoomEventFilter `json:"ephemeral"`
	AccountData  RoomEventFilter `json:"account_data"`
}

// EventFilter selects events by type and sender.
type EventFilter struct {
	Limit      int       `json:"limit,omitempty"`
	Types      *[]string `json:"types,omitempty"`
	NotTypes   []string  `json:"not_types,omitempty"`
	Senders    *[]string `json:"senders,omitempty"`
	NotSenders []string  `json:"not_senders,omitempty"`
}

// RoomEventFilter adds the room-event options.
type RoomEventFilter struct {
	EventFilter
	LazyLoadMembers         bool      `json:"lazy_load_members,omitempty"`
	IncludeRedundantMembers bool      `json:"include_redundant_members,omitempty"`
	Rooms                   *[]string `json:"rooms,omitempty"`
	NotRooms                []string  `json:"not_rooms,omitempty"`
	ContainsURL             *bool     `json:"contains_url,omitempty"`
	// UnreadThreadNotifications, on the room timeline filter, splits the
	// unread counts: unread_notifications for the main timeline and
	// unread_thread_notifications per thread root. Off, the room's counts
	// add up every thread.
	UnreadThreadNotifications bool `json:"unread_thread_notifications,omitempty"`
}

// MaxTimelineLimit caps a client's timeline limit so one sync cannot ask
// for an unbounded amount of history.
const MaxTimelineLimit = 1000

// ParseFilter decodes and checks a filter definition.
func ParseFilter(raw []byte) (*Filter, error) {
	var f Filter
	if err := json.Unmarshal(raw, &f); err != nil {
		return nil, fmt.Errorf("filter: %w", err)
	}
	if f.EventFormat != "" && f.EventFormat != "client" && f.EventFormat != "federation" {
		return nil, fmt.Errorf("filter: event_format must be client or federation")
	}
	for _, l := range []int{f.Room.Timeline.Limit, f.Room.State.Limit, f.Presence.Limit, f.AccountData.Limit} {
		if l < 0 {
			return nil, fmt.Errorf("filter: limit must not be negative")
		}
	}
	if f.Room.Timeline.Limit > MaxTimelineLimit {
		f.Room.Timeline.Limit = MaxTimelineLimit
	}
	key, err := json.Marshal([2]RoomEventFilter{f.Room.Timeline, f.Room.State})
	if err != nil {
		return nil, fmt.Errorf("filter: %w", err)
	}
	f.shareKey = string(key)
	return &f, nil
}

// matchType applies the spec's type matching, where '*' matches any run.
func matchType(pattern, typ string) bool {
	if !strings.Contains(pattern, "*") {
		return pattern == typ
	}
	parts := strings.Split(pattern, "*")
	if !strings.HasPrefix(typ, parts[0]) {
		return false
	}
	typ = typ[len(parts[0]):]
	for i := 1; i < len(parts); i++ {
		if i == len(parts)-1 {
			return strings.HasSuffix(typ, parts[i])
		}
		j := strings.Index(typ, parts[i])
		if j < 0 {
			return false
		}
		typ = typ[j+len(parts[i]):]
	}
	return true
}

// Allows reports whether an event of this type and sender passes.
// AllowsType reports whether some sender's events of type typ pass, so a
// sync can skip reading a stream the filter drops whole.
func (f *EventFilter) AllowsType(typ string) bool {
	for _, p := range f.NotTypes {
		if matchType(p, typ) {
			return false
		}
	}
	if f.Types != nil && !slices.ContainsFunc(*f.Types, func(p string) bool { return matchType(p, typ) }) {
		return false
	}
	return f.Senders == nil || len(*f.Senders) > 0
}

func (f *EventFilter) Allows(typ, sender string) bool {
	for _, p := range f.NotTypes {
		if matchType(p, typ) {
			return false
		}
	}
	if f.Types != nil {
		ok := false
		for _, p := range *f.Types {
			if matchType(p, typ) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	for _, s := range f.NotSenders {
		if s == sender {
			return false
		}
	}
	if f.Senders != nil {
		for _, s := range *f.Senders {
			if s == sender {
				return true
			}
		}
		return false
	}
	return true
}

// AllowsRoom reports whether the room filter lets room through.
func (f *RoomFilter) AllowsRoom(room string) bool {
	for _, r := range f.NotRooms {
		if r == room {
			return false
		}
	}
	if f.Rooms == nil {
		return true
	}
	for _, r := range *f.Rooms {
		if r == room {
			return true
		}
	}
	return false
}
