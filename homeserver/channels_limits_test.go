package homeserver_test

import (
	"strings"
	"testing"

	"github.com/parley-im/parley/config"
	"github.com/parley-im/parley/homeserver/hstest"
)

// wantLimited POSTs body to path as c and wants a rate-limit refusal: 429
// M_LIMIT_EXCEEDED with retry_after_ms.
func wantLimited(t *testing.T, c *hstest.Client, path string, body map[string]any) {
	t.Helper()
	code, res := c.Do("POST", path, body)
	if code != 429 || res.Get("errcode").String() != "M_LIMIT_EXCEEDED" || res.Get("retry_after_ms").Int() <= 0 {
		t.Errorf("POST %s over the limit = %d %s, want 429 M_LIMIT_EXCEEDED with retry_after_ms", path, code, res.Raw)
	}
}

// TestChannelPostLimits: the configured post size and posts per minute per
// channel; a refusal changes nothing, and the limit is the channel's, not
// the poster's.
func TestChannelPostLimits(t *testing.T) {
	for _, st := range hstest.Stores(t) {
		t.Run(st.Name, func(t *testing.T) {
			srv := hstest.Start(t, hstest.Options{Store: st, Mutate: func(c *config.Config) {
				c.Channels.MaxPostBytes, c.Channels.PostsPerMinute = 10, 2
			}})
			owner := srv.Register(t, "owner")
			base := func(id string) string { return chans + "/" + hstest.Esc(id) }
			a := owner.MustDo("POST", chans, map[string]any{"name": "A"}).Get("channel_id").String()
			b := owner.MustDo("POST", chans, map[string]any{"name": "B"}).Get("channel_id").String()

			if code, res := owner.Do("POST", base(a)+"/posts", map[string]any{"text": strings.Repeat("x", 11)}); code != 413 || res.Get("errcode").String() != "M_TOO_LARGE" {
				t.Errorf("oversize post = %d %s, want 413 M_TOO_LARGE", code, res.Raw)
			}
			owner.MustDo("POST", base(a)+"/posts", map[string]any{"text": "1"})
			owner.MustDo("POST", base(a)+"/posts", map[string]any{"text": "2"})
			wantLimited(t, owner, base(a)+"/posts", map[string]any{"text": "3"})
			if got := owner.MustDo("GET", base(a)+"/posts", nil).Get("chunk.#").Int(); got != 2 {
				t.Errorf("posts after refusals = %d, want 2", got)
			}
			owner.MustDo("POST", base(b)+"/posts", map[string]any{"text": "b1"})
		})
	}
}
