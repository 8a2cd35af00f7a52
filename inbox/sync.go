package inbox

import (
	"context"
	"encoding/json"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/parley-im/parley/storage"
)

// Syncer answers /sync.
type Syncer struct {
	// Static after construction.
	store        SyncStore
	n            *Notifier
	presence     *Presence
	contacts     Contacts // may be nil
	log          *slog.Logger
	defaultLimit int
	now          func() time.Time

	acks toDeviceAcks // devices whose delivered to-device rows await deletion

	bodies  sync.Pool // *[]byte response buffers handed back by Release; safe for concurrent use
	holders sync.Pool // empty *[]byte for Release to wrap a buffer in, so that it allocates none
	bundler Bundler   // static after construction; nil for none

	noFilter *Filter // static after construction; the empty filter, parsed, for syncs without one

	epoch    string       // static after construction; see SyncerConfig.Epoch
	channels *ChannelFeed // static after construction; nil without channels (channels.go)
	moments  *MomentsFeed // static after construction; nil without moments (moments.go)
}

// SyncerConfig wires a Syncer.
type SyncerConfig struct {
	Store    SyncStore
	Notifier *Notifier
	Presence *Presence
	// Contacts adds friends to the users whose presence a sync reports;
	// nil means room peers only.
	Contacts Contacts
	Logger   *slog.Logger
	// DefaultTimelineLimit applies when the filter sets none. Zero means 10.
	DefaultTimelineLimit int
	// Bundler adds relation bundles to timelines (bundle.go); nil adds none.
	Bundler Bundler
	// Epoch is the store's epoch (storage.Store.Epoch), stamped on every
	// next_batch; "" stamps none and takes every token as current.
	Epoch string
	// Channels adds the io.parley.channels section (channels.go); nil for none.
	Channels *ChannelFeed
	// Moments adds the io.parley.moments section (moments.go); nil for none.
	Moments *MomentsFeed
}

