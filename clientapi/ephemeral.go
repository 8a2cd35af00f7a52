package clientapi

import (
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/parley-im/parley/apierr"
	"github.com/parley-im/parley/rooms"
	"github.com/parley-im/parley/rooms/pdu"
	"github.com/parley-im/parley/todevice"
)

func (a *API) receipt(w http.ResponseWriter, r *http.Request, s *session) error {
	var req struct {
		ThreadID *string `json:"thread_id"`
	}
	if err := a.readJSON(r, &req); err != nil {
		return err
	}
	threadID := ""
	if req.ThreadID != nil {
		if *req.ThreadID == "" {
			return apierr.InvalidParam("thread_id must be a non-empty string")
		}
		threadID = *req.ThreadID
	}
	typ := param(r, "receiptType")
	roomID, eventID := param(r, "roomId"), param(r, "eventId")
	if err := a.requireJoined(r, s, roomID); err != nil {
		return err // before any lookup, so unknown and forbidden rooms look alike
	}
	switch typ {
	case "m.read", "m.read.private":
		if err := a.rooms.PutReceipt(r.Context(), roomID, s.UserID, typ, eventID, threadID); err != nil {
			return err
		}
	case "m.fully_read":
		if threadID != "" {
			return apierr.InvalidParam("m.fully_read cannot be threaded")
		}
		if err := a.setFullyRead(r, s, roomID, eventID); err != nil {
			return err
		}
	default:
		return apierr.InvalidParam("Unknown receipt type " + typ)
	}
	return writeJSON(w, emptyObject)
}

func (a *API) setFullyRead(r *http.Request, s *session, roomID, eventID string) error {
	if _, _, err := a.loadVisibleEvent(r, s, roomID, eventID); err != nil {
		return err
	}
	body, _ := json.Marshal(map[string]string{"event_id": eventID})
	return a.rooms.PutAccountData(r.Context(), s.UserID, roomID, "m.fully_read", body)
}

func (a *API) readMarkers(w http.ResponseWriter, r *http.Request, s *session) error {
	var req struct {
		FullyRead   string `json:"m.fully_read"`
		Read        string `json:"m.read"`
		ReadPrivate string `json:"m.read.private"`
	}
	if err := a.readJSON(r, &req); err != nil {
		return err
	}
	roomID := param(r, "roomId")
	// Check membership before writing anything, so a refusal changes nothing.
	if err := a.requireJoined(r, s, roomID); err != nil {
		return err
	}
	if req.FullyRead != "" {
		if err := a.setFullyRead(r, s, roomID, req.FullyRead); err != nil {
			return err
		}
	}
	for typ, id := range map[string]string{"m.read": req.Read, "m.read.private": req.ReadPrivate} {
		if id == "" {
			continue
		}
		if err := a.rooms.PutReceipt(r.Context(), roomID, s.UserID, typ, id, ""); err != nil {
			return err
		}
	}
	return writeJSON(w, emptyObject)
}

func (a *API) typing(w http.ResponseWriter, r *http.Request, s *session) error {
	if param(r, "userId") != s.UserID {
		return apierr.Forbidden("Cannot set typing for other users")
	}
	var req struct {
		Typing  *bool `json:"typing"`
		Timeout int64 `json:"timeout"`
	}
	if err := a.readJSON(r, &req); err != nil {
		return err
	}
	if req.Typing == nil {
		return apierr.MissingParam("typing is required")
	}
	roomID := param(r, "roomId")
	if err := a.requireJoined(r, s, roomID); err != nil {
		return err
	}
	timeout := time.Duration(req.Timeout) * time.Millisecond
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	timeout = min(timeout, 2*time.Minute)
	a.n.SetTyping(roomID, s.UserID, *req.Typing, timeout, time.Now())
	return writeJSON(w, emptyObject)
}

func (a *API) getPresence(w http.ResponseWriter, r *http.Request, s *session) error {
	user := param(r, "userId")
	if user != s.UserID {
		ok, err := a.store.SharesRoom(r.Context(), s.UserID, user)
		if err != nil {
			return err
		}
		if !ok && a.contacts != nil {
			// Friends see each other's presence, as room peers do; the
			// cached friend list is the one presence delivery uses.
			friends, err := a.contacts.Friends(r.Context(), s.UserID)
			if err != nil {
				return graphErr(err, "")
			}
			ok = slices.Contains(friends, user)
		}
		if !ok {
			return apierr.Forbidden("You do not share a room with this user, and are not friends")
		}
	}
	state, msg, lastActive, active := a.pres.Get(r.Context(), user)
	out := map[string]any{"presence": state, "currently_active": active}
	if !lastActive.IsZero() {
		out["last_active_ago"] = max(time.Since(lastActive).Milliseconds(), 0)
	}
	if msg != "" {
		out["status_msg"] = msg
	}
	return writeJSON(w, out)
}

func (a *API) putPresence(w http.ResponseWriter, r *http.Request, s *session) error {
	if param(r, "userId") != s.UserID {
		return apierr.Forbidden("Cannot set presence of other users")
	}
	var req struct {
		Presence  string `json:"presence"`
		StatusMsg string `json:"status_msg"`
	}
	if err := a.readJSON(r, &req); err != nil {
		return err
	}
	switch req.Presence {
	case "online", "offline", "unavailable":
	default:
		return apierr.InvalidParam("presence must be online, offline or unavailable")
	}
	if len(req.StatusMsg) > 1024 {
		return apierr.InvalidParam("status_msg is too long")
	}
	if err := a.pres.Set(r.Context(), s.UserID, req.Presence, req.StatusMsg, time.Now()); err != nil {
		return err
	}
	return writeJSON(w, emptyObject)
}

// sendToDevice hands the request to package todevice, which drops what may
// not or cannot be delivered. The answer is 200 {} whatever was dropped, as
// the spec asks; only a request over the size cap (413 M_TOO_LARGE: split
// it, a retry as is would fail again) or a malformed one is refused, and one
// for a server whose outbound queue is full gets 429 M_LIMIT_EXCEEDED
// (domainerrors.go), which clients retry.
func (a *API) sendToDevice(w http.ResponseWriter, r *http.Request, s *session) error {
	var req struct {
		Messages map[string]map[string]json.RawMessage `json:"messages"`
	}
	if err := a.readJSON(r, &req); err != nil {
		return err
	}
	if !pdu.ValidEventType(param(r, "eventType")) || !pdu.ValidTxnID(param(r, "txnId")) {
		return apierr.InvalidParam("Invalid event type or transaction ID")
	}
	err := a.todev.Send(r.Context(), todevice.Request{Sender: s.UserID, SenderDevice: s.DeviceID,
		TxnID: param(r, "txnId"), Type: param(r, "eventType"), Messages: req.Messages})
	switch {
	case errors.Is(err, todevice.ErrTooMany):
		return apierr.TooLarge(strings.TrimPrefix(err.Error(), todevice.ErrTooMany.Error()+": ") + ": split the request")
	case errors.Is(err, todevice.ErrInvalid):
		return apierr.BadJSON("to-device content must be an object")
	case errors.Is(err, rooms.ErrForbidden):
	case err != nil:
		return graphErr(err, "")
	}
	return writeJSON(w, emptyObject)
}
