package main

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"
)

// report is a run's outcome. Its JSON form is what --json prints.
type report struct {
	Store   string `json:"store"`
	Seed    uint64 `json:"seed"`
	Clients int    `json:"clients"`
	Devices int    `json:"devices"`
	Rooms   int    `json:"rooms"`
	DMs     int    `json:"dms"`
	Sends   int    `json:"sends"`

	Acknowledged   int `json:"acknowledged"`
	Unacknowledged int `json:"unacknowledged"`         // attempted, never acknowledged
	UnackedPresent int `json:"unacknowledged_present"` // of those, stored once anyway
	NotSent        int `json:"not_sent"`               // never attempted: the run ran out of time
	Rejected       int `json:"rejected"`               // refused with a 4xx three times
	// RecoveredByTxn counts sends acknowledged only on a retry although an
	// earlier, failed attempt had already committed the event (its
	// origin_server_ts is older than the failure): the txnId turned the retry
	// into a lookup. It shows the idempotency path was really exercised.
	RecoveredByTxn int `json:"recovered_by_txn"`

	Lost              int `json:"lost"`
	Duplicated        int `json:"duplicated"`
	DuplicatedUnacked int `json:"duplicated_unacked"`
	OutOfOrder        int `json:"out_of_order"` // rooms + events below
	OutOfOrderRooms   int `json:"out_of_order_rooms"`
	OutOfOrderEvents  int `json:"out_of_order_events"`
	Phantom           int `json:"phantom"`

	Kills          int            `json:"kills"` // SIGKILLs during the sending
	KillsPlanned   int            `json:"kills_planned"`
	FinalKill      bool           `json:"final_kill"` // one more after the last acknowledgement
	Restarts       int            `json:"restarts"`
	SlowestRestart float64        `json:"slowest_restart_seconds"`
	Attempts       int            `json:"attempts"`
	Outcomes       map[string]int `json:"outcomes"`
	Views          int            `json:"views"` // room timelines read and compared
	WallSeconds    float64        `json:"wall_seconds"`
	SendSeconds    float64        `json:"send_seconds"`
	SendsPerSecond float64        `json:"sends_per_second"` // acknowledged / send phase

	Evidence []string `json:"evidence,omitempty"`
	WorkDir  string   `json:"work_dir,omitempty"` // kept when a promise is broken
	Database string   `json:"database,omitempty"` // kept likewise (PostgreSQL)
}

// Broken reports whether any promise of the delivery contract failed. A
// valid send refused with a 4xx is counted too: after a restart the server
// must accept what it accepted before.
func (r *report) Broken() bool {
	return r.Lost+r.Duplicated+r.DuplicatedUnacked+r.OutOfOrder+r.Phantom+r.Rejected > 0
}

func (r *report) writeText(w io.Writer) {
	fmt.Fprintf(w, "parley-crash: %s, seed %d: %d clients (%d devices), %d rooms (%d DMs, %d groups), %d sends\n",
		r.Store, r.Seed, r.Clients, r.Devices, r.Rooms, r.DMs, r.Rooms-r.DMs, r.Sends)
	row := func(name string, v any, note string) {
		fmt.Fprintf(w, "  %-24s %10v  %s\n", name, v, note)
	}
	row("acknowledged", r.Acknowledged, "")
	row("unacknowledged", r.Unacknowledged, fmt.Sprintf("present once anyway: %d", r.UnackedPresent))
	if r.NotSent > 0 {
		row("not sent (out of time)", r.NotSent, "")
	}
	row("recovered by txnId", r.RecoveredByTxn, "a failed attempt had committed; the retry returned its event")
	row("rejected (4xx)", r.Rejected, "")
	row("lost", r.Lost, "")
	row("duplicated", r.Duplicated, "")
	row("duplicated_unacked", r.DuplicatedUnacked, "")
	row("out_of_order", r.OutOfOrder, fmt.Sprintf("rooms %d, events %d", r.OutOfOrderRooms, r.OutOfOrderEvents))
	row("phantom", r.Phantom, "")
	final := ""
	if r.FinalKill {
		final = " + 1 after the last acknowledgement"
	}
	row("kills", r.Kills, fmt.Sprintf("of %d planned, during sending%s", r.KillsPlanned, final))
	row("restarts", r.Restarts, fmt.Sprintf("slowest %.2fs", r.SlowestRestart))
	var outs []string
	for _, k := range slices.Sorted(maps.Keys(r.Outcomes)) {
		outs = append(outs, fmt.Sprintf("%s %d", k, r.Outcomes[k]))
	}
	row("send attempts", r.Attempts, strings.Join(outs, ", "))
	row("views checked", r.Views, "/messages per room + initial sync per member device")
	row("wall time", (time.Duration(r.WallSeconds * float64(time.Second))).Round(100*time.Millisecond),
		fmt.Sprintf("sending %.1fs", r.SendSeconds))
	row("sends/s", fmt.Sprintf("%.1f", r.SendsPerSecond), "acknowledged / sending time")
	for _, e := range r.Evidence {
		fmt.Fprintln(w, "  !", e)
	}
	if r.WorkDir != "" {
		fmt.Fprintln(w, "  kept for inspection (sends.log, server.log, data/):", r.WorkDir)
	}
	if r.Database != "" {
		fmt.Fprintln(w, "  kept database:", r.Database)
	}
	if r.Broken() {
		fmt.Fprintln(w, "FAIL: a delivery promise is broken")
	} else {
		fmt.Fprintln(w, "PASS: every promise kept")
	}
}
