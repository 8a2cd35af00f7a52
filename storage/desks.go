package storage

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// Desk is a customer-service desk's settings (package desks owns the rules).
type Desk struct {
	DeskID        string
	Name          string
	Categories    []string
	Strategy      string
	Capacity      int
	ReplyTimeoutS int
	ServiceUser   string
	CreatedTS     int64
}

// DeskAgent is one agent of one desk.
type DeskAgent struct {
	DeskID         string
	UserID         string
	Skills         []string
	Capacity       int // 0: the desk's default
	Status         string
	LastAssignedTS int64
}

// Consultation is one customer's consultation on a desk. Times are Unix
// milliseconds, 0 when the moment has not come.
type Consultation struct {
	ID             string
	DeskID         string
	RoomID         string
	Customer       string
	Category       string
	State          string
	Agent          string
	PreferredAgent string
	QueueSeq       int64
	OpenedTS       int64
	QueuedTS       int64
	AssignedTS     int64
	FirstReplyTS   int64
	ClosedTS       int64
	ClosedBy       string
	Rating         int
	Reroutes       int
}

// DeskTotals are a desk's all-time figures, summed over its consultations.
type DeskTotals struct {
	Opened, Reroutes int64
	Replied          int64 // consultations with a first agent reply
	ReplyMsSum       int64 // their opened-to-first-reply times, summed
	Ratings          [6]int64
	MinSeq, MaxSeq   int64 // bounds of queue_seq, so new numbers never collide
}

func jsonList(l []string) string {
	if l == nil {
		l = []string{}
	}
	b, _ := json.Marshal(l) // a []string always marshals
	return string(b)
}

func parseList(s string) ([]string, error) {
	var l []string
	if err := json.Unmarshal([]byte(s), &l); err != nil {
		return nil, err
	}
	return l, nil
}

// PutDesk creates or replaces a desk's settings.
func (s *Store) PutDesk(ctx context.Context, d Desk) error {
	_, err := s.write.ExecContext(ctx, `INSERT INTO desks (desk_id, name, categories, strategy, capacity, reply_timeout_s, service_user, created_ts)
		VALUES ($1,$2,$3,$4,$5,$6,$7,$8)
		ON CONFLICT (desk_id) DO UPDATE SET name = excluded.name, categories = excluded.categories, strategy = excluded.strategy,
			capacity = excluded.capacity, reply_timeout_s = excluded.reply_timeout_s, service_user = excluded.service_user`,
		d.DeskID, d.Name, jsonList(d.Categories), d.Strategy, d.Capacity, d.ReplyTimeoutS, d.ServiceUser, d.CreatedTS)
	if err != nil {
		return fmt.Errorf("put desk %s: %w", d.DeskID, err)
	}
	return nil
}

// DeleteDesk removes a desk with its agents and consultations, in one
// transaction. The consultations' rooms stay: they belong to the room logs.
func (s *Store) DeleteDesk(ctx context.Context, deskID string) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		for _, table := range []string{"desk_consultations", "desk_pending_consultations", "desk_agents", "desks"} {
			if _, err := tx.ExecContext(ctx, `DELETE FROM `+table+` WHERE desk_id = $1`, deskID); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("delete desk %s: %w", deskID, err)
	}
	return nil
}

