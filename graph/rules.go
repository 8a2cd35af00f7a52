package graph

import (
	"context"
	"crypto/rand"
	"fmt"
)

// Request states. Only pending requests are stored; the others are what
// Accept, Decline, Cancel and Block report about the request they removed.
const (
	statePending   = "pending"
	stateAccepted  = "accepted"
	stateDeclined  = "declined"
	stateCancelled = "cancelled"
)

// writeTx is one backend transaction as the rules see it: each method is a
// single statement, and the backend commits them together or not at all.
type writeTx interface {
	// lockUsers creates the users' records if needed and holds a write lock
	// on them until the transaction ends, so two operations about the same
	// users (a request each way, a block racing a follow) cannot interleave.
	lockUsers(ctx context.Context, a, b string) error
	blockedEitherWay(ctx context.Context, a, b string) (bool, error)
	areFriends(ctx context.Context, a, b string) (bool, error)
	// The add and remove methods report whether they changed anything.
	addFollow(ctx context.Context, from, to string) (bool, error)
	removeFollow(ctx context.Context, from, to string) (bool, error)
	addFriendship(ctx context.Context, a, b string) (bool, error)
	removeFriendship(ctx context.Context, a, b string) (bool, error)
	addBlock(ctx context.Context, blocker, blocked string) (bool, error)
	removeBlock(ctx context.Context, blocker, blocked string) (bool, error)
	// pendingRequest and requestByID return ok=false when there is no such
	// pending request. Their State is always pending.
	pendingRequest(ctx context.Context, from, to string) (r Request, ok bool, err error)
	requestByID(ctx context.Context, id string) (r Request, ok bool, err error)
	insertRequest(ctx context.Context, r Request) error
	deleteRequest(ctx context.Context, id string) (bool, error)
	setDMPolicy(ctx context.Context, userID string, p DMPolicy) error
}

// rules is every write of Store, written once over writeTx. Both backends
// embed it, so they agree on the semantics by construction and the
// conformance suite checks that their primitives do what writeTx says.
type rules struct {
	// inTx runs fn in one transaction and commits if fn returns nil. It may
	// run fn more than once (Neo4j retries transient failures), so fn must
	// have no effect outside the transaction. fn's ctx carries the backend's
	// deadline for the operation; fn uses it for every statement.
	inTx func(ctx context.Context, fn func(ctx context.Context, tx writeTx) error) error
}

// write runs fn in one transaction and returns its result only if the
// transaction committed; op names the operation in errors.
func write[T any](ctx context.Context, r rules, op string, fn func(ctx context.Context, tx writeTx) (T, error)) (T, error) {
	var out T
	err := r.inTx(ctx, func(ctx context.Context, tx writeTx) error {
		v, err := fn(ctx, tx)
		out = v
		return err
	})
	if err != nil {
		var zero T
		return zero, fmt.Errorf("%s: %w", op, err)
	}
	return out, nil
}

// Follow makes from follow to. It fails with ErrBlocked if either blocks the other.
func (r rules) Follow(ctx context.Context, from, to string) (bool, error) {
	if from == to {
		return false, ErrSelf
	}
	return write(ctx, r, "follow", func(ctx context.Context, tx writeTx) (bool, error) {
		if err := tx.lockUsers(ctx, from, to); err != nil {
			return false, err
		}
		if blocked, err := tx.blockedEitherWay(ctx, from, to); err != nil || blocked {
			return false, orBlocked(blocked, err)
		}
		return tx.addFollow(ctx, from, to)
	})
}

// Unfollow ends from's follow of to.
func (r rules) Unfollow(ctx context.Context, from, to string) (bool, error) {
	if from == to {
		return false, ErrSelf
	}
	return write(ctx, r, "unfollow", func(ctx context.Context, tx writeTx) (bool, error) {
		return tx.removeFollow(ctx, from, to)
	})
}

// RequestFriend asks to befriend to; see Store. The request ID is drawn
// before the transaction so that a retried transaction reuses it.
func (r rules) RequestFriend(ctx context.Context, from, to, message string, ts int64) (RequestOutcome, error) {
	if from == to {
		return RequestOutcome{}, ErrSelf
	}
	id := rand.Text()
	return write(ctx, r, "request friend", func(ctx context.Context, tx writeTx) (RequestOutcome, error) {
		if err := tx.lockUsers(ctx, from, to); err != nil {
			return RequestOutcome{}, err
		}
		if blocked, err := tx.blockedEitherWay(ctx, from, to); err != nil || blocked {
			return RequestOutcome{}, orBlocked(blocked, err)
		}
		if friends, err := tx.areFriends(ctx, from, to); err != nil || friends {
			return RequestOutcome{Friends: friends}, err
		}
		theirs, ok, err := tx.pendingRequest(ctx, to, from)
		if err != nil {
			return RequestOutcome{}, err
		}
		if ok { // both want it: their request is accepted
			if err := acceptLocked(ctx, tx, theirs); err != nil {
				return RequestOutcome{}, err
			}
			theirs.State = stateAccepted
			return RequestOutcome{Request: theirs, Friends: true, Changed: true}, nil
		}
		mine, ok, err := tx.pendingRequest(ctx, from, to)
		if err != nil || ok {
			return RequestOutcome{Request: mine}, err
		}
		req := Request{ID: id, From: from, To: to, Message: message, TS: ts, State: statePending}
		if err := tx.insertRequest(ctx, req); err != nil {
			return RequestOutcome{}, err
		}
		return RequestOutcome{Request: req, Changed: true}, nil
	})
}

