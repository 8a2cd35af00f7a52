package inbox

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/parley-im/parley/storage"
)

type noPresence struct{}

func (noPresence) GetPresence(context.Context, string) (storage.Presence, error) {
	return storage.Presence{}, storage.ErrNotFound
}

// recordingWriter records presence writes; fail makes the next write fail.
type recordingWriter struct {
	mu     sync.Mutex
	writes []string // state/status_msg
	fail   bool
}

func (w *recordingWriter) SetPresence(_ context.Context, p storage.Presence, _ []string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.fail {
		w.fail = false
		return errors.New("writer overloaded")
	}
	w.writes = append(w.writes, p.State+"/"+p.StatusMsg)
	return nil
}

func (w *recordingWriter) got() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.writes...)
}

func newTestPresence() (*Presence, *recordingWriter) {
	w := &recordingWriter{}
	return NewPresence(noPresence{}, w, nil, slog.New(slog.NewTextHandler(io.Discard, nil)), time.Minute), w
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestPresenceDerivedWrites drives the tracker with explicit times and
// checks which writes (each one a wake-up of every peer) it makes.
func TestPresenceDerivedWrites(t *testing.T) {
	ctx := context.Background()
	t0 := time.Unix(1_000_000, 0)
	ms := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }
	type step struct {
		at     time.Time
		do     func(p *Presence, w *recordingWriter)
		writes []string // all writes so far
		state  string
	}
	synced := func(dev, set string, at time.Time) func(*Presence, *recordingWriter) {
		return func(p *Presence, _ *recordingWriter) { p.Synced(ctx, "@a:x", dev, set, at) }
	}
	flush := func(at time.Time) func(*Presence, *recordingWriter) {
		return func(p *Presence, _ *recordingWriter) { p.flushDue(ctx, at) }
	}
	cases := []struct {
		name  string
		steps []step
	}{
		{"activity alone writes nothing", []step{
			{t0, synced("A", "", t0), []string{"online/"}, "online"},
			{ms(2000), synced("A", "online", ms(2000)), []string{"online/"}, "online"},
			{ms(4000), synced("A", "", ms(4000)), []string{"online/"}, "online"},
		}},
		{"two devices: the most active wins, whatever the order", []step{
			{t0, synced("B", "unavailable", t0), []string{"unavailable/"}, "unavailable"},
			{ms(1500), synced("A", "online", ms(1500)), []string{"unavailable/", "online/"}, "online"},
			{ms(3000), synced("B", "unavailable", ms(3000)), []string{"unavailable/", "online/"}, "online"},
			{ms(4500), synced("A", "online", ms(4500)), []string{"unavailable/", "online/"}, "online"},
			{ms(6000), synced("B", "unavailable", ms(6000)), []string{"unavailable/", "online/"}, "online"},
		}},
		{"flips are coalesced into one write a window, carrying the last state", []step{
			{t0, synced("A", "online", t0), []string{"online/"}, "online"},
			{ms(10), synced("A", "unavailable", ms(10)), []string{"online/"}, "unavailable"},
			{ms(20), synced("A", "online", ms(20)), []string{"online/"}, "online"},
			{ms(30), synced("A", "unavailable", ms(30)), []string{"online/"}, "unavailable"},
			{ms(999), flush(ms(999)), []string{"online/"}, "unavailable"},
			{ms(1000), flush(ms(1000)), []string{"online/", "unavailable/"}, "unavailable"},
			{ms(1010), synced("A", "online", ms(1010)), []string{"online/", "unavailable/"}, "online"},
			{ms(1020), synced("A", "unavailable", ms(1020)), []string{"online/", "unavailable/"}, "unavailable"},
			// back where peers last saw it: the deferred write has nothing to say
			{ms(2000), flush(ms(2000)), []string{"online/", "unavailable/"}, "unavailable"},
			{ms(3500), synced("A", "online", ms(3500)), []string{"online/", "unavailable/", "online/"}, "online"},
		}},
		{"a device that stops syncing stops counting", []step{
			{t0, synced("A", "online", t0), []string{"online/"}, "online"},
			{ms(30_000), synced("B", "unavailable", ms(30_000)), []string{"online/"}, "online"},
			{ms(61_000), func(p *Presence, _ *recordingWriter) { p.expire(ctx, ms(61_000)) }, []string{"online/", "unavailable/"}, "unavailable"},
			{ms(91_000), func(p *Presence, _ *recordingWriter) { p.expire(ctx, ms(91_000)) }, []string{"online/", "unavailable/", "offline/"}, "offline"},
		}},
		{"a device syncing with offline stops counting at once", []step{
			{t0, synced("A", "online", t0), []string{"online/"}, "online"},
			{ms(2000), synced("A", "offline", ms(2000)), []string{"online/", "offline/"}, "offline"},
		}},
		{"explicit PUT holds until a sync-driven change", []step{
			{t0, synced("A", "online", t0), []string{"online/"}, "online"},
			{ms(2000), func(p *Presence, _ *recordingWriter) { p.Set(ctx, "@a:x", "unavailable", "lunch", ms(2000)) },
				[]string{"online/", "unavailable/lunch"}, "unavailable"},
			{ms(4000), synced("A", "online", ms(4000)), []string{"online/", "unavailable/lunch"}, "unavailable"},
			{ms(6000), synced("B", "online", ms(6000)), []string{"online/", "unavailable/lunch"}, "unavailable"},
			{ms(8000), synced("A", "offline", ms(8000)), []string{"online/", "unavailable/lunch"}, "unavailable"},
			{ms(10_000), synced("B", "unavailable", ms(10_000)), []string{"online/", "unavailable/lunch"}, "unavailable"},
			{ms(12_000), synced("B", "online", ms(12_000)), []string{"online/", "unavailable/lunch", "online/lunch"}, "online"},
		}},
		{"a status message change is a change", []step{
			{t0, synced("A", "online", t0), []string{"online/"}, "online"},
			{ms(2000), func(p *Presence, _ *recordingWriter) { p.Set(ctx, "@a:x", "online", "coffee", ms(2000)) },
				[]string{"online/", "online/coffee"}, "online"},
		}},
		{"a failed write is tried again", []step{
			{t0, func(p *Presence, w *recordingWriter) {
				w.fail = true
				p.Synced(ctx, "@a:x", "A", "online", t0)
			}, nil, "online"},
			{ms(500), synced("A", "online", ms(500)), nil, "online"},
			{ms(1000), flush(ms(1000)), []string{"online/"}, "online"},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, w := newTestPresence()
			for i, s := range tc.steps {
				s.do(p, w)
				if got := w.got(); !equal(got, s.writes) {
					t.Fatalf("step %d: writes = %q, want %q", i, got, s.writes)
				}
				if got, _, _, _ := p.Get(ctx, "@a:x"); got != s.state {
					t.Fatalf("step %d: state = %q, want %q", i, got, s.state)
				}
			}
		})
	}
}

