package inbox

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// SlidingRequest is one simplified sliding sync call (MSC4186), in the wire
// form Synapse and matrix-rust-sdk use today: required_state as a list of
// [type, state_key] pairs and lists with "ranges".
type SlidingRequest struct {
	UserID, DeviceID string
	ConnID           string
	Pos              string // "" starts the connection afresh
	Timeout          time.Duration
	SetPresence      string

	Lists             map[string]SlidingList
	RoomSubscriptions map[string]SlidingRoomConfig
	Extensions        SlidingExtensions

	// Rules is Request.Rules: the muted rooms, and the ruleset a first
	// response carries as m.push_rules account data. Nil means none.
	Rules func(ctx context.Context, initial bool) (muted map[string]bool, ruleset json.RawMessage, err error)
}

// SlidingRoomConfig says what to send of a room: how many timeline events
// and which state.
type SlidingRoomConfig struct {
	TimelineLimit int
	// RequiredState holds [type, state_key] pairs. "*" matches any type or
	// key; "$ME" is the user's own ID; "$LAZY" (with m.room.member) the
	// senders of the timeline's events.
	RequiredState [][2]string
}

// SlidingList is one list: a window (ranges) into the user's rooms, most
// recent first, after its filters.
type SlidingList struct {
	SlidingRoomConfig
	Ranges [][2]int
	SlidingFilters
}

// SlidingFilters are a list's filters (MSC4186), as Synapse 1.163 reads
// them. Every filter set must match (AND); an unset one matches every
// room. A nil slice is an unset filter; an empty one is set and matches
// nothing (tags, room_types, spaces) or everything (not_tags,
// not_room_types), as in Synapse.
type SlidingFilters struct {
	IsDM        *bool // rooms named (or not) in m.direct
	Invited     *bool // is_invite: rooms the user is invited to (or not)
	IsEncrypted *bool // rooms with (or without) m.room.encryption
	// Spaces: rooms named by an m.space.child event of one of these
	// spaces, among those the user has joined (others are ignored).
	Spaces []string
	// RoomTypes and NotRoomTypes: the create event's content.type; a nil
	// entry (JSON null) is a room without a type. NotRoomTypes wins.
	RoomTypes, NotRoomTypes []*string
	// RoomNameLike: a case-insensitive substring of the room's
	// m.room.name. Nil is unset.
	RoomNameLike *string
	// Tags and NotTags: the room's m.tag account data names one of them.
	// NotTags wins.
	Tags, NotTags []string
}

// needsState reports whether the filters read room state (create,
// encryption, name, space children), which build then loads once for all
// the user's rooms.
func (f SlidingFilters) needsState() bool {
	return f.IsEncrypted != nil || f.Spaces != nil || f.RoomTypes != nil || f.NotRoomTypes != nil || f.RoomNameLike != nil
}

// SlidingExtensions says which extensions the request enables.
type SlidingExtensions struct {
	ToDevice      bool
	ToDeviceSince string // to_device.since: what the device has received
	ToDeviceLimit int
	E2EE          bool
	AccountData   bool
	Receipts      bool
	Typing        bool

	// The rooms account_data, receipts and typing report on: those in the
	// windows of the named lists and the named subscriptions.
	AccountDataScope, ReceiptsScope, TypingScope SlidingScope
}

// SlidingScope is an extension's lists and rooms (MSC3959-3961): the list
// names and subscribed room IDs whose rooms it reports on. "*" names them
// all; both default to ["*"], and an explicit null or [] names none.
type SlidingScope struct {
	Lists, Rooms []string
}

var allScope = []string{"*"}

// Bounds on one request, so a body cannot make the server do unbounded
// work: the MSC's 100 lists, and as many subscriptions, ranges per list and
// required_state pairs per config.
const (
	maxSlidingListName  = 64  // bytes, as Synapse refuses longer list names
	maxSlidingFilterLen = 100 // entries of spaces, tags, room_types and their negations
	maxSlidingScopeLen  = 200 // entries of an extension's lists and rooms
	maxSlidingLists     = 100
	maxSlidingSubs      = 100
	maxSlidingRanges    = 100
	maxSlidingStatePair = 100
	maxSlidingRangeEnd  = 1 << 30
)

// ErrSlidingRequest wraps every refusal of ParseSlidingBody.
var ErrSlidingRequest = errors.New("invalid sliding sync request")

type wireRoomConfig struct {
	TimelineLimit *int              `json:"timeline_limit"`
	RequiredState []json.RawMessage `json:"required_state"`
}

