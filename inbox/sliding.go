package inbox

import (
	"context"
	"encoding/json"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/tidwall/gjson"

	"github.com/parley-im/parley/storage"
)

// Sliding answers simplified sliding sync (MSC4186). It is a view over the
// same machinery as /sync: the notifier says which rooms moved and wakes
// long-polls, and Syncer.fillRooms loads each room's timeline, state,
// counts and receipts, the same batched queries and caches. What Sliding
// adds is the room list (ordered by recency, cut into windows) and the
// connection state that lets a pos send only what changed.
type Sliding struct {
	s     *Syncer       // static
	conns *slidingConns // safe for concurrent use

	lazy, full *Filter // static: fillRooms filters, lazy-loaded members or all
}

// NewSliding builds a Sliding over s.
func NewSliding(s *Syncer) *Sliding {
	lazy, _ := ParseFilter([]byte(`{"room":{"state":{"lazy_load_members":true}}}`)) // cannot fail
	lazy.shareKey = ""                                                              // fillRooms alone, never the shared deltas
	full, _ := ParseFilter([]byte(`{}`))
	full.shareKey = ""
	return &Sliding{s: s, conns: newSlidingConns(), lazy: lazy, full: full}
}

// Connections returns how many sliding sync connections are held.
func (sl *Sliding) Connections() int { return sl.conns.count() }

// defaultSlidingTimeline is the timeline limit of a room config that sets
// none (Synapse refuses such a config; Parley is lenient). An explicit 0
// sends no timeline, as Synapse does.
const defaultSlidingTimeline = 1

// Sync answers one request: at once for a new connection or a zero
// timeout, otherwise when something the request shows has changed or the
// timeout is up, woken by the same notifier as /sync.
func (sl *Sliding) Sync(ctx context.Context, req SlidingRequest) ([]byte, error) {
	s := sl.s
	key := slidingKey{req.UserID, req.DeviceID, req.ConnID}
	base, err := sl.conns.lookup(key, req.Pos, s.now())
	if err != nil {
		return nil, err
	}
	s.presence.Synced(ctx, req.UserID, req.DeviceID, req.SetPresence, s.now())
	deadline := time.Now().Add(req.Timeout)
	from := base
	for {
		last := false // no more waiting: time is up, or the server stops
		if from != nil && req.Timeout > 0 && !s.n.HasNews(req.UserID, from.token) && time.Now().Before(deadline) {
			timer := time.NewTimer(time.Until(deadline))
			s.n.Wait(ctx, req.UserID, from.token, timer.C)
			timer.Stop()
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			last = !s.n.HasNews(req.UserID, from.token)
		}
		b, err := sl.build(ctx, req, from)
		if err != nil {
			return nil, err
		}
		if last || !b.empty || from == nil || req.Timeout <= 0 || !time.Now().Before(deadline) {
			pos := sl.conns.store(key, base, b.next, s.now())
			return b.render(pos), nil
		}
		// Nothing this request shows: wait again from the newer position,
		// as /sync does.
		from = b.next
	}
}

// slidingRoom is one room of the user's list.
type slidingRoom struct {
	id     string
	bump   int64
	invite bool
}

// slidingBuild is one response being built.
type slidingBuild struct {
	sl   *Sliding
	req  SlidingRequest
	prev *slidingSnap // nil for a new connection
	next *slidingSnap
	now  int64

	listNames []string
	lists     map[string][]string // list -> the rooms its filters match, in order
	windows   map[string][]string // list -> the rooms in its ranges
	subs      []string            // the subscribed rooms the user may see
	counts    map[string]int

	rms      map[string]*roomResp // rooms sent in this response
	out      map[string]*slidingOut
	bumps    map[string]slidingRoom
	expanded map[string]SlidingRoomConfig // rooms sent before whose required_state grew: what it gained
	grown    map[string]bool              // rooms sent before whose timeline_limit grew: latest events again
	sentPos  map[string]int64             // rooms sent before: the position they were sent up to
	cfgs     map[string]SlidingRoomConfig
	initial  map[string]bool
	relevant []string // rooms in a window or subscribed, sorted

	// extensions
	toDevice     []storage.ToDevice
	toDeviceNext int64
	changed      []string
	otk          map[string]int
	fallback     []string
	global       []storage.AccountData
	roomData     map[string][]storage.AccountData
	receipts     map[string][]storage.Receipt
	typing       map[string][]string

	empty bool
}

