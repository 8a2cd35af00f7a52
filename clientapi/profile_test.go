package clientapi

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/parley-im/parley/apierr"
)

func TestProfileValue(t *testing.T) {
	ok := []struct{ field, raw, want string }{
		{"displayname", `"Alice"`, "Alice"},
		{"displayname", `null`, ""},
		{"displayname", `""`, ""},
		{"displayname", `"` + strings.Repeat("é", 256) + `"`, strings.Repeat("é", 256)},
		{"avatar_url", `"mxc://x/abc"`, "mxc://x/abc"},
		{"avatar_url", `null`, ""},
	}
	for _, c := range ok {
		if got, err := profileValue(c.field, json.RawMessage(c.raw)); err != nil || got != c.want {
			t.Errorf("%s=%s: %q %v", c.field, c.raw, got, err)
		}
	}
	bad := []struct{ field, raw, code string }{
		{"displayname", `42`, "M_BAD_JSON"},
		{"displayname", `{"a":1}`, "M_BAD_JSON"},
		{"displayname", `"` + strings.Repeat("a", 257) + `"`, "M_INVALID_PARAM"},
		{"avatar_url", `"https://x/y.png"`, "M_INVALID_PARAM"},
		{"avatar_url", `"mxc://` + strings.Repeat("a", 1020) + `"`, "M_INVALID_PARAM"},
	}
	for _, c := range bad {
		var ae *apierr.Error
		if _, err := profileValue(c.field, json.RawMessage(c.raw)); !errors.As(err, &ae) || ae.Code != c.code {
			t.Errorf("%s=%.20s: %v, want %s", c.field, c.raw, err, c.code)
		}
	}
}

func TestValidProfileKey(t *testing.T) {
	for key, want := range map[string]bool{
		"m.tz": true, "com.example.field": true, "org.x_y.z2": true,
		"displayname2": false, "": false, "Com.example": false, "com..x": false, "com.": false, "com.ex-ample": false,
	} {
		if got := validProfileKey(key); got != want {
			t.Errorf("%q: %v", key, got)
		}
	}
}