// wireFilters are the list filters Synapse 1.163 reads; other keys are
// ignored, as Synapse ignores them.
type wireFilters struct {
	IsDM         *bool     `json:"is_dm"`
	IsInvite     *bool     `json:"is_invite"`
	IsEncrypted  *bool     `json:"is_encrypted"`
	Spaces       []string  `json:"spaces"`
	RoomTypes    []*string `json:"room_types"`
	NotRoomTypes []*string `json:"not_room_types"`
	RoomNameLike *string   `json:"room_name_like"`
	Tags         []string  `json:"tags"`
	NotTags      []string  `json:"not_tags"`
}

type wireList struct {
	wireRoomConfig
	Ranges  [][]int      `json:"ranges"`
	Filters *wireFilters `json:"filters"`
}

type wireExt struct {
	Enabled *bool   `json:"enabled"`
	Since   *string `json:"since"`
	Limit   *int    `json:"limit"`
	// Lists and Rooms stay raw: absent means ["*"], null means none.
	Lists json.RawMessage `json:"lists"`
	Rooms json.RawMessage `json:"rooms"`
}

// wireSliding is the body. pos and timeout are not read from it: Synapse
// takes them from the query string only, and so does Parley.
type wireSliding struct {
	ConnID            *string                    `json:"conn_id"`
	SetPresence       string                     `json:"set_presence"`
	Lists             map[string]wireList        `json:"lists"`
	RoomSubscriptions map[string]wireRoomConfig  `json:"room_subscriptions"`
	Extensions        map[string]json.RawMessage `json:"extensions"` // unknown ones are ignored, whatever their shape
}

// ParseSlidingBody reads a request body. set_presence may come in the
// body; the query string (clientapi) wins over it. Every refusal wraps
// ErrSlidingRequest and says what is wrong.
func ParseSlidingBody(body []byte) (SlidingRequest, error) {
	var req SlidingRequest
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		body = []byte("{}")
	}
	var w wireSliding
	if err := json.Unmarshal(body, &w); err != nil {
		return req, fmt.Errorf("%w: %v", ErrSlidingRequest, err)
	}
	bad := func(format string, args ...any) (SlidingRequest, error) {
		return SlidingRequest{}, fmt.Errorf("%w: "+format, append([]any{ErrSlidingRequest}, args...)...)
	}
	if len(w.Lists) > maxSlidingLists {
		return bad("more than %d lists", maxSlidingLists)
	}
	if len(w.RoomSubscriptions) > maxSlidingSubs {
		return bad("more than %d room subscriptions", maxSlidingSubs)
	}
	if w.ConnID != nil {
		req.ConnID = *w.ConnID
	}
	if len(req.ConnID) > 255 {
		return bad("conn_id longer than 255 bytes")
	}
	req.SetPresence = w.SetPresence
	if len(w.Lists) > 0 {
		req.Lists = make(map[string]SlidingList, len(w.Lists))
	}
	for name, l := range w.Lists {
		if len(name) > maxSlidingListName {
			return bad("list name longer than %d bytes", maxSlidingListName)
		}
		cfg, err := l.wireRoomConfig.parse()
		if err != nil {
			return bad("list %q: %v", name, err)
		}
		out := SlidingList{SlidingRoomConfig: cfg}
		if len(l.Ranges) > maxSlidingRanges {
			return bad("list %q: more than %d ranges", name, maxSlidingRanges)
		}
		for _, rg := range l.Ranges {
			if len(rg) != 2 || rg[0] < 0 || rg[1] < rg[0] {
				return bad("list %q: a range is two integers, 0 <= start <= end", name)
			}
			out.Ranges = append(out.Ranges, [2]int{min(rg[0], maxSlidingRangeEnd), min(rg[1], maxSlidingRangeEnd)})
		}
		if f := l.Filters; f != nil {
			for _, n := range []int{len(f.Spaces), len(f.RoomTypes), len(f.NotRoomTypes), len(f.Tags), len(f.NotTags)} {
				if n > maxSlidingFilterLen {
					return bad("list %q: a filter lists more than %d entries", name, maxSlidingFilterLen)
				}
			}
			out.SlidingFilters = SlidingFilters{IsDM: f.IsDM, Invited: f.IsInvite, IsEncrypted: f.IsEncrypted,
				Spaces: f.Spaces, RoomTypes: f.RoomTypes, NotRoomTypes: f.NotRoomTypes, RoomNameLike: f.RoomNameLike,
				Tags: f.Tags, NotTags: f.NotTags}
		}
		req.Lists[name] = out
	}
	if len(w.RoomSubscriptions) > 0 {
		req.RoomSubscriptions = make(map[string]SlidingRoomConfig, len(w.RoomSubscriptions))
	}
	for id, c := range w.RoomSubscriptions {
		if !strings.HasPrefix(id, "!") {
			return bad("room subscription %q is not a room ID", id)
		}
		cfg, err := c.parse()
		if err != nil {
			return bad("room subscription %q: %v", id, err)
		}
		req.RoomSubscriptions[id] = cfg
	}
	exts := map[string]wireExt{}
	for _, name := range []string{"to_device", "e2ee", "account_data", "receipts", "typing"} {
		raw, ok := w.Extensions[name]
		if !ok {
			continue
		}
		var e wireExt
		if err := json.Unmarshal(raw, &e); err != nil {
			return bad("extensions.%s: %v", name, err)
		}
		exts[name] = e
	}
	on := func(name string) (wireExt, bool) {
		e, ok := exts[name]
		return e, ok && e.Enabled != nil && *e.Enabled
	}
	if e, ok := on("to_device"); ok {
		req.Extensions.ToDevice, req.Extensions.ToDeviceLimit = true, toDeviceBatch
		if e.Limit != nil && *e.Limit > 0 && *e.Limit < toDeviceBatch {
			req.Extensions.ToDeviceLimit = *e.Limit
		}
		if e.Since != nil {
			if _, err := parseToDeviceSince(*e.Since); err != nil {
				return bad("to_device.since: %v", err)
			}
			req.Extensions.ToDeviceSince = *e.Since
		}
	}
	_, req.Extensions.E2EE = on("e2ee")
	var err error
	scopes := []struct {
		name  string
		on    *bool
		scope *SlidingScope
	}{
		{"account_data", &req.Extensions.AccountData, &req.Extensions.AccountDataScope},
		{"receipts", &req.Extensions.Receipts, &req.Extensions.ReceiptsScope},
		{"typing", &req.Extensions.Typing, &req.Extensions.TypingScope},
	}
	for _, sc := range scopes {
		var e wireExt
		if e, *sc.on = on(sc.name); !*sc.on {
			continue
		}
		if sc.scope.Lists, err = parseScope(e.Lists); err != nil {
			return bad("%s.lists: %v", sc.name, err)
		}
		if sc.scope.Rooms, err = parseScope(e.Rooms); err != nil {
			return bad("%s.rooms: %v", sc.name, err)
		}
	}
	return req, nil
}