// acceptLocked turns a pending request into a friendship. The caller holds
// the lock on both users; ErrNotFound means another transaction answered
// the request first.
func acceptLocked(ctx context.Context, tx writeTx, req Request) error {
	deleted, err := tx.deleteRequest(ctx, req.ID)
	if err != nil {
		return err
	}
	if !deleted {
		return ErrNotFound
	}
	_, err = tx.addFriendship(ctx, req.From, req.To)
	return err
}

// Accept makes the request's sender and its recipient userID friends.
func (r rules) Accept(ctx context.Context, requestID, userID string) (Request, error) {
	return write(ctx, r, "accept friend request", func(ctx context.Context, tx writeTx) (Request, error) {
		req, ok, err := tx.requestByID(ctx, requestID)
		if err != nil || !ok || req.To != userID {
			return Request{}, orNotFound(err)
		}
		// The users are known only now; lock them, then delete the request,
		// which fails if a block or an answer got in before the lock.
		if err := tx.lockUsers(ctx, req.From, req.To); err != nil {
			return Request{}, err
		}
		if err := acceptLocked(ctx, tx, req); err != nil {
			return Request{}, err
		}
		req.State = stateAccepted
		return req, nil
	})
}

// Decline drops a request to userID.
func (r rules) Decline(ctx context.Context, requestID, userID string) (Request, error) {
	return r.drop(ctx, "decline friend request", requestID, func(req Request) bool { return req.To == userID }, stateDeclined)
}

// Cancel drops a request from userID.
func (r rules) Cancel(ctx context.Context, requestID, userID string) (Request, error) {
	return r.drop(ctx, "cancel friend request", requestID, func(req Request) bool { return req.From == userID }, stateCancelled)
}

func (r rules) drop(ctx context.Context, op, requestID string, mayAnswer func(Request) bool, state string) (Request, error) {
	return write(ctx, r, op, func(ctx context.Context, tx writeTx) (Request, error) {
		req, ok, err := tx.requestByID(ctx, requestID)
		if err != nil || !ok || !mayAnswer(req) {
			return Request{}, orNotFound(err)
		}
		deleted, err := tx.deleteRequest(ctx, requestID)
		if err != nil || !deleted {
			return Request{}, orNotFound(err)
		}
		req.State = state
		return req, nil
	})
}

// Unfriend ends a and b's friendship.
func (r rules) Unfriend(ctx context.Context, a, b string) (bool, error) {
	if a == b {
		return false, ErrSelf
	}
	return write(ctx, r, "unfriend", func(ctx context.Context, tx writeTx) (bool, error) {
		return tx.removeFriendship(ctx, a, b)
	})
}

// Block cuts every tie between blocker and blocked; see Store.
func (r rules) Block(ctx context.Context, blocker, blocked string) (BlockEffects, error) {
	if blocker == blocked {
		return BlockEffects{}, ErrSelf
	}
	return write(ctx, r, "block", func(ctx context.Context, tx writeTx) (e BlockEffects, err error) {
		if err := tx.lockUsers(ctx, blocker, blocked); err != nil {
			return e, err
		}
		if e.Changed, err = tx.addBlock(ctx, blocker, blocked); err != nil {
			return e, err
		}
		if e.Unfriended, err = tx.removeFriendship(ctx, blocker, blocked); err != nil {
			return e, err
		}
		if e.Unfollowed, err = tx.removeFollow(ctx, blocker, blocked); err != nil {
			return e, err
		}
		if e.LostFollower, err = tx.removeFollow(ctx, blocked, blocker); err != nil {
			return e, err
		}
		if e.CancelledOut, err = cancelPending(ctx, tx, blocker, blocked); err != nil {
			return e, err
		}
		e.CancelledIn, err = cancelPending(ctx, tx, blocked, blocker)
		return e, err
	})
}

// cancelPending deletes from's pending request to to, if any, and returns it.
func cancelPending(ctx context.Context, tx writeTx, from, to string) ([]Request, error) {
	req, ok, err := tx.pendingRequest(ctx, from, to)
	if err != nil || !ok {
		return nil, err
	}
	if _, err := tx.deleteRequest(ctx, req.ID); err != nil {
		return nil, err
	}
	req.State = stateCancelled
	return []Request{req}, nil
}

// Unblock lifts blocker's block of blocked. It restores nothing the block removed.
func (r rules) Unblock(ctx context.Context, blocker, blocked string) (bool, error) {
	if blocker == blocked {
		return false, ErrSelf
	}
	return write(ctx, r, "unblock", func(ctx context.Context, tx writeTx) (bool, error) {
		return tx.removeBlock(ctx, blocker, blocked)
	})
}

// SetDMPolicy stores who may open a DM with userID.
func (r rules) SetDMPolicy(ctx context.Context, userID string, p DMPolicy) error {
	if p != DMAnyone && p != DMFriends {
		return fmt.Errorf("set dm policy: unknown policy %q", p)
	}
	_, err := write(ctx, r, "set dm policy", func(ctx context.Context, tx writeTx) (struct{}, error) {
		return struct{}{}, tx.setDMPolicy(ctx, userID, p)
	})
	return err
}

func orBlocked(blocked bool, err error) error {
	if err != nil {
		return err
	}
	if blocked {
		return ErrBlocked
	}
	return nil
}

func orNotFound(err error) error {
	if err != nil {
		return err
	}
	return ErrNotFound
}