func (sl *Sliding) build(ctx context.Context, req SlidingRequest, prev *slidingSnap) (*slidingBuild, error) {
	s := sl.s
	b := &slidingBuild{sl: sl, req: req, prev: prev, now: s.now().UnixMilli(), rms: map[string]*roomResp{},
		cfgs: map[string]SlidingRoomConfig{}, initial: map[string]bool{}}
	joined, events, upto := s.n.slidingRooms(req.UserID)
	// Sliding sync shows no channels or moments: its token carries neither
	// stream, so their news never wakes or ends its long-polls.
	next := &slidingSnap{token: Token{Pos: upto, Typing: s.n.TypingPos(), Chan: notCarried, Moments: notCarried}}
	b.next = next
	var since int64
	ownNews, peerNews := true, true
	if prev != nil {
		since = prev.token.Pos
		ownNews, peerNews = s.n.StreamNews(req.UserID, since)
	}

	// Invites: all of them for a new connection, then the changes.
	if prev == nil {
		next.invites = map[string]int64{}
	} else {
		next.invites = prev.invites
	}
	var changes []storage.Membership
	if ownNews {
		var err error
		if changes, err = s.store.MembershipChanges(ctx, req.UserID, since, upto); err != nil {
			return nil, err
		}
		if len(changes) > 0 {
			next.invites = maps.Clone(next.invites)
		}
		for _, m := range changes {
			if m.Membership == "invite" && !m.Forgotten {
				next.invites[m.RoomID] = m.Pos
			} else {
				delete(next.invites, m.RoomID)
			}
		}
	}
	cloned := false
	for id := range next.invites {
		if _, ok := joined[id]; ok { // joined since: a stale row cannot list it twice
			if !cloned { // the previous snapshot's map is read-only
				next.invites, cloned = maps.Clone(next.invites), true
			}
			delete(next.invites, id)
		}
	}

	// Account data: the m.direct rooms for is_dm, and the extension.
	next.direct = nil
	if prev != nil {
		next.direct, next.tags = prev.direct, prev.tags
	}
	var accountData []storage.AccountData
	if ownNews {
		var err error
		if accountData, err = s.store.AccountDataSince(ctx, req.UserID, since, upto); err != nil {
			return nil, err
		}
	}
	for _, a := range accountData {
		if a.RoomID == "" && a.Type == "m.direct" {
			next.direct = directRooms(a.Content)
		}
	}
	updateTags(next, accountData)

	// The user's list: joined and invited rooms, most recent first.
	all := make([]slidingRoom, 0, len(joined)+len(next.invites))
	for id := range joined {
		all = append(all, slidingRoom{id: id, bump: events[id]})
	}
	for id, pos := range next.invites {
		all = append(all, slidingRoom{id: id, bump: pos, invite: true})
	}
	sort.Slice(all, func(i, j int) bool {
		if all[i].bump != all[j].bump {
			return all[i].bump > all[j].bump
		}
		return all[i].id < all[j].id
	})
	bumps := make(map[string]slidingRoom, len(all))
	for _, r := range all {
		bumps[r.id] = r
	}
	if err := sl.filterState(ctx, b, all, joined); err != nil {
		return nil, err
	}

	// Windows and subscriptions pick the rooms; their configs combine.
	b.bumps = bumps
	b.listNames = slices.Sorted(maps.Keys(req.Lists))
	b.lists, b.windows, b.counts = map[string][]string{}, map[string][]string{}, map[string]int{}
	var listsKey strings.Builder
	for _, name := range b.listNames {
		l := req.Lists[name]
		lf := newListFilter(l, next, joined)
		n := 0
		var matched, ids []string
		for _, r := range all {
			if !lf.matches(r) {
				continue
			}
			matched = append(matched, r.id)
			if inRanges(n, l.Ranges) {
				ids = append(ids, r.id)
				b.merge(r.id, l.SlidingRoomConfig)
			}
			n++
		}
		b.lists[name], b.windows[name], b.counts[name] = matched, ids, n
		listsKey.WriteString(name + "\x00" + strconv.Itoa(n) + "\x00" + strings.Join(ids, ",") + "\x00")
	}
	next.lists = listsKey.String()
	for id, c := range req.RoomSubscriptions {
		if _, ok := bumps[id]; ok {
			b.merge(id, c)
			b.subs = append(b.subs, id)
		}
	}
	b.relevant = slices.Sorted(maps.Keys(b.cfgs))

	// Which rooms to send, and from where.
	next.rooms = map[string]sentRoom{}
	if prev != nil {
		next.rooms = maps.Clone(prev.rooms)
	}
	b.expanded, b.grown, b.sentPos = map[string]SlidingRoomConfig{}, map[string]bool{}, map[string]int64{}
	for _, id := range b.relevant {
		r := bumps[id]
		cfg := b.cfgs[id]
		cfgKey := cfg.key()
		sent, ok := next.rooms[id]
		switch {
		case prev != nil && ok && sent.invite && r.invite:
			// An invite does not change until it is answered.
		case prev != nil && ok && !sent.invite && !r.invite:
			// Sent before: what changed since, and the state a wider
			// required_state now asks for, and the latest events again when
			// the timeline_limit grew (MSC4186 "Changing room configs").
			// The config is kept only once the room is sent with it, so a
			// config narrowed while the room had no news is not taken for
			// what the client has.
			if sent.cfgKey != cfgKey {
				if extra := expansion(sent.cfg, cfg); len(extra.RequiredState) > 0 {
					b.expanded[id] = extra
				}
			}
			grew := cfg.limit() > sent.cfg.limit()
			if joined[id] > sent.pos || b.expanded[id].RequiredState != nil || grew {
				rr := &roomResp{id: id, section: "join", since: sent.pos, upto: upto, roomPos: joined[id]}
				if grew {
					rr.newlyJoin, rr.since = true, 0
					b.grown[id] = true
				}
				b.rms[id] = rr
				b.sentPos[id] = sent.pos
				sent.pos = upto
				sent.cfg, sent.cfgKey = cfg, cfgKey
			}
		default:
			b.initial[id] = true
			rr := &roomResp{id: id, section: "join", newlyJoin: true, upto: upto}
			if r.invite {
				rr = &roomResp{id: id, section: "invite", upto: upto}
			}
			b.rms[id] = rr
			sent = sentRoom{pos: upto, invite: r.invite, cfg: cfg, cfgKey: cfgKey}
		}
		next.rooms[id] = sent
	}

	b.leaves(changes, joined)
	if len(next.rooms) > slidingSentMax {
		// Past the bound, the connection forgets the rooms out of view;
		// one that comes back into view is sent afresh.
		for id := range next.rooms {
			if _, ok := b.cfgs[id]; !ok {
				delete(next.rooms, id)
			}
		}
	}

	var muted map[string]bool
	var ruleset json.RawMessage
	if req.Rules != nil {
		var err error
		if muted, ruleset, err = req.Rules(ctx, prev == nil); err != nil {
			return nil, err
		}
	}
	if err := sl.fill(ctx, b, muted); err != nil {
		return nil, err
	}
	if err := sl.prepare(ctx, b); err != nil {
		return nil, err
	}
	if err := sl.extensions(ctx, b, accountData, ruleset, ownNews, peerNews); err != nil {
		return nil, err
	}
	b.empty = len(b.rms) == 0 && len(b.toDevice) == 0 && len(b.changed) == 0 && len(b.global) == 0 &&
		len(b.roomData) == 0 && len(b.receipts) == 0 && len(b.typing) == 0 && (prev == nil || prev.lists == next.lists)
	return b, nil
}