// Desks lists every desk.
func (s *Store) Desks(ctx context.Context) ([]Desk, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT desk_id, name, categories, strategy, capacity, reply_timeout_s, service_user, created_ts
		FROM desks ORDER BY desk_id`)
	if err != nil {
		return nil, fmt.Errorf("desks: %w", err)
	}
	defer rows.Close()
	var out []Desk
	for rows.Next() {
		var d Desk
		var cats string
		if err := rows.Scan(&d.DeskID, &d.Name, &cats, &d.Strategy, &d.Capacity, &d.ReplyTimeoutS, &d.ServiceUser, &d.CreatedTS); err != nil {
			return nil, fmt.Errorf("desks: %w", err)
		}
		if d.Categories, err = parseList(cats); err != nil {
			return nil, fmt.Errorf("desk %s categories: %w", d.DeskID, err)
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// PutDeskAgent creates or updates an agent's skills and capacity. A new
// agent gets a.Status; an existing one keeps theirs and their last
// assignment time.
func (s *Store) PutDeskAgent(ctx context.Context, a DeskAgent) error {
	_, err := s.write.ExecContext(ctx, `INSERT INTO desk_agents (desk_id, user_id, skills, capacity, status, last_assigned_ts)
		VALUES ($1,$2,$3,$4,$5,$6)
		ON CONFLICT (desk_id, user_id) DO UPDATE SET skills = excluded.skills, capacity = excluded.capacity`,
		a.DeskID, a.UserID, jsonList(a.Skills), a.Capacity, a.Status, a.LastAssignedTS)
	if err != nil {
		return fmt.Errorf("put desk agent %s/%s: %w", a.DeskID, a.UserID, err)
	}
	return nil
}

// DeleteDeskAgent removes an agent from a desk.
func (s *Store) DeleteDeskAgent(ctx context.Context, deskID, userID string) error {
	if _, err := s.write.ExecContext(ctx, `DELETE FROM desk_agents WHERE desk_id = $1 AND user_id = $2`, deskID, userID); err != nil {
		return fmt.Errorf("delete desk agent %s/%s: %w", deskID, userID, err)
	}
	return nil
}

// SetDeskAgentStatus records an agent's status (available, busy, away).
func (s *Store) SetDeskAgentStatus(ctx context.Context, deskID, userID, status string) error {
	return s.execOne(ctx, `UPDATE desk_agents SET status = $3 WHERE desk_id = $1 AND user_id = $2`, deskID, userID, status)
}

// DeskAgents lists the agents of every desk.
func (s *Store) DeskAgents(ctx context.Context) ([]DeskAgent, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT desk_id, user_id, skills, capacity, status, last_assigned_ts FROM desk_agents ORDER BY desk_id, user_id`)
	if err != nil {
		return nil, fmt.Errorf("desk agents: %w", err)
	}
	defer rows.Close()
	var out []DeskAgent
	for rows.Next() {
		var a DeskAgent
		var skills string
		if err := rows.Scan(&a.DeskID, &a.UserID, &skills, &a.Capacity, &a.Status, &a.LastAssignedTS); err != nil {
			return nil, fmt.Errorf("desk agents: %w", err)
		}
		if a.Skills, err = parseList(skills); err != nil {
			return nil, fmt.Errorf("desk agent %s/%s skills: %w", a.DeskID, a.UserID, err)
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

const consultationCols = `consultation_id, desk_id, room_id, customer, category, state, agent, preferred_agent, queue_seq,
	opened_ts, queued_ts, assigned_ts, first_reply_ts, closed_ts, closed_by, rating, reroutes`

func scanConsultation(row interface{ Scan(...any) error }) (Consultation, error) {
	var c Consultation
	err := row.Scan(&c.ID, &c.DeskID, &c.RoomID, &c.Customer, &c.Category, &c.State, &c.Agent, &c.PreferredAgent, &c.QueueSeq,
		&c.OpenedTS, &c.QueuedTS, &c.AssignedTS, &c.FirstReplyTS, &c.ClosedTS, &c.ClosedBy, &c.Rating, &c.Reroutes)
	return c, err
}

func collectConsultations(rows *sql.Rows) ([]Consultation, error) {
	defer rows.Close()
	var out []Consultation
	for rows.Next() {
		c, err := scanConsultation(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// InsertConsultation stores a new consultation. When it is born assigned,
// the agent's last assignment time moves in the same transaction.
func (s *Store) InsertConsultation(ctx context.Context, c Consultation) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO desk_consultations (`+consultationCols+`)
			VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17)`,
			c.ID, c.DeskID, c.RoomID, c.Customer, c.Category, c.State, c.Agent, c.PreferredAgent, c.QueueSeq,
			c.OpenedTS, c.QueuedTS, c.AssignedTS, c.FirstReplyTS, c.ClosedTS, c.ClosedBy, c.Rating, c.Reroutes)
		if err != nil {
			return err
		}
		return touchAgent(ctx, tx, c)
	})
	if err != nil {
		return fmt.Errorf("insert consultation %s: %w", c.ID, err)
	}
	return nil
}

// UpdateConsultation writes every changeable column of c. With assigned
// set, c has just been assigned: the agent's last assignment time moves in
// the same transaction.
func (s *Store) UpdateConsultation(ctx context.Context, c Consultation, assigned bool) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE desk_consultations SET state = $2, agent = $3, preferred_agent = $4, queue_seq = $5,
				queued_ts = $6, assigned_ts = $7, first_reply_ts = $8, closed_ts = $9, closed_by = $10, rating = $11, reroutes = $12
			WHERE consultation_id = $1`,
			c.ID, c.State, c.Agent, c.PreferredAgent, c.QueueSeq, c.QueuedTS, c.AssignedTS, c.FirstReplyTS, c.ClosedTS, c.ClosedBy, c.Rating, c.Reroutes)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrNotFound
		}
		if !assigned {
			return nil
		}
		return touchAgent(ctx, tx, c)
	})
	if err != nil {
		return fmt.Errorf("update consultation %s: %w", c.ID, err)
	}
	return nil
}

