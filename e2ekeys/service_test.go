package e2ekeys_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/parley-im/parley/e2ekeys"
	"github.com/parley-im/parley/storage"
	"github.com/parley-im/parley/storage/storagetest"
)

type countLists map[string]int

func (c countLists) DeviceListChanged(_ context.Context, userID string) error {
	c[userID]++
	return nil
}

func raw(s string) json.RawMessage { return json.RawMessage(s) }

func crossKey(user, usage, pub string) json.RawMessage {
	return raw(fmt.Sprintf(`{"user_id":%q,"usage":[%q],"keys":{"ed25519:%s":%q}}`, user, usage, pub, pub))
}

func newService(t *testing.T, st *storage.Store) (*e2ekeys.Service, countLists) {
	t.Helper()
	ctx := context.Background()
	for _, u := range []string{"@a:hs", "@b:hs"} {
		if err := st.CreateUser(ctx, storage.User{UserID: u, CreatedTS: 1}); err != nil {
			t.Fatal(err)
		}
		if err := st.CreateDevice(ctx, storage.Device{UserID: u, DeviceID: "D", DisplayName: "phone of " + u, TokenHash: "t" + u, CreatedTS: 1}); err != nil {
			t.Fatal(err)
		}
	}
	lists := countLists{}
	return e2ekeys.New("hs", st, lists), lists
}

func TestUploadAndClaim(t *testing.T) {
	ctx := context.Background()
	storagetest.ForEachEngine(t, func(t *testing.T, st *storage.Store) {
		svc, lists := newService(t, st)
		refused := []struct {
			name string
			up   e2ekeys.Upload
			want error
		}{
			{"keys of another device", e2ekeys.Upload{DeviceKeys: raw(`{"user_id":"@a:hs","device_id":"OTHER"}`)}, e2ekeys.ErrInvalidParam},
			{"device keys not an object", e2ekeys.Upload{DeviceKeys: raw(`[1]`)}, e2ekeys.ErrBadJSON},
			{"key name without id", e2ekeys.Upload{OneTimeKeys: map[string]json.RawMessage{"signed_curve25519": raw(`"k"`)}}, e2ekeys.ErrInvalidParam},
			{"key not object or string", e2ekeys.Upload{OneTimeKeys: map[string]json.RawMessage{"curve25519:1": raw(`42`)}}, e2ekeys.ErrBadJSON},
			{"two fallback keys", e2ekeys.Upload{FallbackKeys: map[string]json.RawMessage{"signed_curve25519:f1": raw(`{}`), "signed_curve25519:f2": raw(`{}`)}}, e2ekeys.ErrInvalidParam},
		}
		for _, c := range refused {
			if _, err := svc.Upload(ctx, "@a:hs", "D", c.up); !errors.Is(err, c.want) {
				t.Errorf("Upload(%s) = %v, want %v", c.name, err, c.want)
			}
		}
		if lists["@a:hs"] != 0 {
			t.Errorf("device list changes after refused uploads = %d, want 0", lists["@a:hs"])
		}

		dk := raw(`{"user_id":"@a:hs","device_id":"D","keys":{"ed25519:D":"pub"}}`)
		counts, err := svc.Upload(ctx, "@a:hs", "D", e2ekeys.Upload{
			DeviceKeys:   dk,
			OneTimeKeys:  map[string]json.RawMessage{"signed_curve25519:1": raw(`{"key":"k1"}`), "signed_curve25519:2": raw(`{"key":"k2"}`)},
			FallbackKeys: map[string]json.RawMessage{"signed_curve25519:fb": raw(`{"key":"fb","fallback":true}`)},
		})
		if err != nil || counts["signed_curve25519"] != 2 {
			t.Fatalf("Upload = %v, %v, want 2 signed_curve25519", counts, err)
		}
		// The same keys with other signatures are the same keys: no change.
		if _, err := svc.Upload(ctx, "@a:hs", "D", e2ekeys.Upload{DeviceKeys: raw(`{"device_id":"D","user_id":"@a:hs","keys":{"ed25519:D":"pub"},"signatures":{"@a:hs":{"ed25519:D":"s"}}}`)}); err != nil {
			t.Fatal(err)
		}
		if lists["@a:hs"] != 1 {
			t.Errorf("device list changes = %d, want 1 (the first upload only)", lists["@a:hs"])
		}

		// Two one-time keys, then the fallback key, which stays.
		want := map[string]map[string]string{"@a:hs": {"D": "signed_curve25519"}, "@a:elsewhere": {"D": "signed_curve25519"}, "@b:hs": {"D": "signed_curve25519"}}
		var got []string
		for range 4 {
			out, err := svc.Claim(ctx, want)
			if err != nil {
				t.Fatal(err)
			}
			if len(out) != 1 {
				t.Fatalf("Claim = %v, want only @a:hs (remote skipped, @b:hs has no keys)", out)
			}
			for id := range out["@a:hs"]["D"] {
				got = append(got, id)
			}
		}
		if fmt.Sprint(got) != "[signed_curve25519:1 signed_curve25519:2 signed_curve25519:fb signed_curve25519:fb]" {
			t.Errorf("claimed %v, want both one-time keys, then the fallback key twice", got)
		}

		many := map[string]map[string]string{}
		for i := range e2ekeys.MaxClaims + 1 {
			many[fmt.Sprintf("@u%d:hs", i)] = map[string]string{"D": "signed_curve25519"}
		}
		if _, err := svc.Claim(ctx, many); !errors.Is(err, e2ekeys.ErrInvalidParam) {
			t.Errorf("Claim(%d keys) = %v, want ErrInvalidParam", e2ekeys.MaxClaims+1, err)
		}

		k, err := svc.Query(ctx, "@b:hs", map[string][]string{"@a:hs": nil, "@a:elsewhere": nil})
		if err != nil {
			t.Fatal(err)
		}
		if name := gjson.GetBytes(k.DeviceKeys["@a:hs"]["D"], "unsigned.device_display_name").Str; name != "phone of @a:hs" {
			t.Errorf("queried device name = %q, want %q", name, "phone of @a:hs")
		}
		if _, ok := k.DeviceKeys["@a:elsewhere"]; ok {
			t.Error("Query answered for a remote user")
		}
	})
}

