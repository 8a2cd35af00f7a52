package storage_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"

	"github.com/parley-im/parley/storage"
)

// Conformance of the stores outside the position streams: filters,
// registration tokens, room aliases and one-time keys.
func TestConformanceAccounts(t *testing.T) {
	runStreamCases(t, []streamCase{
		{"filters", confFilters},
		{"filters from concurrent writers", confFiltersConcurrent},
		{"registration tokens", confRegistrationTokens},
		{"aliases", confAliases},
		{"one-time keys", confOneTimeKeys},
	})
}

func confFilters(t *testing.T, ctx context.Context, s *storage.Store) {
	last := int64(-1)
	bodies := map[string]string{}
	for i := 0; i < 12; i++ { // past 10, so "10" must still follow "9"
		body := fmt.Sprintf(`{"room":{"timeline":{"limit":%d}}}`, i+1)
		id, err := s.PutFilter(ctx, "@v:x", body)
		if err != nil {
			t.Fatal(err)
		}
		n, err := strconv.ParseInt(id, 10, 64)
		if err != nil || n <= last {
			t.Errorf("filter %d ID = %q, want a number above %d", i, id, last)
		}
		last, bodies[id] = n, body
	}
	other, err := s.PutFilter(ctx, "@p:x", `{}`)
	if err != nil {
		t.Fatal(err)
	}
	for id, want := range bodies {
		if got, err := s.GetFilter(ctx, "@v:x", id); err != nil || got != want {
			t.Errorf("GetFilter(@v, %s) = %q, %v, want %q", id, got, err, want)
		}
	}
	if got, err := s.GetFilter(ctx, "@p:x", other); err != nil || got != `{}` {
		t.Errorf("GetFilter(@p, %s) = %q, %v, want {}", other, got, err)
	}
	for _, c := range []struct{ user, id string }{{"@v:x", "999"}, {"@q:x", "0"}, {"@v:x", ""}} {
		if _, err := s.GetFilter(ctx, c.user, c.id); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("GetFilter(%s, %q) = %v, want ErrNotFound", c.user, c.id, err)
		}
	}
}

// confFiltersConcurrent: clients create filters at start-up, and a user's
// devices start together; every PutFilter must succeed with its own ID.
func confFiltersConcurrent(t *testing.T, ctx context.Context, s *storage.Store) {
	if s.Engine() == "postgresql" {
	}
	const n = 8
	ids := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ids[i], errs[i] = s.PutFilter(ctx, "@v:x", fmt.Sprintf(`{"n":%d}`, i))
		}()
	}
	wg.Wait()
	seen := map[string]bool{}
	for i := range n {
		if errs[i] != nil {
			t.Errorf("concurrent PutFilter %d: %v", i, errs[i])
			continue
		}
		if seen[ids[i]] {
			t.Errorf("filter ID %q handed out twice", ids[i])
		}
		seen[ids[i]] = true
		if got, err := s.GetFilter(ctx, "@v:x", ids[i]); err != nil || got != fmt.Sprintf(`{"n":%d}`, i) {
			t.Errorf("GetFilter(%s) = %q, %v, want filter %d", ids[i], got, err, i)
		}
	}
}

func confRegistrationTokens(t *testing.T, ctx context.Context, s *storage.Store) {
	if err := s.AddRegistrationToken(ctx, "once", 1); err != nil {
		t.Fatal(err)
	}
	if err := s.AddRegistrationToken(ctx, "many", 0); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		token  string
		commit bool
		want   bool
	}{
		{"once", false, true}, // a check uses nothing
		{"once", true, true},
		{"once", true, false},
		{"once", false, false},
		{"many", true, true},
		{"many", true, true},
		{"many", true, true},
		{"unknown", false, false},
		{"unknown", true, false},
	}
	for i, st := range steps {
		if got, err := s.UseRegistrationToken(ctx, st.token, 1000, st.commit); err != nil || got != st.want {
			t.Errorf("step %d: UseRegistrationToken(%s, commit %v) = %v, %v, want %v", i, st.token, st.commit, got, err, st.want)
		}
	}
}

