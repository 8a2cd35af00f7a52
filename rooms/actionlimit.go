package rooms

import (
	"errors"
	"fmt"
	"time"

	"github.com/parley-im/parley/ratelimit"
)

// Rate limits per action kind: messages, joins, invites and room creation,
// each with its own bucket per user, as Synapse has (rc_message, rc_joins,
// rc_invites). They are checked here, at the writer's entry points (Send,
// Redact, ChangeMembership, CreateRoom), because every route to an action
// passes through them: /send, /state and /redact share the message bucket,
// /join/{alias} and /rooms/{id}/join the join bucket, /invite and
// createRoom's invite list the invite buckets. An HTTP middleware keyed by
// route would miss the next route someone adds.
//
// Server-side services (desks) acting on their own schedule are not
// limited: they mark their requests ByService, which clients never set.

// ActionLimits holds the limiters. A nil *ActionLimits or a nil limiter
// means unlimited.
type ActionLimits struct {
	// Static after construction.
	Message    *ratelimit.Limiter // per sender: events sent (Send, Redact)
	Join       *ratelimit.Limiter // per user: rooms joined
	CreateRoom *ratelimit.Limiter // per creator: rooms created
	// InvitePerRoom is keyed by room, InvitePerUser by invitee.
	InvitePerRoom *ratelimit.Limiter
	InvitePerUser *ratelimit.Limiter
	// Exempt users are never limited (bridges, bots).
	Exempt map[string]bool
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
}

// ErrRateLimited is wrapped by *RateLimitError.
var ErrRateLimited = errors.New("rate limited")

// RateLimitError says an action went over its limit; nothing was written.
type RateLimitError struct {
	Action     string // message, join, invite or create_room
	RetryAfter time.Duration
}

func (e *RateLimitError) Error() string {
	return fmt.Sprintf("%v: too many %s actions; retry after %v", ErrRateLimited, e.Action, e.RetryAfter)
}

func (e *RateLimitError) Unwrap() error { return ErrRateLimited }

func (l *ActionLimits) now() time.Time {
	if l.Now != nil {
		return l.Now()
	}
	return time.Now()
}

func (l *ActionLimits) take(lim *ratelimit.Limiter, action, key, user string) error {
	if l == nil || lim == nil || l.Exempt[user] {
		return nil
	}
	if ok, retry := lim.Allow(key, l.now()); !ok {
		return &RateLimitError{Action: action, RetryAfter: retry}
	}
	return nil
}

// message takes a token for one event sent by user.
func (l *ActionLimits) message(user string) error {
	if l == nil {
		return nil
	}
	return l.take(l.Message, "message", user, user)
}

// join takes a token for one room joined by user.
func (l *ActionLimits) join(user string) error {
	if l == nil {
		return nil
	}
	return l.take(l.Join, "join", user, user)
}

// createRoom takes a token for one room created by user.
func (l *ActionLimits) createRoom(user string) error {
	if l == nil {
		return nil
	}
	return l.take(l.CreateRoom, "create_room", user, user)
}

// invite takes a token from the room's bucket and from the invitee's; when
// the invitee's is empty the room's token is given back, so a refused
// invite costs nothing.
func (l *ActionLimits) invite(sender, roomID, invitee string) error {
	if l == nil {
		return nil
	}
	if err := l.take(l.InvitePerRoom, "invite", roomID, sender); err != nil {
		return err
	}
	if err := l.take(l.InvitePerUser, "invite", invitee, sender); err != nil {
		if !l.Exempt[sender] {
			l.InvitePerRoom.Refund(roomID, l.now())
		}
		return err
	}
	return nil
}

// inviteAtCreate takes a token from each invitee's bucket for createRoom's
// invite list (a new room has no invite history of its own). All or
// nothing: when one invitee's bucket is empty the tokens taken are given
// back and the room is not created.
func (l *ActionLimits) inviteAtCreate(creator string, invitees []string) error {
	if l == nil || l.InvitePerUser == nil || l.Exempt[creator] {
		return nil
	}
	for i, u := range invitees {
		if err := l.take(l.InvitePerUser, "invite", u, creator); err != nil {
			for _, v := range invitees[:i] {
				l.InvitePerUser.Refund(v, l.now())
			}
			return err
		}
	}
	return nil
}

// refundCreateRoom gives back the token createRoom took, for a creation
// refused afterwards by the invite limit.
func (l *ActionLimits) refundCreateRoom(user string) {
	if l == nil || l.Exempt[user] {
		return
	}
	l.CreateRoom.Refund(user, l.now())
}
