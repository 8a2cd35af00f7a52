package desks

import (
	"slices"
	"strings"
	"time"
)

// Status is what an agent says about themselves.
type Status string

// Agent statuses. Busy keeps an agent's consultations but takes no new
// ones; away (like an offline presence) also re-routes the ones they have.
const (
	StatusAvailable Status = "available"
	StatusBusy      Status = "busy"
	StatusAway      Status = "away"
)

func (st Status) valid() bool {
	return st == StatusAvailable || st == StatusBusy || st == StatusAway
}

// Strategy chooses among eligible agents.
type Strategy string

// Routing strategies.
const (
	LeastBusy  Strategy = "least_busy"  // lowest load, then idle longest
	RoundRobin Strategy = "round_robin" // the next eligible agent after the last one chosen
	Sticky     Strategy = "sticky"      // the customer's last agent if eligible, else least_busy
)

func (st Strategy) valid() bool { return st == LeastBusy || st == RoundRobin || st == Sticky }

// Candidate is one agent as routing sees them.
type Candidate struct {
	UserID       string
	Status       Status
	Skills       []string
	Capacity     int // 0: the desk's default
	Load         int // assigned, open consultations
	LastAssigned time.Time
}

// Route is one routing question.
type Route struct {
	Category        string
	Strategy        Strategy
	DefaultCapacity int
	// Preferred is the customer's last agent, tried first under Sticky.
	Preferred string
	// After is the agent chosen last, where RoundRobin continues from.
	After string
	// Exclude is never chosen: the customer, when they are an agent too.
	Exclude string
}

// capacity is the agent's own capacity, or the desk's default.
func (c *Candidate) capacity(def int) int {
	if c.Capacity > 0 {
		return c.Capacity
	}
	return def
}

// eligibleSansPresence is rule 1 without the presence check, which costs
// a lookup and so comes last.
func (c *Candidate) eligibleSansPresence(r *Route) bool {
	return c.Status == StatusAvailable && c.UserID != r.Exclude && c.Load < c.capacity(r.DefaultCapacity) &&
		slices.Contains(c.Skills, r.Category)
}

// Pick applies the routing rules to cands (sorted by UserID) and returns
// the index of the chosen agent, or -1 when none is eligible. An agent is
// eligible when their status is available, online(agent) holds, the
// category is among their skills and their load is under capacity.
// least_busy takes the lowest load, then the agent idle longest (oldest
// last assignment), then the lowest user ID so the choice is reproducible.
//
// Pick allocates nothing; it calls online only for agents that pass every
// other test.
func Pick(cands []Candidate, r Route, online func(userID string) bool) int {
	ok := func(i int) bool { return cands[i].eligibleSansPresence(&r) && online(cands[i].UserID) }
	switch r.Strategy {
	case Sticky:
		if r.Preferred != "" {
			if i, found := slices.BinarySearchFunc(cands, r.Preferred, func(c Candidate, id string) int {
				return strings.Compare(c.UserID, id)
			}); found && ok(i) {
				return i
			}
		}
	case RoundRobin:
		start, _ := slices.BinarySearchFunc(cands, r.After, func(c Candidate, id string) int { return strings.Compare(c.UserID, id) })
		if start < len(cands) && cands[start].UserID == r.After {
			start++
		}
		for k := range cands {
			if i := (start + k) % len(cands); ok(i) {
				return i
			}
		}
		return -1
	}
	best := -1
	for i := range cands {
		if !cands[i].eligibleSansPresence(&r) {
			continue
		}
		if best >= 0 && !lessBusy(&cands[i], &cands[best]) {
			continue
		}
		if online(cands[i].UserID) {
			best = i
		}
	}
	return best
}

// lessBusy orders least_busy's choice: lower load, then idle longer. Equal
// agents keep their UserID order (the earlier index wins).
func lessBusy(a, b *Candidate) bool {
	if a.Load != b.Load {
		return a.Load < b.Load
	}
	return a.LastAssigned.Before(b.LastAssigned)
}
