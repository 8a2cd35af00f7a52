package desks

import (
	"context"

	"github.com/parley-im/parley/storage"
)

// Profiles changes users' profiles with their rules, and copies a change
// into the user's member event in every room it is joined to.
// *profiles.Service implements it.
type Profiles interface {
	SetField(ctx context.Context, caller, target, field, value string) error
}

// Store is what the desks service needs of the database: desks, agents and
// consultations, and the few account and room reads routing makes.
// *storage.Store implements it.
type Store interface {
	Desks(ctx context.Context) ([]storage.Desk, error)
	PutDesk(ctx context.Context, d storage.Desk) error
	DeleteDesk(ctx context.Context, deskID string) error
	AllDeskTotals(ctx context.Context) (map[string]*storage.DeskTotals, error)
	RecentReplyTimes(ctx context.Context, deskID string, limit int) ([]int64, error)
	FirstReplies(ctx context.Context, checks []storage.ReplyCheck) (map[storage.ReplyCheck]int64, error)

	DeskAgents(ctx context.Context) ([]storage.DeskAgent, error)
	PutDeskAgent(ctx context.Context, a storage.DeskAgent) error
	DeleteDeskAgent(ctx context.Context, deskID, userID string) error
	SetDeskAgentStatus(ctx context.Context, deskID, userID, status string) error
	LastAgent(ctx context.Context, deskID, customer string) (string, error)

	GetConsultation(ctx context.Context, id string) (storage.Consultation, error)
	InsertConsultation(ctx context.Context, c storage.Consultation) error
	UpdateConsultation(ctx context.Context, c storage.Consultation, assigned bool) error
	OpenConsultations(ctx context.Context) ([]storage.Consultation, error)
	ClosedConsultations(ctx context.Context, deskID, userID string, limit int) ([]storage.Consultation, error)
	PendingConsultations(ctx context.Context) ([]storage.PendingConsultation, error)
	PendingConsultationOf(ctx context.Context, deskID, customer, category string) (storage.PendingConsultation, error)
	InsertPendingConsultation(ctx context.Context, p storage.PendingConsultation) error
	DeletePendingConsultation(ctx context.Context, id string) error

	CreateUser(ctx context.Context, u storage.User) error
	GetUser(ctx context.Context, userID string) (storage.User, error)
	GetRoom(ctx context.Context, roomID string) (storage.Room, error)
	RoomMemberships(ctx context.Context, roomID string) ([]storage.Membership, error)
}
