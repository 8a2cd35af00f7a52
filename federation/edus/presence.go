package edus

import (
	"context"
	"encoding/json"
	"log/slog"
	"sync"
	"time"

	"github.com/parley-im/parley/federation/outbound"
	"github.com/parley-im/parley/storage"
)

// MaxPresencePush bounds the users one outbound m.presence EDU carries;
// more go in further EDUs. With the queue's 100 EDUs per transaction, one
// transaction carries up to 10,000 presence changes.
const MaxPresencePush = 100

// PresenceOut sends local users' presence changes to the servers that
// share a small-tier room with them, as m.presence EDUs. Changes made
// while the sender is busy are batched: one EDU per destination carries
// many users, and a user's newer change replaces the older one not yet
// sent. The queue keeps presence in memory only (best effort, as other
// servers do).
type PresenceOut struct {
	// Static after NewPresenceOut.
	server string
	rooms  Rooms
	q      Queue
	log    *slog.Logger
	now    func() time.Time
	kick   chan struct{} // capacity 1: pending is not empty

	mu      sync.Mutex
	pending map[string]map[string]storage.Presence // guarded by mu: destination -> user -> newest change
}

// NewPresenceOut builds the sender for serverName's users. Run sends.
func NewPresenceOut(serverName string, rooms Rooms, q Queue, log *slog.Logger) *PresenceOut {
	if log == nil {
		log = slog.Default()
	}
	return &PresenceOut{server: serverName, rooms: rooms, q: q, log: log, now: time.Now,
		kick: make(chan struct{}, 1), pending: map[string]map[string]storage.Presence{}}
}

// Changed is told of a local user's stored presence change. It only notes
// it (memory, no I/O); Run sends.
func (p *PresenceOut) Changed(pr storage.Presence) {
	servers := serversSharing(p.rooms, p.q, pr.UserID, false)
	if len(servers) == 0 {
		return
	}
	p.mu.Lock()
	for _, s := range servers {
		m := p.pending[s]
		if m == nil {
			m = map[string]storage.Presence{}
			p.pending[s] = m
		}
		m[pr.UserID] = pr
	}
	p.mu.Unlock()
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// Run sends the noted changes until ctx ends.
func (p *PresenceOut) Run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-p.kick:
		}
		p.flush(ctx)
	}
}

// flush sends every pending change.
func (p *PresenceOut) flush(ctx context.Context) {
	p.mu.Lock()
	batch := p.pending
	p.pending = map[string]map[string]storage.Presence{}
	p.mu.Unlock()
	now := p.now().UnixMilli()
	for dest, users := range batch {
		push := make([]presenceEntry, 0, min(len(users), MaxPresencePush))
		for _, pr := range users {
			push = append(push, entryOf(pr, now))
			if len(push) == MaxPresencePush {
				p.send(ctx, dest, push)
				push = push[:0]
			}
		}
		if len(push) > 0 {
			p.send(ctx, dest, push)
		}
	}
}

func (p *PresenceOut) send(ctx context.Context, dest string, push []presenceEntry) {
	content, err := json.Marshal(presenceEDU{Push: push})
	if err != nil {
		return
	}
	if err := p.q.EnqueueEDU(ctx, dest, outbound.EDU{Type: "m.presence", Content: content}); err != nil {
		p.log.Debug("federation: presence not queued", "destination", dest, "err", err)
	}
}

// presenceEDU is the content of m.presence.
type presenceEDU struct {
	Push []presenceEntry `json:"push"`
}

type presenceEntry struct {
	UserID          string `json:"user_id"`
	Presence        string `json:"presence"`
	LastActiveAgo   int64  `json:"last_active_ago"`
	CurrentlyActive bool   `json:"currently_active"`
	StatusMsg       string `json:"status_msg,omitempty"`
}

// entryOf is one user's entry of the push list, as of now (ms).
func entryOf(pr storage.Presence, now int64) presenceEntry {
	ago := max(now-pr.LastActiveTS, 0)
	return presenceEntry{UserID: pr.UserID, Presence: pr.State, LastActiveAgo: ago,
		CurrentlyActive: pr.State == "online" && ago < 5*60*1000, StatusMsg: pr.StatusMsg}
}