// NewSyncer builds a Syncer.
func NewSyncer(cfg SyncerConfig) *Syncer {
	if cfg.DefaultTimelineLimit <= 0 {
		cfg.DefaultTimelineLimit = 10
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Syncer{store: cfg.Store, n: cfg.Notifier, presence: cfg.Presence, contacts: cfg.Contacts, log: cfg.Logger,
		defaultLimit: cfg.DefaultTimelineLimit, now: time.Now, bundler: cfg.Bundler, epoch: cfg.Epoch, channels: cfg.Channels, moments: cfg.Moments}
	s.noFilter, _ = ParseFilter([]byte("{}")) // cannot fail
	return s
}

// Request is one /sync call.
type Request struct {
	UserID, DeviceID string
	Since            *Token // nil for an initial sync
	Filter           *Filter
	FullState        bool
	Timeout          time.Duration
	SetPresence      string
	// Rules loads the user's push rules when a response is built (never
	// for a long-poll that ends with nothing new): the rooms they mute,
	// which count only highlights since mentions are override rules, and
	// the ruleset ({"global": ...}) that an initial sync sends as
	// m.push_rules account data unless the user stored one. Nil means
	// the server defaults and no ruleset in sync.
	Rules func(ctx context.Context, initial bool) (muted map[string]bool, ruleset json.RawMessage, err error)
}

// Sync waits for news (an incremental sync with a timeout) and builds the
// response. A sync that times out with nothing new makes no query at all.
//
// A wake-up can bring nothing this request shows: a peer's presence under
// a filter that drops presence, a receipt in a room filtered out. Such a
// long-poll goes back to waiting from the newer position rather than
// answering empty, so a presence storm in a big room does not make every
// member's client come back for nothing.
func (s *Syncer) Sync(ctx context.Context, req Request) ([]byte, error) {
	if req.Filter == nil {
		req.Filter = s.noFilter
	}
	if req.Since != nil && s.StaleToken(*req.Since) {
		req.Since = nil // from before a restore: a fresh initial sync
	}
	s.presence.Synced(ctx, req.UserID, req.DeviceID, req.SetPresence, s.now())
	waits := req.Since != nil && !req.FullState && req.Timeout > 0
	deadline := time.Now().Add(req.Timeout)
	for {
		if waits && !s.n.HasNews(req.UserID, *req.Since) {
			timer := time.NewTimer(time.Until(deadline))
			s.n.Wait(ctx, req.UserID, *req.Since, timer.C)
			timer.Stop()
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if !s.n.HasNews(req.UserID, *req.Since) {
				return s.emptyResponse(Token{Pos: req.Since.Pos, Typing: req.Since.Typing, ToDevice: req.Since.ToDevice, Chan: req.Since.Chan, Moments: req.Since.Moments}), nil
			}
		}
		body, next, empty, err := s.build(ctx, req)
		if err != nil || !empty || !waits {
			return body, err
		}
		if !time.Now().Before(deadline) {
			return body, nil // time is up: answer with the newer token
		}
		s.Release(body)
		req.Since = &next
	}
}

func (s *Syncer) emptyResponse(t Token) []byte {
	w := s.writer(128)
	w.raw(`{"next_batch":"`)
	t.Epoch = s.epoch
	w.buf = t.appendTo(w.buf)
	w.raw(`","rooms":{"join":{},"invite":{},"knock":{},"leave":{}}}`)
	return w.bytes()
}

// StaleToken reports whether t was issued in another store epoch, such as
// before the store was restored from a backup. Its positions mean nothing
// now: the holder gets a fresh initial sync, neither an error nor a silent
// step backwards. Tokens without an epoch count as current.
func (s *Syncer) StaleToken(t Token) bool {
	return t.Epoch != "" && s.epoch != "" && t.Epoch != s.epoch
}

// roomResp gathers one room's parts of a response.
type roomResp struct {
	id         string
	section    string // join, invite, knock, leave
	newlyJoin  bool   // joined after the token: history from the start, full state
	fullState  bool   // full_state=true: the whole state, timeline still from the token
	since      int64
	upto       int64
	timeline   []storage.Event
	limited    bool
	state      []storage.Event
	typing     []string
	typingSet  bool
	receipts   []storage.Receipt
	accountDat []storage.AccountData
	unread     *storage.Unread
	threads    map[string]storage.Unread // unread per thread root, when the filter asks; read-only
	summary    *storage.Summary
	stateEnd   int64 // leave rooms: rooms.Visibility.StateEnd, set with the timeline's visibility
	roomPos    int64 // joined rooms: the room's latest position as of upto (Notifier.JoinedRooms)

	// The shared room delta (delta.go): delta is the one this response
	// copies; otherwise shareable says the room's timeline and state may be
	// rendered once for everyone under shareKey, read at deltaGen.
	delta     *roomDelta
	shareable bool
	shareKey  deltaKey
	deltaGen  uint64
}

// build makes the response for req. empty reports that it carries nothing
// but next, the token to continue from.
func (s *Syncer) build(ctx context.Context, req Request) ([]byte, Token, bool, error) {
	f := req.Filter
	limit := f.Room.Timeline.Limit
	if limit <= 0 {
		limit = s.defaultLimit
	}
	joined, upto := s.n.JoinedRooms(req.UserID)
	typingUpto := s.n.TypingPos()
	var since Token
	initial := req.Since == nil
	if !initial {
		since = *req.Since
	}

	// Streams with no news since the token cost no query (see StreamNews).
	ownNews, peerNews := true, true
	if !initial {
		ownNews, peerNews = s.n.StreamNews(req.UserID, since.Pos)
	}

	// Which rooms: membership changes from the store, room news from memory.
	var changes []storage.Membership
	var err error
	if ownNews {
		if changes, err = s.store.MembershipChanges(ctx, req.UserID, since.Pos, upto); err != nil {
			return nil, Token{}, false, err
		}
	}
	rooms := map[string]*roomResp{}
	get := func(id, section string) *roomResp {
		r := rooms[id]
		if r == nil {
			r = &roomResp{id: id, section: section, since: since.Pos, upto: upto}
			rooms[id] = r
		}
		return r
	}
	for _, m := range changes {
		if !f.Room.AllowsRoom(m.RoomID) || m.Forgotten {
			continue
		}
		switch m.Membership {
		case "join":
			if _, ok := joined[m.RoomID]; ok {
				r := get(m.RoomID, "join")
				r.newlyJoin, r.since = true, 0
			}
		case "invite", "knock":
			get(m.RoomID, m.Membership)
		case "leave", "ban":
			if _, ok := joined[m.RoomID]; ok {
				continue
			}
			if initial && !f.Room.IncludeLeave {
				continue
			}
			r := get(m.RoomID, "leave")
			r.upto = m.Pos
			if initial {
				r.since = 0
			}
		}
	}
	for id, pos := range joined {
		if !f.Room.AllowsRoom(id) {
			continue
		}
		if initial {
			r := get(id, "join")
			r.newlyJoin, r.since = true, 0
		} else if req.FullState {
			get(id, "join").fullState = true
		} else if pos > since.Pos {
			get(id, "join").roomPos = pos
		}
	}
	// Without typing news for the user there is no room list to build.
	if s.typingNews(req.UserID, since, initial, rooms) {
		for id, users := range s.n.TypingIn(req.UserID, keys(joined), since.Typing) {
			if f.Room.AllowsRoom(id) {
				r := get(id, "join")
				r.typing, r.typingSet = users, true
			}
		}
	}

	// Account data first: room account data can add rooms to the response.
	var accountData []storage.AccountData
	if ownNews {
		if accountData, err = s.store.AccountDataSince(ctx, req.UserID, since.Pos, upto); err != nil {
			return nil, Token{}, false, err
		}
	}
	var globalData []storage.AccountData
	hasPushRules := false
	for _, a := range accountData {
		if a.Type == "m.push_rules" && a.RoomID == "" {
			hasPushRules = true
		}
		if a.RoomID == "" {
			if f.AccountData.Allows(a.Type, "") {
				globalData = append(globalData, a)
			}
			continue
		}
		if _, ok := joined[a.RoomID]; ok && f.Room.AllowsRoom(a.RoomID) && f.Room.AccountData.Allows(a.Type, "") {
			r := get(a.RoomID, "join")
			r.accountDat = append(r.accountDat, a)
		}
	}

	var muted map[string]bool
	if req.Rules != nil {
		var ruleset json.RawMessage
		if muted, ruleset, err = req.Rules(ctx, initial); err != nil {
			return nil, Token{}, false, err
		}
		if initial && !hasPushRules && len(ruleset) > 0 && req.Filter.AccountData.Allows("m.push_rules", "") {
			globalData = append(globalData, storage.AccountData{Type: "m.push_rules", Content: string(ruleset)})
		}
	}
	// Members woken by one commit share the room's rendered timeline and
	// state (delta.go); when every room comes so, only each member's own
	// parts are left to fill.
	s.findDeltas(req, rooms, limit)
	if ids, ok := allShared(rooms); ok {
		err = s.fillRoomTails(ctx, req, rooms, ids, false, muted)
	} else {
		err = s.fillRooms(ctx, req, rooms, limit, muted)
	}
	if err != nil {
		return nil, Token{}, false, err
	}
	next := Token{Pos: upto, Typing: typingUpto}
	// With no own news since the token, no to-device message arrived, and
	// a token that acknowledged everything leaves nothing queued: a message
	// in a big room then costs its members no to-device query. Rows the
	// token acknowledged are deleted by the next sync that reads, so a
	// device whose last sync delivered messages reads once more (acks).
	var toDevice []storage.ToDevice
	if initial || ownNews || since.toDeviceAcked() < since.Pos || s.acks.isPending(req.UserID, req.DeviceID) {
		if toDevice, err = s.store.ToDeviceFor(ctx, req.UserID, req.DeviceID, since.toDeviceAcked(), upto, toDeviceBatch); err != nil {
			return nil, Token{}, false, err
		}
		s.acks.delivered(req.UserID, req.DeviceID, len(toDevice))
	}
	if len(toDevice) == toDeviceBatch {
		next.ToDevice = toDevice[len(toDevice)-1].Pos
	}
	var presence []storage.Presence
	var changed []string
	if !initial && peerNews {
		if f.Presence.AllowsType("m.presence") {
			if presence, err = s.store.PresenceSinceExcept(ctx, req.UserID, since.Pos, upto, s.friends(ctx, req.UserID),
				keysOf(s.n.QuietRooms(joined))); err != nil {
				return nil, Token{}, false, err
			}
		}
		if changed, err = s.store.DeviceListChangesSince(ctx, req.UserID, since.Pos, upto); err != nil {
			return nil, Token{}, false, err
		}
	}
	var left []string
	if !initial {
		if left, err = s.deviceListsLeft(ctx, req.UserID, since.Pos, upto, joined, changes); err != nil { // devicelists.go
			return nil, Token{}, false, err
		}
		changed = withoutAny(changed, left)
	}
	var notices []storage.UserNotice
	if !initial && ownNews {
		// An initial sync carries no notices: the relationship API gives the
		// current state, and a notice is news about a change.
		if notices, err = s.store.UserNoticesSince(ctx, req.UserID, since.Pos, upto, noticeBatch); err != nil {
			return nil, Token{}, false, err
		}
	}
	otk, fallback, err := s.store.OneTimeKeyCounts(ctx, req.UserID, req.DeviceID)
	if err != nil {
		return nil, Token{}, false, err
	}
	if err := s.bundle(ctx, req, rooms, initial); err != nil { // bundle.go
		return nil, Token{}, false, err
	}
	chans, chanUpto, err := s.channelSection(ctx, req.UserID, initial, since.Chan) // channels.go
	if err != nil {
		return nil, Token{}, false, err
	}
	next.Chan = chanUpto
	moms, momUpto, err := s.momentsSection(ctx, req.UserID, initial, since.Moments) // moments.go
	if err != nil {
		return nil, Token{}, false, err
	}
	next.Moments = momUpto
	empty := len(rooms) == 0 && len(globalData) == 0 && len(presence) == 0 && len(toDevice) == 0 &&
		len(changed) == 0 && len(notices) == 0 && len(left) == 0 && chans == nil && moms == nil
	return s.render(ctx, req, next, rooms, userStreams{globalData: globalData, presence: presence, toDevice: toDevice,
		changed: changed, left: left, otk: otk, fallback: fallback, notices: notices, channels: chans, moments: moms}), next, empty, nil
}

const toDeviceBatch = 100

// typingNews reports whether TypingIn may find anything for the user: an
// initial sync, a newly joined room (its typing is sent whatever the
// token), or a typing change that woke the user since the token.
func (s *Syncer) typingNews(user string, since Token, initial bool, rms map[string]*roomResp) bool {
	if initial {
		return true
	}
	for _, r := range rms {
		if r.newlyJoin {
			return true
		}
	}
	s.n.mu.RLock()
	defer s.n.mu.RUnlock()
	return s.n.userTyping[user] > since.Typing
}

// friends are the user's friends for presence; if the graph cannot be
// asked, the sync goes on with room peers only.
func (s *Syncer) friends(ctx context.Context, user string) []string {
	if s.contacts == nil {
		return nil
	}
	fs, err := s.contacts.Friends(ctx, user)
	if err != nil {
		s.log.Warn("sync: friends for presence", "user", user, "err", err)
	}
	return fs
}

// noticeBatch bounds the notices one sync carries; a client that was away
// long enough to miss more asks the relationship API for the current state.
const noticeBatch = 1000

// userStreams is what a sync carries outside rooms.
type userStreams struct {
	globalData []storage.AccountData
	presence   []storage.Presence
	toDevice   []storage.ToDevice
	changed    []string
	left       []string // device_lists.left: users who no longer share a room (devicelists.go)
	otk        map[string]int
	fallback   []string
	notices    []storage.UserNotice
	channels   []byte // io.parley.channels, JSON; nil for none
	moments    []byte // io.parley.moments, JSON; nil for none
}

func keys(m map[string]int64) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// stripped reports whether the room is shown as stripped state only (the
// spec's invite_state and knock_state): the user is invited or knocking,
// and sees no timeline.
func (r *roomResp) stripped() bool { return r.section == "invite" || r.section == "knock" }