// inRanges reports whether index i is in view; a list without ranges
// shows every room it matches (MSC4186).
func inRanges(i int, ranges [][2]int) bool {
	if len(ranges) == 0 {
		return true
	}
	for _, rg := range ranges {
		if i >= rg[0] && i <= rg[1] {
			return true
		}
	}
	return false
}

// merge adds a rule's room config to the room's: the larger timeline, the
// union of required state.
func (b *slidingBuild) merge(id string, c SlidingRoomConfig) {
	cur, ok := b.cfgs[id]
	if !ok {
		b.cfgs[id] = SlidingRoomConfig{TimelineLimit: c.TimelineLimit, RequiredState: slices.Clone(c.RequiredState)}
		return
	}
	cur.TimelineLimit = max(cur.TimelineLimit, c.TimelineLimit)
	for _, p := range c.RequiredState {
		if !slices.Contains(cur.RequiredState, p) {
			cur.RequiredState = append(cur.RequiredState, p)
		}
	}
	b.cfgs[id] = cur
}

// key is the config in a canonical form: a room sent under another one is
// sent afresh.
func (c SlidingRoomConfig) key() string {
	pairs := make([]string, len(c.RequiredState))
	for i, p := range c.RequiredState {
		pairs[i] = p[0] + "\x00" + p[1]
	}
	sort.Strings(pairs)
	return strconv.Itoa(c.TimelineLimit) + "\x01" + strings.Join(pairs, "\x01")
}