// parseScope reads an extension's lists or rooms: absent is ["*"], null
// is none.
func parseScope(raw json.RawMessage) ([]string, error) {
	if len(raw) == 0 {
		return allScope, nil
	}
	var out []string
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, errors.New("not a list of strings")
	}
	if len(out) > maxSlidingScopeLen {
		return nil, fmt.Errorf("more than %d entries", maxSlidingScopeLen)
	}
	return out, nil
}

// has reports whether the scope names the list or subscription name.
func scopeHas(names []string, name string) bool {
	return slices.Contains(names, "*") || slices.Contains(names, name)
}

func (c wireRoomConfig) parse() (SlidingRoomConfig, error) {
	out := SlidingRoomConfig{TimelineLimit: defaultSlidingTimeline}
	if c.TimelineLimit != nil {
		if *c.TimelineLimit < 0 {
			return out, errors.New("timeline_limit is negative")
		}
		out.TimelineLimit = min(*c.TimelineLimit, MaxTimelineLimit)
	}
	if len(c.RequiredState) > maxSlidingStatePair {
		return out, fmt.Errorf("more than %d required_state pairs", maxSlidingStatePair)
	}
	for _, raw := range c.RequiredState {
		var pair []string
		if err := json.Unmarshal(raw, &pair); err != nil || len(pair) != 2 {
			return out, errors.New("a required_state entry is a [type, state_key] pair of strings")
		}
		p := [2]string{pair[0], pair[1]}
		if !slices.Contains(out.RequiredState, p) {
			out.RequiredState = append(out.RequiredState, p)
		}
	}
	return out, nil
}

// parseToDeviceSince reads the to_device extension's since: the stream
// position the device has received to-device messages up to.
func parseToDeviceSince(s string) (int64, error) {
	var n int64
	if s == "" {
		return 0, nil
	}
	if len(s) > 19 {
		return 0, errors.New("not a to-device position")
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, errors.New("not a to-device position")
		}
		n = n*10 + int64(s[i]-'0')
	}
	return n, nil
}