func TestCrossSigningUploadRules(t *testing.T) {
	ctx := context.Background()
	storagetest.ForEachEngine(t, func(t *testing.T, st *storage.Store) {
		svc, lists := newService(t, st)
		auths := 0
		authorize := func(context.Context) error { auths++; return nil }
		deny := func(context.Context) error { auths++; return errors.New("password needed") }

		refused := []struct {
			name string
			up   e2ekeys.SigningKeys
			want error
		}{
			{"self-signing without a master key", e2ekeys.SigningKeys{SelfSigning: crossKey("@a:hs", "self_signing", "S1")}, e2ekeys.ErrMissingParam},
			{"someone else's key", e2ekeys.SigningKeys{Master: crossKey("@b:hs", "master", "M1")}, e2ekeys.ErrInvalidParam},
			{"wrong usage", e2ekeys.SigningKeys{Master: crossKey("@a:hs", "self_signing", "M1")}, e2ekeys.ErrInvalidParam},
			{"not an object", e2ekeys.SigningKeys{Master: raw(`"M1"`)}, e2ekeys.ErrBadJSON},
		}
		for _, c := range refused {
			if err := svc.UploadSigningKeys(ctx, "@a:hs", c.up, deny); !errors.Is(err, c.want) {
				t.Errorf("UploadSigningKeys(%s) = %v, want %v", c.name, err, c.want)
			}
		}

		// A first upload needs no password.
		first := e2ekeys.SigningKeys{Master: crossKey("@a:hs", "master", "M1"), SelfSigning: crossKey("@a:hs", "self_signing", "S1"),
			UserSigning: crossKey("@a:hs", "user_signing", "U1")}
		if err := svc.UploadSigningKeys(ctx, "@a:hs", first, deny); err != nil {
			t.Fatalf("first upload = %v, want no password asked", err)
		}
		// A retry of the same keys needs none either, and changes nothing.
		if err := svc.UploadSigningKeys(ctx, "@a:hs", first, deny); err != nil {
			t.Fatalf("retry = %v, want no password asked", err)
		}
		if lists["@a:hs"] != 1 || auths != 0 {
			t.Errorf("after first upload and retry: %d list changes, %d password checks; want 1 and 0", lists["@a:hs"], auths)
		}
		// Replacing a key does; refused, it stores nothing.
		second := e2ekeys.SigningKeys{SelfSigning: crossKey("@a:hs", "self_signing", "S2")}
		if err := svc.UploadSigningKeys(ctx, "@a:hs", second, deny); err == nil || auths != 1 {
			t.Fatalf("replace without password = %v (%d checks), want refused after 1 check", err, auths)
		}
		if err := svc.UploadSigningKeys(ctx, "@a:hs", second, authorize); err != nil {
			t.Fatal(err)
		}
		k, err := svc.Query(ctx, "@b:hs", map[string][]string{"@a:hs": nil})
		if err != nil {
			t.Fatal(err)
		}
		if got := gjson.GetBytes(k.SelfSigning["@a:hs"], "keys.ed25519:S2").Str; got != "S2" {
			t.Errorf("self-signing key = %s, want S2", k.SelfSigning["@a:hs"])
		}
		if _, ok := k.UserSigning["@a:hs"]; ok {
			t.Error("@b:hs sees @a:hs's user-signing key; only its owner may")
		}

		// @a signs @b's master key: only @a sees that signature.
		if err := svc.UploadSigningKeys(ctx, "@b:hs", e2ekeys.SigningKeys{Master: crossKey("@b:hs", "master", "BM")}, deny); err != nil {
			t.Fatal(err)
		}
		signed := map[string]map[string]json.RawMessage{
			"@b:hs": {
				"BM":      raw(`{"user_id":"@b:hs","usage":["master"],"keys":{"ed25519:BM":"BM"},"signatures":{"@a:hs":{"ed25519:U1":"sig"}}}`),
				"UNKNOWN": raw(`{"signatures":{"@a:hs":{"ed25519:U1":"sig"}}}`),
			},
			"@a:hs": {"D": raw(`{"user_id":"@a:hs"}`)},
		}
		failures, err := svc.UploadSignatures(ctx, "@a:hs", signed)
		if err != nil {
			t.Fatal(err)
		}
		if len(failures) != 2 || failures["@b:hs"]["UNKNOWN"].Code != "M_NOT_FOUND" || failures["@a:hs"]["D"].Code != "M_INVALID_SIGNATURE" {
			t.Errorf("failures = %+v, want UNKNOWN not found and D without signatures", failures)
		}
		for viewer, want := range map[string]string{"@a:hs": "sig", "@b:hs": ""} {
			k, err := svc.Query(ctx, viewer, map[string][]string{"@b:hs": nil})
			if err != nil {
				t.Fatal(err)
			}
			if got := gjson.GetBytes(k.Master["@b:hs"], `signatures.@a:hs.ed25519:U1`).Str; got != want {
				t.Errorf("%s sees @a's signature of @b's master key as %q, want %q", viewer, got, want)
			}
		}
	})
}
