package desks

import (
	"context"
	"slices"
	"time"

	"github.com/parley-im/parley/storage"
)

// ConsultationView is a consultation as its customer and agent see it.
type ConsultationView struct {
	ConsultationID string  `json:"consultation_id"`
	DeskID         string  `json:"desk_id"`
	RoomID         string  `json:"room_id"`
	Customer       string  `json:"customer"`
	Category       string  `json:"category"`
	State          State   `json:"state"`
	Agent          *string `json:"agent"`
	QueuePosition  int     `json:"queue_position"`
	OpenedTS       int64   `json:"opened_ts"`
	AssignedTS     int64   `json:"assigned_ts,omitempty"`
	ClosedTS       int64   `json:"closed_ts,omitempty"`
	Rating         int     `json:"rating,omitempty"`
}

func (d *desk) viewLocked(c *consultation) ConsultationView {
	v := ConsultationView{ConsultationID: c.id, DeskID: d.id, RoomID: c.roomID, Customer: c.customer, Category: c.category,
		State: c.state, QueuePosition: d.position(c), OpenedTS: ms(c.opened), AssignedTS: ms(c.assignedAt),
		ClosedTS: ms(c.closedAt), Rating: c.rating}
	if c.agent != "" {
		a := c.agent
		v.Agent = &a
	}
	return v
}

func rowView(r storage.Consultation) ConsultationView {
	v := ConsultationView{ConsultationID: r.ID, DeskID: r.DeskID, RoomID: r.RoomID, Customer: r.Customer, Category: r.Category,
		State: State(r.State), OpenedTS: r.OpenedTS, AssignedTS: r.AssignedTS, ClosedTS: r.ClosedTS, Rating: r.Rating}
	if r.Agent != "" {
		a := r.Agent
		v.Agent = &a
	}
	return v
}

// DeskView is a desk's settings and, from Desk, its live state.
type DeskView struct {
	DeskID        string       `json:"desk_id"`
	Name          string       `json:"name"`
	Categories    []string     `json:"categories"`
	Strategy      Strategy     `json:"strategy"`
	Capacity      int          `json:"capacity"`
	ReplyTimeoutS int          `json:"reply_timeout_s"`
	ServiceUser   string       `json:"service_user"`
	Agents        []AgentView  `json:"agents"`
	Queue         []QueueEntry `json:"queue"`
	Metrics       MetricsView  `json:"metrics"`
}

// AgentView is one agent's live state.
type AgentView struct {
	UserID   string   `json:"user_id"`
	Skills   []string `json:"skills"`
	Capacity int      `json:"capacity"` // in effect: their own, or the desk's default
	// OwnCapacity is the agent's own setting; 0 means the desk's default.
	OwnCapacity   int      `json:"own_capacity"`
	Status        Status   `json:"status"`
	Presence      string   `json:"presence"`
	Load          int      `json:"load"`
	Available     bool     `json:"available"` // takes new consultations now (of some skill)
	Consultations []string `json:"consultations"`
}

// QueueEntry is one waiting customer, in queue order.
type QueueEntry struct {
	ConsultationID string  `json:"consultation_id"`
	Customer       string  `json:"customer"`
	Category       string  `json:"category"`
	Position       int     `json:"position"` // among the queued of its category
	WaitingS       float64 `json:"waiting_s"`
}

func (d *desk) configLocked() DeskView {
	return DeskView{DeskID: d.id, Name: d.cfg.Name, Categories: slices.Clone(d.cfg.Categories), Strategy: Strategy(d.cfg.Strategy),
		Capacity: d.cfg.Capacity, ReplyTimeoutS: d.cfg.ReplyTimeoutS, ServiceUser: d.cfg.ServiceUser,
		Agents: []AgentView{}, Queue: []QueueEntry{}}
}

// liveLocked adds agents, queue and metrics to the settings.
func (s *Service) liveLocked(ctx context.Context, d *desk, now time.Time) DeskView {
	v := d.configLocked()
	for i := range d.cands {
		v.Agents = append(v.Agents, s.agentViewLocked(ctx, d, i))
	}
	pos := map[string]int{}
	for _, c := range d.queue {
		pos[c.category]++
		v.Queue = append(v.Queue, QueueEntry{ConsultationID: c.id, Customer: c.customer, Category: c.category,
			Position: pos[c.category], WaitingS: now.Sub(c.queuedAt).Seconds()})
	}
	v.Metrics = d.metricsLocked(now)
	return v
}

func (s *Service) agentViewLocked(ctx context.Context, d *desk, i int) AgentView {
	a := &d.cands[i]
	pres := s.presence(ctx, a.UserID)
	av := AgentView{UserID: a.UserID, Skills: slices.Clone(a.Skills), Capacity: a.capacity(d.cfg.Capacity), OwnCapacity: a.Capacity,
		Status: a.Status, Presence: pres, Load: a.Load, Consultations: []string{}}
	av.Available = a.Status == StatusAvailable && pres == "online" && a.Load < av.Capacity && len(a.Skills) > 0
	for _, c := range d.consultationsOf(a.UserID) {
		av.Consultations = append(av.Consultations, c.id)
	}
	return av
}