func (c SlidingRoomConfig) limit() int { return max(c.TimelineLimit, 0) }

// allMembers reports whether c asks for every member event.
func (c SlidingRoomConfig) allMembers() bool {
	for _, p := range c.RequiredState {
		if (p[0] == "m.room.member" || p[0] == "*") && p[1] == "*" {
			return true
		}
	}
	return false
}

// directRooms reads the room IDs of an m.direct content.
func directRooms(content string) map[string]bool {
	out := map[string]bool{}
	// Account data is the client's: anything but a list of strings is
	// ignored, as Synapse ignores it.
	gjson.Parse(content).ForEach(func(_, v gjson.Result) bool {
		if !v.IsArray() {
			return true
		}
		for _, id := range v.Array() {
			if id.Type == gjson.String {
				out[id.String()] = true
			}
		}
		return true
	})
	return out
}

// fill loads the rooms to send through Syncer.fillRooms, grouped by what
// it takes per call: the timeline limit and whether members are
// lazy-loaded.
func (sl *Sliding) fill(ctx context.Context, b *slidingBuild, muted map[string]bool) error {
	type group struct {
		limit int
		all   bool
	}
	groups := map[group]map[string]*roomResp{}
	for id, r := range b.rms {
		c := b.cfgs[id]
		g := group{limit: c.limit(), all: c.allMembers()}
		if r.section == "invite" {
			g = group{limit: 1}
		}
		if groups[g] == nil {
			groups[g] = map[string]*roomResp{}
		}
		groups[g][id] = r
	}
	req := Request{UserID: b.req.UserID, DeviceID: b.req.DeviceID, Filter: sl.lazy}
	if b.prev != nil {
		t := b.prev.token
		req.Since = &t
	}
	for g, rms := range groups {
		req.Filter = sl.lazy
		if g.all {
			req.Filter = sl.full
		}
		// A limit of 0 still reads the newest event: the state the
		// response knows is the state after it (prepare then drops it).
		if err := sl.s.fillRooms(ctx, req, rms, max(g.limit, 1), muted); err != nil {
			return err
		}
		if err := sl.s.bundle(ctx, req, rms, false); err != nil {
			return err
		}
	}
	return sl.extraMembers(ctx, b)
}