func touchAgent(ctx context.Context, tx *sql.Tx, c Consultation) error {
	if c.State != "assigned" || c.Agent == "" {
		return nil
	}
	_, err := tx.ExecContext(ctx, `UPDATE desk_agents SET last_assigned_ts = $3 WHERE desk_id = $1 AND user_id = $2`, c.DeskID, c.Agent, c.AssignedTS)
	return err
}

// OpenConsultations lists every consultation not closed, of every desk.
func (s *Store) OpenConsultations(ctx context.Context) ([]Consultation, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT `+consultationCols+` FROM desk_consultations
		WHERE state <> 'closed' ORDER BY desk_id, queue_seq, opened_ts`)
	if err != nil {
		return nil, fmt.Errorf("open consultations: %w", err)
	}
	return collectConsultations(rows)
}

// GetConsultation loads one consultation.
func (s *Store) GetConsultation(ctx context.Context, id string) (Consultation, error) {
	c, err := scanConsultation(s.read.QueryRowContext(ctx, `SELECT `+consultationCols+` FROM desk_consultations WHERE consultation_id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Consultation{}, ErrNotFound
	}
	if err != nil {
		return Consultation{}, fmt.Errorf("get consultation %s: %w", id, err)
	}
	return c, nil
}

// ClosedConsultations lists the newest closed consultations of a desk in
// which userID was the customer or the last agent.
func (s *Store) ClosedConsultations(ctx context.Context, deskID, userID string, limit int) ([]Consultation, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT `+consultationCols+` FROM desk_consultations
		WHERE desk_id = $1 AND state = 'closed' AND (agent = $2 OR customer = $2) ORDER BY closed_ts DESC, consultation_id LIMIT $3`,
		deskID, userID, limit)
	if err != nil {
		return nil, fmt.Errorf("closed consultations: %w", err)
	}
	return collectConsultations(rows)
}

// LastAgent returns the agent of the customer's most recent consultation
// on the desk that had one, or "".
func (s *Store) LastAgent(ctx context.Context, deskID, customer string) (string, error) {
	var agent string
	err := s.read.QueryRowContext(ctx, `SELECT agent FROM desk_consultations WHERE desk_id = $1 AND customer = $2 AND agent <> ''
		ORDER BY opened_ts DESC, consultation_id DESC LIMIT 1`, deskID, customer).Scan(&agent)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("last agent: %w", err)
	}
	return agent, nil
}

// AllDeskTotals sums every desk's consultations, for the metrics at start.
func (s *Store) AllDeskTotals(ctx context.Context) (map[string]*DeskTotals, error) {
	out := map[string]*DeskTotals{}
	rows, err := s.read.QueryContext(ctx, `SELECT desk_id, COUNT(*), CAST(COALESCE(SUM(reroutes), 0) AS BIGINT),
			CAST(COALESCE(SUM(CASE WHEN first_reply_ts > 0 THEN 1 ELSE 0 END), 0) AS BIGINT),
			CAST(COALESCE(SUM(CASE WHEN first_reply_ts > 0 THEN first_reply_ts - opened_ts ELSE 0 END), 0) AS BIGINT),
			COALESCE(MIN(queue_seq), 0), COALESCE(MAX(queue_seq), 0)
		FROM desk_consultations GROUP BY desk_id`)
	if err != nil {
		return nil, fmt.Errorf("desk totals: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		t := &DeskTotals{}
		if err := rows.Scan(&id, &t.Opened, &t.Reroutes, &t.Replied, &t.ReplyMsSum, &t.MinSeq, &t.MaxSeq); err != nil {
			return nil, fmt.Errorf("desk totals: %w", err)
		}
		out[id] = t
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("desk totals: %w", err)
	}
	rows, err = s.read.QueryContext(ctx, `SELECT desk_id, rating, COUNT(*) FROM desk_consultations WHERE rating BETWEEN 1 AND 5 GROUP BY desk_id, rating`)
	if err != nil {
		return nil, fmt.Errorf("desk ratings: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var rating int
		var n int64
		if err := rows.Scan(&id, &rating, &n); err != nil {
			return nil, fmt.Errorf("desk ratings: %w", err)
		}
		if t := out[id]; t != nil {
			t.Ratings[rating] = n
		}
	}
	return out, rows.Err()
}

// RecentReplyTimes returns the opened-to-first-reply times (ms) of a desk's
// newest answered consultations, newest first, at most limit of them.
func (s *Store) RecentReplyTimes(ctx context.Context, deskID string, limit int) ([]int64, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT first_reply_ts - opened_ts FROM desk_consultations
		WHERE desk_id = $1 AND first_reply_ts > 0 ORDER BY first_reply_ts DESC LIMIT $2`, deskID, limit)
	if err != nil {
		return nil, fmt.Errorf("recent reply times: %w", err)
	}
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var ms int64
		if err := rows.Scan(&ms); err != nil {
			return nil, fmt.Errorf("recent reply times: %w", err)
		}
		out = append(out, ms)
	}
	return out, rows.Err()
}

