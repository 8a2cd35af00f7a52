package password

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
)

// TestMaxWaitingRefusesAtOnce fills the one slot and the waiting room, then
// checks that one more call of each kind fails with ErrBusy at once, without
// hashing, while the waiters still get their turn.
func TestMaxWaitingRefusesAtOnce(t *testing.T) {
	calls := []struct {
		name string
		call func(ctx context.Context, h *Hasher) error
	}{
		{"Hash", func(ctx context.Context, h *Hasher) error { _, err := h.Hash(ctx, "pw"); return err }},
		{"Verify", func(ctx context.Context, h *Hasher) error {
			_, err := h.Verify(ctx, "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g", "pw")
			return err
		}},
		{"VerifyDummy", func(ctx context.Context, h *Hasher) error { return h.VerifyDummy(ctx, "pw") }},
	}
	for _, c := range calls {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := NewHasher(Params{MemoryKiB: 64, Time: 1, Concurrency: 1, MaxWaiting: 2})
				gate := make(chan struct{})
				real := h.derive
				h.derive = func(pw, salt []byte, time, memory uint32, threads uint8, keyLen uint32) []byte {
					<-gate
					return real(pw, salt, time, memory, threads, keyLen)
				}
				var wg sync.WaitGroup
				errs := make(chan error, 3)
				for range 3 { // one holds the slot, two wait
					wg.Go(func() { _, err := h.Hash(context.Background(), "x"); errs <- err })
				}
				synctest.Wait()
				if err := c.call(t.Context(), h); !errors.Is(err, ErrBusy) {
					t.Errorf("%s with a full queue: error %v, want ErrBusy", c.name, err)
				}
				close(gate)
				wg.Wait()
				close(errs)
				for err := range errs {
					if err != nil {
						t.Errorf("a queued Hash failed: %v, want success", err)
					}
				}
				if got := h.waiting.Load(); got != 0 {
					t.Errorf("waiting = %d after all calls ended, want 0", got)
				}
			})
		})
	}
}
