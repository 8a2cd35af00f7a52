package rooms

import (
	"errors"
	"testing"
	"time"

	"github.com/parley-im/parley/ratelimit"
)

// TestActionLimitsInvite: a refused invite (the invitee's bucket empty)
// gives the room's token back; exempt senders are never limited; a nil
// set limits nothing.
func TestActionLimitsInvite(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	l := &ActionLimits{InvitePerRoom: ratelimit.New(0.001, 2), InvitePerUser: ratelimit.New(0.001, 1),
		Exempt: map[string]bool{"@bot:x": true}, Now: func() time.Time { return now }}
	if err := l.invite("@a:x", "!r:x", "@v:x"); err != nil {
		t.Fatalf("first invite = %v, want nil", err)
	}
	var rl *RateLimitError
	if err := l.invite("@a:x", "!r:x", "@v:x"); !errors.As(err, &rl) || rl.RetryAfter <= 0 || !errors.Is(err, ErrRateLimited) {
		t.Fatalf("second invite of the same user = %v, want a RateLimitError", err)
	}
	// The refused invite cost the room nothing: one token is left for another invitee.
	if err := l.invite("@a:x", "!r:x", "@w:x"); err != nil {
		t.Errorf("invite of another user = %v, want nil (the refused invite must refund the room)", err)
	}
	if err := l.invite("@a:x", "!r:x", "@z:x"); err == nil {
		t.Errorf("third invite in the room = nil, want refused (burst 2)")
	}
	for range 5 {
		if err := l.invite("@bot:x", "!r:x", "@v:x"); err != nil {
			t.Fatalf("exempt sender's invite = %v, want nil", err)
		}
	}
	var none *ActionLimits
	if err := none.message("@a:x"); err != nil {
		t.Errorf("nil ActionLimits = %v, want nil", err)
	}
}

// BenchmarkActionLimitsMessage is the cost every send pays for its
// message limit: one bucket lookup, no allocation.
func BenchmarkActionLimitsMessage(b *testing.B) {
	l := &ActionLimits{Message: ratelimit.New(1e6, 1<<30)}
	users := []string{"@a:x", "@b:x", "@c:x", "@d:x"}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if err := l.message(users[i&3]); err != nil {
			b.Fatal(err)
		}
	}
}