func confAliases(t *testing.T, ctx context.Context, s *storage.Store) {
	if err := s.PutAlias(ctx, "#a:x", "!a:x", "@v:x"); err != nil {
		t.Fatal(err)
	}
	if err := s.PutAlias(ctx, "#a:x", "!b:x", "@q:x"); !errors.Is(err, storage.ErrConflict) {
		t.Errorf("PutAlias(taken) = %v, want ErrConflict", err)
	}
	if err := s.PutAlias(ctx, "#c:x", "!a:x", "@p:x"); err != nil {
		t.Fatal(err)
	}
	if room, creator, err := s.GetAlias(ctx, "#a:x"); err != nil || room != "!a:x" || creator != "@v:x" {
		t.Errorf("GetAlias(#a) = %s, %s, %v, want !a:x, @v:x (the conflicting put changed nothing)", room, creator, err)
	}
	if got, err := s.RoomAliases(ctx, "!a:x"); err != nil || !slices.Equal(got, []string{"#a:x", "#c:x"}) {
		t.Errorf("RoomAliases(!a) = %v, %v, want [#a:x #c:x]", got, err)
	}
	if got, err := s.RoomAliases(ctx, "!b:x"); err != nil || len(got) != 0 {
		t.Errorf("RoomAliases(!b) = %v, %v, want none", got, err)
	}
	if err := s.DeleteAlias(ctx, "#a:x"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.GetAlias(ctx, "#a:x"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("GetAlias(deleted) = %v, want ErrNotFound", err)
	}
	if err := s.DeleteAlias(ctx, "#a:x"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("DeleteAlias(deleted) = %v, want ErrNotFound", err)
	}
	if err := s.PutAlias(ctx, "#a:x", "!b:x", "@q:x"); err != nil {
		t.Errorf("PutAlias(freed alias) = %v, want success", err)
	}
	if got, err := s.RoomAliases(ctx, "!a:x"); err != nil || !slices.Equal(got, []string{"#c:x"}) {
		t.Errorf("RoomAliases(!a) after moves = %v, %v, want [#c:x]", got, err)
	}
}

func confOneTimeKeys(t *testing.T, ctx context.Context, s *storage.Store) {
	const alg = "signed_curve25519"
	puts := []struct {
		device, keyID, alg, json string
		fallback                 bool
	}{
		{"D", alg + ":AAAB", alg, `{"key":"k2"}`, false},
		{"D", alg + ":AAAA", alg, `{"key":"k1"}`, false},
		{"D", alg + ":AAAA", alg, `{"key":"replaced"}`, false}, // a re-upload of a key ID keeps the first
		{"D", "curve25519:X", "curve25519", `"raw"`, false},
		{"D", alg + ":FB1", alg, `{"key":"f1","fallback":true}`, true},
		{"E", alg + ":OTHER", alg, `{"key":"e"}`, false},
	}
	for _, p := range puts {
		if err := s.PutOneTimeKey(ctx, "@v:x", p.device, p.keyID, p.alg, p.json, p.fallback); err != nil {
			t.Fatal(err)
		}
	}
	counts := func(want map[string]int, wantFallback []string) {
		t.Helper()
		got, fb, err := s.OneTimeKeyCounts(ctx, "@v:x", "D")
		if err != nil {
			t.Fatal(err)
		}
		for a := range want {
			if got[a] != want[a] {
				t.Errorf("OneTimeKeyCounts[%s] = %d, want %d (all: %v)", a, got[a], want[a], got)
			}
		}
		if !slices.Equal(fb, wantFallback) {
			t.Errorf("fallback algorithms = %v, want %v", fb, wantFallback)
		}
	}
	counts(map[string]int{alg: 2, "curve25519": 1}, []string{alg})
	claims := []struct{ id, json string }{
		{alg + ":AAAA", `{"key":"k1"}`}, // one-time keys first
		{alg + ":AAAB", `{"key":"k2"}`},
		{alg + ":FB1", `{"key":"f1","fallback":true}`}, // then the fallback key...
		{alg + ":FB1", `{"key":"f1","fallback":true}`}, // ...which is kept
	}
	for i, c := range claims {
		id, key, err := s.ClaimOneTimeKey(ctx, "@v:x", "D", alg)
		if err != nil || id != c.id || key != c.json {
			t.Errorf("claim %d = %s %s %v, want %s %s", i, id, key, err, c.id, c.json)
		}
		if i == 0 {
			counts(map[string]int{alg: 1, "curve25519": 1}, []string{alg})
		}
	}
	// The claimed fallback key is kept but reported used, so the device
	// uploads a new one (spec: device_unused_fallback_key_types).
	counts(map[string]int{alg: 0, "curve25519": 1}, nil)
	// A new fallback key replaces the old one.
	if err := s.PutOneTimeKey(ctx, "@v:x", "D", alg+":FB2", alg, `{"key":"f2","fallback":true}`, true); err != nil {
		t.Fatal(err)
	}
	if id, _, err := s.ClaimOneTimeKey(ctx, "@v:x", "D", alg); err != nil || id != alg+":FB2" {
		t.Errorf("claim after fallback replacement = %s %v, want %s:FB2", id, err, alg)
	}
	for _, c := range []struct{ user, device, alg string }{
		{"@v:x", "D", "unknown_alg"}, {"@v:x", "NODEVICE", alg}, {"@p:x", "D", alg},
	} {
		if _, _, err := s.ClaimOneTimeKey(ctx, c.user, c.device, c.alg); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("ClaimOneTimeKey(%s, %s, %s) = %v, want ErrNotFound", c.user, c.device, c.alg, err)
		}
	}
	if got, fb, err := s.OneTimeKeyCounts(ctx, "@v:x", "E"); err != nil || got[alg] != 1 || len(fb) != 0 {
		t.Errorf("device E counts = %v %v %v, want 1 %s key and no fallback", got, fb, err, alg)
	}
}
