package clientapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/parley-im/parley/inbox"
	"github.com/parley-im/parley/rooms"
	"github.com/parley-im/parley/storage"
)

// receiptReader is the store read initialSync needs beyond Store;
// *storage.Store implements it; New passes Deps.Store. Kept here, where it is used, so the shared
// Store interface does not grow for one deprecated endpoint.
type receiptReader interface {
	ReceiptsSinceOwnIn(ctx context.Context, viewer string, roomIDs []string, since, upto int64, ownOnly []string) ([]storage.Receipt, error)
}

// initialSyncPresenceCap bounds the presence entries one room initialSync
// reads: each is a presence lookup, and a large room's reload should not
// cost one per member. Above it joined members, only the caller's own
// receipts are read.
const initialSyncPresenceCap = 100

// roomInitialSync serves the deprecated GET /rooms/{roomId}/initialSync
// that Element still calls on reload. Everything it returns is what the
// caller may read through rooms.ReadAccess, the one place those rules
// live: events by history visibility, state clipped at a leave, none for
// a user who never joined (an invitee gets their membership and the
// events visibility allows, with no state).
func (a *API) roomInitialSync(w http.ResponseWriter, r *http.Request, s *session) error {
	ctx := r.Context()
	roomID := param(r, "roomId")
	v, err := a.roomAccess(r, s, roomID)
	if err != nil {
		return err
	}
	limit, err := parseLimit(r, 20, 100)
	if err != nil {
		return err
	}
	membership, _ := v.Current()
	upper := a.n.Pos()
	if leftAt, gone := v.Departed(); gone && leftAt < upper {
		upper = leftAt // a leaver reads up to their leave, as /messages does
	}
	// Newest first, then reversed: the chunk is oldest first, as in
	// Synapse, and start pages further back with /messages?dir=b.
	// Pages go in topological order, as /messages does; start is the
	// topological token before the oldest event read.
	var chunk []storage.Event
	q := newTopoQuery(roomID, true, limit)
	q.MaxPos = upper
	start := inbox.RoomToken(upper)
	for tries := 0; tries < 5 && len(chunk) < limit; tries++ {
		page, err := a.store.RoomEventsTopo(ctx, q)
		if err != nil {
			return err
		}
		if len(page) == 0 {
			break
		}
		last := page[len(page)-1]
		q.From = storage.TopoPoint{Depth: last.Depth, Pos: last.Pos - 1}
		start = topoToken(q.From)
		for _, e := range v.Filter(page) {
			if len(chunk) < limit {
				chunk = append(chunk, e)
			}
		}
		if len(page) < limit {
			break
		}
	}
	for i, j := 0, len(chunk)-1; i < j; i, j = i+1, j-1 {
		chunk[i], chunk[j] = chunk[j], chunk[i]
	}
	var state []storage.Event
	if v.StateEnd() != 0 {
		if state, err = v.State(ctx); err != nil {
			return err
		}
	}
	visibility := "private"
	if published, err := a.directory.Published(ctx, roomID); err != nil {
		return err
	} else if published {
		visibility = "public"
	}
	presence, err := a.initialSyncPresence(ctx, s, state)
	if err != nil {
		return err
	}
	var receipts []storage.Receipt
	if rr := a.receipts; rr != nil && v.Joined() {
		// A big room shows only one's own receipts, as sync does for
		// rooms above the small tier: every member's would be a row each.
		var ownOnly []string
		if joinedCount(state) > initialSyncPresenceCap {
			ownOnly = []string{roomID}
		}
		if receipts, err = rr.ReceiptsSinceOwnIn(ctx, s.UserID, []string{roomID}, 0, a.n.Pos(), ownOnly); err != nil {
			return err
		}
	}
	accountData, err := a.initialSyncAccountData(ctx, s.UserID, roomID)
	if err != nil {
		return err
	}

	now := time.Now().UnixMilli()
	vw := a.viewer(s)
	buf := []byte(`{"room_id":`)
	buf = strconv.AppendQuote(buf, roomID)
	if membership != "" {
		buf = append(buf, `,"membership":`...)
		buf = strconv.AppendQuote(buf, membership)
	}
	buf = append(buf, `,"messages":{"start":`...)
	buf = strconv.AppendQuote(buf, start)
	buf = append(buf, `,"end":`...)
	buf = strconv.AppendQuote(buf, inbox.RoomToken(upper))
	buf = append(buf, `,"chunk":`...)
	buf = append(buf, rooms.ClientEvents(chunk, now, vw)...)
	buf = append(buf, `},"state":`...)
	buf = append(buf, rooms.ClientEvents(state, now, vw)...)
	buf = append(buf, `,"visibility":`...)
	buf = strconv.AppendQuote(buf, visibility)
	rest, err := json.Marshal(map[string]any{
		"presence":     presence,
		"receipts":     receiptEvents(roomID, receipts),
		"account_data": accountData,
	})
	if err != nil {
		return err
	}
	buf = append(buf, ',')
	buf = append(buf, rest[1:]...) // the object's members after ours
	return writeRaw(w, buf)
}

// initialSyncPresence returns m.presence events for the room's joined
// members in state, at most initialSyncPresenceCap of them.
func (a *API) initialSyncPresence(ctx context.Context, s *session, state []storage.Event) ([]any, error) {
	out := []any{}
	if a.pres == nil {
		return out, nil
	}
	for i := range state {
		e := &state[i]
		if e.Type != "m.room.member" || e.Membership != "join" || len(out) >= initialSyncPresenceCap {
			continue
		}
		user := e.StateKeyOr()
		st, msg, lastActive, active := a.pres.Get(ctx, user)
		c := map[string]any{"user_id": user, "presence": st, "currently_active": active}
		if !lastActive.IsZero() {
			c["last_active_ago"] = max(time.Since(lastActive).Milliseconds(), 0)
		}
		if msg != "" {
			c["status_msg"] = msg
		}
		out = append(out, map[string]any{"type": "m.presence", "sender": user, "content": c})
	}
	return out, ctx.Err()
}

// receiptEvents groups receipts into one m.receipt event, as sync does.
func receiptEvents(roomID string, rs []storage.Receipt) []any {
	if len(rs) == 0 {
		return []any{}
	}
	content := map[string]map[string]map[string]any{}
	for _, r := range rs {
		byType := content[r.EventID]
		if byType == nil {
			byType = map[string]map[string]any{}
			content[r.EventID] = byType
		}
		if byType[r.Type] == nil {
			byType[r.Type] = map[string]any{}
		}
		rec := map[string]any{"ts": r.TS}
		if r.ThreadID != "" {
			rec["thread_id"] = r.ThreadID
		}
		byType[r.Type][r.UserID] = rec
	}
	return []any{map[string]any{"type": "m.receipt", "room_id": roomID, "content": content}}
}

// initialSyncAccountData returns the caller's room account data Element
// reads on reload: the fully-read marker and tags.
func (a *API) initialSyncAccountData(ctx context.Context, userID, roomID string) ([]any, error) {
	out := []any{}
	for _, typ := range []string{"m.fully_read", "m.tag"} {
		c, err := a.store.GetAccountData(ctx, userID, roomID, typ)
		if errors.Is(err, storage.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, map[string]any{"type": typ, "content": json.RawMessage(c)})
	}
	return out, nil
}

func joinedCount(state []storage.Event) int {
	n := 0
	for i := range state {
		if state[i].Type == "m.room.member" && state[i].Membership == "join" {
			n++
		}
	}
	return n
}