// extraMembers loads the member events required_state names that the
// lazy-loaded state read did not carry: named users, and heroes (for their
// display names).
func (sl *Sliding) extraMembers(ctx context.Context, b *slidingBuild) error {
	var pairs []storage.RoomUser
	for id, r := range b.rms {
		if r.section != "join" {
			continue
		}
		have := map[string]bool{}
		for _, e := range r.state {
			if e.Type == "m.room.member" {
				have[e.StateKeyOr()] = true
			}
		}
		want := func(u string) {
			if !have[u] {
				have[u] = true
				pairs = append(pairs, storage.RoomUser{RoomID: id, UserID: u})
			}
		}
		if b.initial[id] {
			for _, p := range b.cfgs[id].RequiredState {
				if p[0] == "m.room.member" && strings.HasPrefix(p[1], "@") {
					want(p[1])
				}
			}
		}
		if r.summary != nil && roomName(r) == "" {
			for _, h := range r.summary.Heroes {
				want(h)
			}
		}
	}
	if len(pairs) == 0 {
		return nil
	}
	evs, err := sl.s.memberEvents(ctx, pairs)
	if err != nil {
		return err
	}
	for _, e := range evs {
		if r := b.rms[e.RoomID]; r != nil {
			r.state = append(r.state, e)
		}
	}
	return nil
}

// roomState is the room's state as this response knows it: the state read
// (before the timeline) with the timeline's state events applied; for an
// initial room that is its current state.
func roomState(r *roomResp) []storage.Event {
	type k struct{ typ, sk string }
	idx := map[k]int{}
	out := make([]storage.Event, 0, len(r.state)+4)
	add := func(e storage.Event) {
		key := k{e.Type, e.StateKeyOr()}
		if i, ok := idx[key]; ok {
			out[i] = e
			return
		}
		idx[key] = len(out)
		out = append(out, e)
	}
	for _, e := range r.state {
		add(e)
	}
	for _, e := range r.timeline {
		if e.StateKey != nil {
			add(e)
		}
	}
	return out
}

// roomName is the room's m.room.name among what the response carries.
func roomName(r *roomResp) string {
	name := ""
	for _, e := range r.state {
		if e.Type == "m.room.name" && e.StateKeyOr() == "" {
			name = gjson.GetBytes(e.Client, "content.name").String()
		}
	}
	for _, e := range r.timeline {
		if e.Type == "m.room.name" && e.StateKeyOr() == "" {
			name = gjson.GetBytes(e.Client, "content.name").String()
		}
	}
	return name
}

// required picks the state required_state asks for. ["*", key] is every
// type's key (Synapse sends all state for it). lazy are the members
// sent before on this connection (nil: none known).
//
// For a room sent before (since > 0) only what changed after since counts,
// and $LAZY members the connection already has are left out.
func required(c SlidingRoomConfig, user string, r *roomResp, st []storage.Event, since int64, lazy map[string]bool) []storage.Event {
	// $LAZY: the timeline's senders, and the targets of its member events
	// (an invite, a kick), as Synapse sends them.
	senders := map[string]bool{}
	for _, e := range r.timeline {
		senders[e.Sender] = true
		if e.Type == "m.room.member" && e.StateKey != nil {
			senders[*e.StateKey] = true
		}
	}
	var out []storage.Event
	for _, e := range st {
		sk := e.StateKeyOr()
		for _, p := range c.RequiredState {
			if p[0] != "*" && p[0] != e.Type {
				continue
			}
			ok := (p[1] == "*" || p[1] == sk || (p[1] == "$ME" && sk == user)) && e.Pos > since
			if p[1] == "$LAZY" && e.Type == "m.room.member" && senders[sk] && !lazy[sk] {
				ok = true
			}
			if ok {
				out = append(out, e)
				break
			}
		}
	}
	return out
}

// hasLazy reports whether c lazy-loads members.
func (c SlidingRoomConfig) hasLazy() bool {
	return slices.Contains(c.RequiredState, [2]string{"m.room.member", "$LAZY"})
}

// slidingRooms returns the user's joined rooms with each room's latest
// position (receipts included: news to look at) and its newest event's
// (the recency order), and the watermark both are consistent with.
func (n *Notifier) slidingRooms(user string) (rooms, events map[string]int64, pos int64) {
	n.mu.RLock()
	defer n.mu.RUnlock()
	rooms = make(map[string]int64, len(n.userRooms[user]))
	events = make(map[string]int64, len(n.userRooms[user]))
	for r := range n.userRooms[user] {
		rooms[r] = n.roomPos[r]
		events[r] = n.eventPos[r]
	}
	return rooms, events, n.pos.Load()
}

