package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/parley-im/parley/rooms"
	"github.com/parley-im/parley/storage"
)

// Server notices: messages from the operator, sent by the server-notices
// account into a room of each user's own that the user cannot leave
// (rooms/notices.go refuses the leave). The room is tagged
// m.server_notice for the user, as the spec's server notices module says.

// NoticesLocalpart is the localpart of the account that sends notices.
const NoticesLocalpart = "server-notices"

// NoticeStore is what notices need of the store; *storage.Store
// implements it.
type NoticeStore interface {
	ServerNoticeRoom(ctx context.Context, userID string) (string, error)
	SetServerNoticeRoom(ctx context.Context, userID, roomID string) error
}

// NoticeRooms creates rooms and writes room account data; *rooms.Service
// implements it.
type NoticeRooms interface {
	CreateRoom(ctx context.Context, req rooms.CreateRequest) (string, error)
	PutAccountData(ctx context.Context, userID, roomID, typ string, content []byte) error
}

// MaxNoticeBytes bounds a notice's content, well under an event's 64 KiB.
const MaxNoticeBytes = 32 << 10

// noticeSender returns the server-notices account's user ID, creating the
// account (with no password: nobody logs in as it) on first use. A human
// account of that name is refused rather than spoken for.
func (s *Service) noticeSender(ctx context.Context) (string, error) {
	id := "@" + NoticesLocalpart + ":" + s.cfg.ServerName
	u, err := s.cfg.Store.GetUser(ctx, id)
	if errors.Is(err, storage.ErrNotFound) {
		err = s.cfg.Store.CreateUser(ctx, storage.User{UserID: id, DisplayName: "Server Notices", CreatedTS: s.cfg.Now().UnixMilli()})
		if errors.Is(err, storage.ErrConflict) {
			return id, nil // created meanwhile by another notice
		}
		return id, err
	}
	if err != nil {
		return "", err
	}
	if u.PasswordHash != "" {
		return "", fmt.Errorf("the account %s has a password: it belongs to someone, so it cannot send server notices", id)
	}
	return id, nil
}

// noticeRoom returns userID's notices room with userID joined, creating
// it if need be. Room version 12 derives a room's ID from its create
// event, so the ID is recorded right after creation: a crash in between
// leaves an unused room with the user invited, and the next notice makes
// another.
func (s *Service) noticeRoom(ctx context.Context, sender, userID string) (string, error) {
	room, err := s.cfg.Notices.ServerNoticeRoom(ctx, userID)
	switch {
	case err == nil:
		ms, err := s.cfg.Store.UserMemberships(ctx, userID, "join")
		if err != nil {
			return "", err
		}
		for _, m := range ms {
			if m.RoomID == room {
				return room, nil
			}
		}
		// Not joined: invited when a crash cut the set-up short, or
		// the room was deleted. Join it if possible, else start anew.
		if _, err := s.cfg.RoomOps.ChangeMembership(ctx, rooms.MembershipRequest{RoomID: room, Sender: userID, Target: userID,
			Membership: "join", ByService: true}); err == nil {
			return room, s.tagNoticeRoom(ctx, userID, room)
		}
	case !errors.Is(err, storage.ErrNotFound):
		return "", err
	}
	room, err = s.cfg.NoticeRooms.CreateRoom(ctx, rooms.CreateRequest{Creator: sender, Preset: "private_chat", Name: "Server Notices",
		Invite: []string{userID}, ByService: true,
		PowerLevelOverride: json.RawMessage(`{"events_default":100,"invite":100,"state_default":100}`)})
	if err != nil {
		return "", fmt.Errorf("notices room of %s: %w", userID, err)
	}
	if err := s.cfg.Notices.SetServerNoticeRoom(ctx, userID, room); err != nil {
		return "", err
	}
	if _, err := s.cfg.RoomOps.ChangeMembership(ctx, rooms.MembershipRequest{RoomID: room, Sender: userID, Target: userID,
		Membership: "join", ByService: true}); err != nil {
		return "", fmt.Errorf("join %s to the notices room: %w", userID, err)
	}
	return room, s.tagNoticeRoom(ctx, userID, room)
}

// tagNoticeRoom tags the room m.server_notice for userID, as the spec's
// server notices module says clients expect.
func (s *Service) tagNoticeRoom(ctx context.Context, userID, room string) error {
	return s.cfg.NoticeRooms.PutAccountData(ctx, userID, room, "m.tag", []byte(`{"tags":{"m.server_notice":{"order":0}}}`))
}

// SendNotice sends content (an m.room.message content) to one local user.
func (s *Service) SendNotice(ctx context.Context, actor, userID string, content json.RawMessage) (string, error) {
	if s.cfg.Notices == nil || s.cfg.NoticeRooms == nil || s.cfg.RoomOps == nil {
		return "", errors.New("server notices are not configured")
	}
	if err := checkNoticeContent(content); err != nil {
		return "", err
	}
	u, err := s.getUser(ctx, userID)
	if err != nil {
		return "", err
	}
	if u.Deactivated {
		return "", fail(ErrInvalidParam, "The account is deactivated")
	}
	sender, err := s.noticeSender(ctx)
	if err != nil {
		return "", err
	}
	if userID == sender {
		return "", fail(ErrInvalidParam, "The server-notices account cannot be sent notices")
	}
	room, err := s.noticeRoom(ctx, sender, userID)
	if err != nil {
		return "", err
	}
	id, err := s.cfg.RoomOps.Send(ctx, rooms.SendRequest{RoomID: room, Sender: sender, Type: "m.room.message", Content: content, ByService: true})
	if err != nil {
		return "", fmt.Errorf("notice to %s: %w", userID, err)
	}
	return id, s.audit(ctx, actor, "server_notice.send", userID, map[string]any{"event_id": id})
}

// SendNoticeToAll sends content to every active local user but the
// server-notices account, and returns how many got it. It stops at the
// first failure; the ones sent stay sent.
func (s *Service) SendNoticeToAll(ctx context.Context, actor string, content json.RawMessage, progress Progress) (int, error) {
	if err := checkNoticeContent(content); err != nil {
		return 0, err
	}
	sender := "@" + NoticesLocalpart + ":" + s.cfg.ServerName
	sent := 0
	p := Page{Limit: MaxLimit}
	for {
		users, next, err := s.Users(ctx, "", p)
		if err != nil {
			return sent, err
		}
		for _, u := range users {
			if u.Deactivated || u.UserID == sender {
				continue
			}
			if _, err := s.SendNotice(ctx, actor, u.UserID, content); err != nil {
				return sent, err
			}
			sent++
			if progress != nil {
				progress(sent, 0)
			}
		}
		if next == "" {
			return sent, nil
		}
		p.From = next
	}
}

func checkNoticeContent(content json.RawMessage) error {
	if len(content) == 0 {
		return fail(ErrMissingParam, "content is required")
	}
	if len(content) > MaxNoticeBytes {
		return fail(ErrInvalidParam, "content is too large")
	}
	var c struct {
		MsgType *string `json:"msgtype"`
		Body    *string `json:"body"`
	}
	if err := json.Unmarshal(content, &c); err != nil || c.MsgType == nil || c.Body == nil {
		return fail(ErrInvalidParam, "content must be an m.room.message content with msgtype and body")
	}
	return nil
}
