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
	Ranges  [][2]int
	IsDM    *bool // filters.is_dm: rooms named (or not) in m.direct
	Invited *bool // filters.is_invite: rooms the user is invited to (or not)
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
}

// Bounds on one request, so a body cannot make the server do unbounded
// work: the MSC's 100 lists, and as many subscriptions, ranges per list and
// required_state pairs per config.
const (
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

type wireList struct {
	wireRoomConfig
	Ranges  [][]int `json:"ranges"`
	Filters *struct {
		IsDM     *bool `json:"is_dm"`
		IsInvite *bool `json:"is_invite"`
	} `json:"filters"`
}

type wireExt struct {
	Enabled *bool  `json:"enabled"`
	Since   string `json:"since"`
	Limit   int    `json:"limit"`
}

type wireSliding struct {
	ConnID            string                    `json:"conn_id"`
	Pos               string                    `json:"pos"`
	Timeout           *int64                    `json:"timeout"`
	SetPresence       string                    `json:"set_presence"`
	Lists             map[string]wireList       `json:"lists"`
	RoomSubscriptions map[string]wireRoomConfig `json:"room_subscriptions"`
	Extensions        map[string]wireExt        `json:"extensions"`
}

// ParseSlidingBody reads a request body. Pos, timeout and set_presence may
// come in the body too; the query string (clientapi) wins over them.
// Every refusal wraps ErrSlidingRequest and says what is wrong.
func ParseSlidingBody(body []byte) (SlidingRequest, *int64, error) {
	var req SlidingRequest
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		body = []byte("{}")
	}
	var w wireSliding
	if err := json.Unmarshal(body, &w); err != nil {
		return req, nil, fmt.Errorf("%w: %v", ErrSlidingRequest, err)
	}
	bad := func(format string, args ...any) (SlidingRequest, *int64, error) {
		return SlidingRequest{}, nil, fmt.Errorf("%w: "+format, append([]any{ErrSlidingRequest}, args...)...)
	}
	if len(w.Lists) > maxSlidingLists {
		return bad("more than %d lists", maxSlidingLists)
	}
	if len(w.RoomSubscriptions) > maxSlidingSubs {
		return bad("more than %d room subscriptions", maxSlidingSubs)
	}
	if len(w.ConnID) > 255 {
		return bad("conn_id longer than 255 bytes")
	}
	req.ConnID, req.Pos, req.SetPresence = w.ConnID, w.Pos, w.SetPresence
	if len(w.Lists) > 0 {
		req.Lists = make(map[string]SlidingList, len(w.Lists))
	}
	for name, l := range w.Lists {
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
		if l.Filters != nil {
			out.IsDM, out.Invited = l.Filters.IsDM, l.Filters.IsInvite
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
	on := func(name string) (wireExt, bool) {
		e, ok := w.Extensions[name]
		return e, ok && e.Enabled != nil && *e.Enabled
	}
	if e, ok := on("to_device"); ok {
		req.Extensions.ToDevice, req.Extensions.ToDeviceSince = true, e.Since
		req.Extensions.ToDeviceLimit = e.Limit
		if e.Limit <= 0 || e.Limit > toDeviceBatch {
			req.Extensions.ToDeviceLimit = toDeviceBatch
		}
		if e.Since != "" {
			if _, err := parseToDeviceSince(e.Since); err != nil {
				return bad("to_device.since: %v", err)
			}
		}
	}
	_, req.Extensions.E2EE = on("e2ee")
	_, req.Extensions.AccountData = on("account_data")
	_, req.Extensions.Receipts = on("receipts")
	_, req.Extensions.Typing = on("typing")
	return req, w.Timeout, nil
}

func (c wireRoomConfig) parse() (SlidingRoomConfig, error) {
	var out SlidingRoomConfig
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