// expansion returns the required_state pairs of cfg that old did not have.
func expansion(old, cfg SlidingRoomConfig) SlidingRoomConfig {
	var out SlidingRoomConfig
	for _, p := range cfg.RequiredState {
		if !slices.Contains(old.RequiredState, p) && !slices.Contains(old.RequiredState, [2]string{"*", "*"}) &&
			!slices.Contains(old.RequiredState, [2]string{p[0], "*"}) {
			out.RequiredState = append(out.RequiredState, p)
		}
	}
	return out
}

// slidingOut is what a joined room's result carries beyond roomResp.
type slidingOut struct {
	state        []storage.Event // the state known to this response (roomState)
	required     []storage.Event
	name, avatar *string // set when sent: changed, or the room is initial
	noTimeline   bool    // timeline_limit 0: the timeline fields are left out
}

// prepare works out each joined room's required state, name and avatar,
// records on the next snapshot what the connection then has (lazy members,
// counts), and leaves out rooms sent before that bring nothing new (a
// receipt moved the room's position but not the user's counts).
func (sl *Sliding) prepare(ctx context.Context, b *slidingBuild) error {
	b.out = map[string]*slidingOut{}
	var expandedIDs []string
	for id, r := range b.rms {
		if r.section == "invite" {
			continue
		}
		initial := b.initial[id]
		sent := b.next.rooms[id]
		var lazy map[string]bool
		if !initial {
			lazy = sent.lazy
		}
		since := b.sentPos[id] // 0 for a room sent afresh
		if r.section == "leave" {
			since = r.since
		}
		if b.grown[id] && r.summary != nil && !membersSince(r, since) {
			r.summary = nil // read for the whole timeline; unchanged for the client
		}
		o := &slidingOut{state: roomState(r)}
		if r.section == "join" && b.cfgs[id].limit() == 0 {
			// timeline_limit 0: no timeline, no limited, no num_live, and
			// no $LAZY members (there are no senders), as Synapse answers.
			r.timeline, r.limited, o.noTimeline = nil, false, true
		}
		o.required = required(b.cfgs[id], b.req.UserID, r, o.state, since, lazy)
		for _, e := range o.state {
			if e.StateKeyOr() != "" || (!initial && e.Pos <= since) {
				continue
			}
			switch e.Type {
			case "m.room.name":
				n := gjson.GetBytes(e.Client, "content.name").String()
				o.name = &n
			case "m.room.avatar":
				a := gjson.GetBytes(e.Client, "content.url").String()
				o.avatar = &a
			}
		}
		if _, ok := b.expanded[id]; ok {
			expandedIDs = append(expandedIDs, id)
		}
		if r.section == "leave" {
			o.required = withOwnMember(o.required, r, b.req.UserID)
		}
		b.out[id] = o
	}
	if len(expandedIDs) > 0 {
		cur, err := sl.s.store.CurrentStateOf(ctx, expandedIDs)
		if err != nil {
			return err
		}
		byRoom := map[string][]storage.Event{}
		for _, e := range cur {
			byRoom[e.RoomID] = append(byRoom[e.RoomID], e)
		}
		for _, id := range expandedIDs {
			o := b.out[id]
			for _, e := range required(b.expanded[id], b.req.UserID, b.rms[id], byRoom[id], 0, nil) {
				if !slices.ContainsFunc(o.required, func(x storage.Event) bool { return x.EventID == e.EventID }) {
					o.required = append(o.required, e)
				}
			}
		}
	}
	for id, o := range b.out {
		r, sent := b.rms[id], b.next.rooms[id]
		if r.section == "leave" {
			continue // forgotten by the connection (leaves)
		}
		initial := b.initial[id]
		var notif, highlight int64
		if r.unread != nil {
			notif, highlight = r.unread.Notifications, r.unread.Highlights
		}
		if !initial && len(r.timeline) == 0 && len(o.required) == 0 && r.summary == nil &&
			notif == sent.notif && highlight == sent.highlight {
			delete(b.rms, id)
			delete(b.out, id)
			if old, ok := b.prev.rooms[id]; ok && b.expanded[id].RequiredState == nil && !o.noTimeline {
				sent.cfg, sent.cfgKey = old.cfg, old.cfgKey // not sent with the new config
			}
			// With timeline_limit 0 the client skipped the room's new events:
			// it keeps the 0, so a larger limit later sends the latest again.
			b.next.rooms[id] = sent
			continue
		}
		sent.notif, sent.highlight = notif, highlight
		if old, ok := b.prev.roomsOf(id); ok && !initial && !r.limited && !o.noTimeline && old.cfg.limit() > sent.cfg.limit() {
			// Every event since the room was last sent came: the client
			// still holds the latest old.limit() events, which a grown
			// timeline_limit then does not ask for again.
			sent.cfg.TimelineLimit = old.cfg.limit()
			sent.cfgKey = sent.cfg.key()
		}
		if b.cfgs[id].hasLazy() {
			lazy := sent.lazy
			if initial {
				lazy = nil
			}
			var add []string
			for _, e := range o.required {
				if e.Type == "m.room.member" && !lazy[e.StateKeyOr()] {
					add = append(add, e.StateKeyOr())
				}
			}
			if len(lazy)+len(add) > lazyMembersMax {
				sent.lazy = nil
			} else if len(add) > 0 || initial {
				nl := make(map[string]bool, len(lazy)+len(add))
				for u := range lazy {
					nl[u] = true
				}
				for _, u := range add {
					nl[u] = true
				}
				sent.lazy = nl
			}
		}
		b.next.rooms[id] = sent
	}
	return nil
}