// TestPresenceRunFlushes: a deferred write is made by Run without any
// further sync, so the last change of a burst reaches peers.
func TestPresenceRunFlushes(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p, w := newTestPresence()
	p.window = 20 * time.Millisecond
	done := make(chan struct{})
	go func() { p.Run(ctx); close(done) }()
	now := time.Now()
	p.Synced(ctx, "@a:x", "A", "online", now)
	p.Synced(ctx, "@a:x", "A", "unavailable", now)
	deadline := time.Now().Add(10 * time.Second)
	for !equal(w.got(), []string{"online/", "unavailable/"}) {
		if time.Now().After(deadline) {
			t.Fatalf("writes = %q, want [online/ unavailable/]", w.got())
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
}

// BenchmarkPresenceSynced is the cost every /sync pays for presence when
// nothing changes: two devices of one user, an active one and an idle one.
func BenchmarkPresenceSynced(b *testing.B) {
	ctx := context.Background()
	p, w := newTestPresence()
	now := time.Now()
	p.Synced(ctx, "@a:x", "A", "online", now)
	p.Synced(ctx, "@a:x", "B", "unavailable", now)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if i%2 == 0 {
			p.Synced(ctx, "@a:x", "A", "online", now)
		} else {
			p.Synced(ctx, "@a:x", "B", "unavailable", now)
		}
	}
	b.StopTimer()
	if got := w.got(); len(got) != 1 {
		b.Fatalf("writes = %q, want one", got)
	}
}

type storedPresence storage.Presence

func (s storedPresence) GetPresence(context.Context, string) (storage.Presence, error) {
	return storage.Presence(s), nil
}

// TestPresenceRestoredExpires: a state stored before a restart holds until
// the user's devices decide, or for the idle timeout if none syncs (a user
// online when the server stopped used to stay online for ever); a PUT after
// the restart holds as any explicit state does.
func TestPresenceRestoredExpires(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		put    string
		want   string
		writes []string
	}{
		{"no device syncs", "", "offline", []string{"offline/away"}},
		{"a PUT after the restart holds", "unavailable", "unavailable", []string{"unavailable/away"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := &recordingWriter{}
			p := NewPresence(storedPresence{UserID: "@a:x", State: "online", StatusMsg: "away", LastActiveTS: 1}, w, nil,
				slog.New(slog.NewTextHandler(io.Discard, nil)), time.Minute)
			if got, _, _, _ := p.Get(ctx, "@a:x"); got != "online" {
				t.Fatalf("restored state = %q, want online", got)
			}
			if tc.put != "" {
				if err := p.Set(ctx, "@a:x", tc.put, "away", time.Now()); err != nil {
					t.Fatal(err)
				}
			}
			p.expire(ctx, time.Now().Add(2*time.Minute))
			if got, _, _, _ := p.Get(ctx, "@a:x"); got != tc.want {
				t.Errorf("state after the idle timeout = %q, want %q", got, tc.want)
			}
			if got := w.got(); !equal(got, tc.writes) {
				t.Errorf("writes = %q, want %q", got, tc.writes)
			}
		})
	}
}
