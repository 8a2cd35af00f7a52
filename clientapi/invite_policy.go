package clientapi

import (
	"context"
	"errors"
	"strings"

	"github.com/parley-im/parley/apierr"
	"github.com/parley-im/parley/graph"
	"github.com/parley-im/parley/storage"
)

// InvitePolicy is the server's say over invites (rooms.MembershipPolicy):
// the invitee must be an account of this server, and their blocks and DM
// policy must accept the inviter. The room service asks it for every
// invite, whatever the route (/invite, the state PUT, createRoom's invite
// list and initial_state), so the rule lives in one place. Its refusals are
// Matrix errors, given to the client as they are: 404 M_NOT_FOUND for an
// unknown user, 403 M_FORBIDDEN for a block or the DM policy.
type InvitePolicy struct {
	// Static after NewInvitePolicy.
	serverName string
	store      AccountReader
	graph      graph.Store // nil: no relationship checks
	// federated lets local users invite other servers' users, whose own
	// server then runs its policy (WithFederation).
	federated bool
}

// WithFederation returns the policy letting invites of other servers'
// users through: their server checks them (invite v2). Called once, before
// use.
func (p *InvitePolicy) WithFederation() *InvitePolicy {
	p.federated = true
	return p
}

// NewInvitePolicy builds the policy over the accounts in store and the
// relationships in g (nil for none).
func NewInvitePolicy(serverName string, store AccountReader, g graph.Store) *InvitePolicy {
	return &InvitePolicy{serverName: serverName, store: store, graph: g}
}

// CheckInvite checks the invitee exists here, then applies blocks and the
// invitee's DM policy.
func (p *InvitePolicy) CheckInvite(ctx context.Context, inviter, invitee string) error {
	if !strings.HasSuffix(invitee, ":"+p.serverName) {
		if p.federated {
			return nil // the invitee's server runs its own policy
		}
		return apierr.Forbidden("Federation is not enabled on this server: " + invitee + " is remote")
	}
	if _, err := p.store.GetUser(ctx, invitee); errors.Is(err, storage.ErrNotFound) {
		return apierr.NotFound("Unknown user " + invitee)
	} else if err != nil {
		return err
	}
	return p.checkRelationship(ctx, inviter, invitee)
}

// checkRelationship applies blocks and the invitee's DM policy to an invite
// (a DM is an invite too). It fails closed: if the graph cannot be asked,
// the invite is refused with 503 rather than let a blocked user through.
func (p *InvitePolicy) checkRelationship(ctx context.Context, inviter, invitee string) error {
	if p.graph == nil || inviter == invitee {
		return nil
	}
	rel, err := p.graph.Relationship(ctx, invitee, inviter)
	if err != nil {
		return graphErr(err, "")
	}
	switch {
	case rel.Blocked:
		return apierr.Forbidden("This user does not accept invites or direct messages from you")
	case rel.BlockedBy:
		return apierr.Forbidden("You have blocked this user; unblock them before inviting them")
	case rel.Friends:
		return nil
	}
	policy, err := p.graph.DMPolicy(ctx, invitee)
	if err != nil {
		return graphErr(err, "")
	}
	if policy == graph.DMFriends {
		return apierr.Forbidden("This user accepts invites and direct messages from friends only")
	}
	return nil
}

// AccountReader loads accounts, as the invite policy needs them.
// *storage.Store implements it.
type AccountReader interface {
	GetUser(ctx context.Context, userID string) (storage.User, error)
}