// leaves sends the rooms this connection was shown that the user has left,
// been kicked or banned from, or whose invite went (rejected, withdrawn)
// since: the room's timeline up to the leave, with the user's own member
// event, so the client takes it off its list. The connection then forgets
// the room. Rooms never sent on the connection are not sent (MSC4186 sends
// kicks and bans of those too; Parley does not yet).
func (b *slidingBuild) leaves(changes []storage.Membership, joined map[string]int64) {
	if b.prev == nil {
		return
	}
	last := map[string]storage.Membership{}
	for _, m := range changes {
		last[m.RoomID] = m
	}
	for id, m := range last {
		if m.Membership == "join" || m.Membership == "invite" || m.Membership == "knock" {
			continue
		}
		if _, ok := joined[id]; ok {
			continue
		}
		sent, ok := b.next.rooms[id]
		if !ok {
			continue
		}
		b.cfgs[id] = sent.cfg
		b.rms[id] = &roomResp{id: id, section: "leave", since: sent.pos, upto: m.Pos}
		b.bumps[id] = slidingRoom{id: id, bump: m.Pos}
		delete(b.next.rooms, id)
	}
}

// withOwnMember adds the user's own member event in r (their leave) to
// required when it is not there.
func withOwnMember(required []storage.Event, r *roomResp, user string) []storage.Event {
	for _, e := range required {
		if e.Type == "m.room.member" && e.StateKeyOr() == user {
			return required
		}
	}
	for _, evs := range [][]storage.Event{r.timeline, r.state} {
		for i := len(evs) - 1; i >= 0; i-- {
			if e := evs[i]; e.Type == "m.room.member" && e.StateKeyOr() == user {
				return append(required, e)
			}
		}
	}
	return required
}

// membersSince reports whether r's timeline has a member event after pos.
func membersSince(r *roomResp, pos int64) bool {
	for _, e := range r.timeline {
		if e.Type == "m.room.member" && e.Pos > pos {
			return true
		}
	}
	return false
}

// roomsOf returns what the snapshot says the client has of a room; a nil
// snapshot has nothing.
func (n *slidingSnap) roomsOf(id string) (sentRoom, bool) {
	if n == nil {
		return sentRoom{}, false
	}
	r, ok := n.rooms[id]
	return r, ok
}
