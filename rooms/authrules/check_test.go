package authrules

import (
	"errors"
	"strings"
	"testing"
)

func TestCheckScenarios(t *testing.T) {
	for _, v := range []string{"10", "11"} {
		for _, s := range allScenarios() {
			r := newRoom(t, v)
			ev := s.prepare(r)
			err := Check(v, ev, r.authFor(ev))
			if (err == nil) != s.allow {
				t.Errorf("Check(v%s %s) = %v, want allowed %v", v, s.name, err, s.allow)
			}
			if err != nil && (!errors.Is(err, ErrNotAllowed) || strings.Contains(err.Error(), "%!")) {
				t.Errorf("Check(v%s %s) = %q, want a clean ErrNotAllowed reason", v, s.name, err)
			}
		}
	}
}

func TestCheckReasons(t *testing.T) {
	r := newRoom(t, "11")
	ev := r.build(r.proto(bob, "m.room.name", new(string), `{"name":"x"}`))
	err := Check("11", ev, r.authFor(ev))
	if want := "sender's power level 0 is below 50 needed to send m.room.name"; err == nil || err.Error() != want {
		t.Errorf("Check(m.room.name by bob) = %v, want %q", err, want)
	}
}
