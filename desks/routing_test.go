package desks

import (
	"fmt"
	"testing"
	"time"
)

func TestPick(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	agent := func(id string, load int, skills ...string) Candidate {
		return Candidate{UserID: id, Status: StatusAvailable, Skills: skills, Load: load, LastAssigned: t0}
	}
	with := func(c Candidate, f func(*Candidate)) Candidate { f(&c); return c }
	offline := map[string]bool{"@off:x": true}
	online := func(u string) bool { return !offline[u] }
	pre := func(s Strategy) Route { return Route{Category: "presale", Strategy: s, DefaultCapacity: 2} }
	routeWith := func(r Route, f func(*Route)) Route { f(&r); return r }

	cases := []struct {
		name  string
		cands []Candidate
		route Route
		want  string // "" for nobody
	}{
		{"nobody", nil, pre(LeastBusy), ""},
		{"lowest load", []Candidate{agent("@a:x", 1, "presale"), agent("@b:x", 0, "presale")}, pre(LeastBusy), "@b:x"},
		{"idle longest breaks a tie", []Candidate{
			with(agent("@a:x", 1, "presale"), func(c *Candidate) { c.LastAssigned = t0.Add(time.Minute) }),
			agent("@b:x", 1, "presale")}, pre(LeastBusy), "@b:x"},
		{"user ID breaks a full tie", []Candidate{agent("@a:x", 0, "presale"), agent("@b:x", 0, "presale")}, pre(LeastBusy), "@a:x"},
		{"skill needed", []Candidate{agent("@a:x", 0, "aftersale"), agent("@b:x", 1, "presale")}, pre(LeastBusy), "@b:x"},
		{"busy takes nothing new", []Candidate{with(agent("@a:x", 0, "presale"), func(c *Candidate) { c.Status = StatusBusy }), agent("@b:x", 1, "presale")}, pre(LeastBusy), "@b:x"},
		{"away takes nothing", []Candidate{with(agent("@a:x", 0, "presale"), func(c *Candidate) { c.Status = StatusAway })}, pre(LeastBusy), ""},
		{"offline takes nothing", []Candidate{agent("@off:x", 0, "presale"), agent("@z:x", 1, "presale")}, pre(LeastBusy), "@z:x"},
		{"desk capacity", []Candidate{agent("@a:x", 2, "presale")}, pre(LeastBusy), ""},
		{"own capacity above the desk's", []Candidate{with(agent("@a:x", 2, "presale"), func(c *Candidate) { c.Capacity = 3 })}, pre(LeastBusy), "@a:x"},
		{"own capacity below the desk's", []Candidate{with(agent("@a:x", 1, "presale"), func(c *Candidate) { c.Capacity = 1 })}, pre(LeastBusy), ""},
		{"never the customer", []Candidate{agent("@a:x", 0, "presale"), agent("@b:x", 1, "presale")},
			routeWith(pre(LeastBusy), func(r *Route) { r.Exclude = "@a:x" }), "@b:x"},
		{"sticky: last agent though busier", []Candidate{agent("@a:x", 0, "presale"), agent("@b:x", 1, "presale")},
			routeWith(pre(Sticky), func(r *Route) { r.Preferred = "@b:x" }), "@b:x"},
		{"sticky: last agent full, least busy", []Candidate{agent("@a:x", 1, "presale"), agent("@b:x", 2, "presale"), agent("@c:x", 0, "presale")},
			routeWith(pre(Sticky), func(r *Route) { r.Preferred = "@b:x" }), "@c:x"},
		{"sticky: last agent offline", []Candidate{agent("@a:x", 1, "presale"), agent("@off:x", 0, "presale")},
			routeWith(pre(Sticky), func(r *Route) { r.Preferred = "@off:x" }), "@a:x"},
		{"sticky: last agent gone from the desk", []Candidate{agent("@a:x", 1, "presale")},
			routeWith(pre(Sticky), func(r *Route) { r.Preferred = "@gone:x" }), "@a:x"},
		{"round robin: the next after the last", []Candidate{agent("@a:x", 0, "presale"), agent("@b:x", 1, "presale"), agent("@c:x", 1, "presale")},
			routeWith(pre(RoundRobin), func(r *Route) { r.After = "@a:x" }), "@b:x"},
		{"round robin: wraps", []Candidate{agent("@a:x", 1, "presale"), agent("@b:x", 0, "presale"), agent("@c:x", 0, "presale")},
			routeWith(pre(RoundRobin), func(r *Route) { r.After = "@c:x" }), "@a:x"},
		{"round robin: skips the ineligible", []Candidate{agent("@a:x", 0, "presale"), agent("@b:x", 0, "aftersale"), agent("@c:x", 2, "presale")},
			routeWith(pre(RoundRobin), func(r *Route) { r.After = "@a:x" }), "@a:x"},
		{"round robin: last one removed", []Candidate{agent("@a:x", 0, "presale"), agent("@c:x", 0, "presale")},
			routeWith(pre(RoundRobin), func(r *Route) { r.After = "@b:x" }), "@c:x"},
		{"round robin: first ever", []Candidate{agent("@a:x", 0, "presale"), agent("@c:x", 0, "presale")}, pre(RoundRobin), "@a:x"},
		{"round robin: nobody", []Candidate{agent("@a:x", 2, "presale")}, pre(RoundRobin), ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := ""
			if i := Pick(tc.cands, tc.route, online); i >= 0 {
				got = tc.cands[i].UserID
			}
			if got != tc.want {
				t.Errorf("Pick = %q, want %q", got, tc.want)
			}
		})
	}
}

// BenchmarkPick is one routing decision on a desk of 50 agents with mixed
// skills, statuses and loads: what every open, close and queue step costs
// under the desk's lock, presence lookups aside.
func BenchmarkPick(b *testing.B) {
	cands := make([]Candidate, 50)
	statuses := []Status{StatusAvailable, StatusAvailable, StatusAvailable, StatusBusy, StatusAway}
	for i := range cands {
		skills := []string{"presale"}
		if i%3 == 0 {
			skills = []string{"aftersale"}
		} else if i%3 == 1 {
			skills = []string{"presale", "aftersale"}
		}
		cands[i] = Candidate{UserID: fmt.Sprintf("@agent%02d:x", i), Status: statuses[i%len(statuses)], Skills: skills,
			Load: i % 5, LastAssigned: time.Unix(int64(i*7%50), 0)}
	}
	online := func(string) bool { return true }
	for _, s := range []Strategy{LeastBusy, RoundRobin, Sticky} {
		r := Route{Category: "aftersale", Strategy: s, DefaultCapacity: 5, Preferred: "@agent03:x", After: "@agent20:x"}
		b.Run(string(s), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if Pick(cands, r, online) < 0 {
					b.Fatal("nobody picked")
				}
			}
		})
	}
}