// ReplyCheck asks whether Sender has sent a message in RoomID at or after
// SinceTS (Unix ms).
type ReplyCheck struct {
	RoomID  string
	Sender  string
	SinceTS int64
}

// FirstReplies answers many ReplyChecks: for each that has one, the
// origin_ts of the earliest m.room.message that matches. One query per 300
// checks, through a VALUES join on the events index.
func (s *Store) FirstReplies(ctx context.Context, checks []ReplyCheck) (map[ReplyCheck]int64, error) {
	out := map[ReplyCheck]int64{}
	const chunk = 300
	for start := 0; start < len(checks); start += chunk {
		part := checks[start:min(start+chunk, len(checks))]
		var values strings.Builder
		args := make([]any, 0, 3*len(part))
		for i, c := range part {
			if i > 0 {
				values.WriteByte(',')
			}
			fmt.Fprintf(&values, "(CAST($%d AS TEXT), CAST($%d AS TEXT), CAST($%d AS BIGINT))", len(args)+1, len(args)+2, len(args)+3)
			args = append(args, c.RoomID, c.Sender, c.SinceTS)
		}
		rows, err := s.read.QueryContext(ctx, `SELECT b.column1, b.column2, b.column3, MIN(e.origin_ts)
			FROM (VALUES `+values.String()+`) AS b
			JOIN events e ON e.room_id = b.column1 AND e.sender = b.column2 AND e.origin_ts >= b.column3 AND e.type = 'm.room.message'
			GROUP BY b.column1, b.column2, b.column3`, args...)
		if err != nil {
			return nil, fmt.Errorf("first replies: %w", err)
		}
		for rows.Next() {
			var c ReplyCheck
			var ts int64
			if err := rows.Scan(&c.RoomID, &c.Sender, &c.SinceTS, &ts); err != nil {
				rows.Close()
				return nil, fmt.Errorf("first replies: %w", err)
			}
			out[c] = ts
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("first replies: %w", err)
		}
	}
	return out, nil
}
