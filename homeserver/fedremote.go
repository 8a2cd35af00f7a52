package homeserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/federation"

	"github.com/parley-im/parley/e2ekeys"
	"github.com/parley-im/parley/federation/transport"
	"github.com/parley-im/parley/profiles"
	"github.com/parley-im/parley/rooms/pdu"
)

// fedRemote asks other servers, through the signed client, what the
// domain services need of them: profiles (profiles.Remote) and E2EE keys
// (e2ekeys.Remote). It only speaks the wire; the services decide what to
// keep of an answer. Static.
type fedRemote struct{ c *transport.Client }

var (
	_ profiles.Remote = fedRemote{}
	_ e2ekeys.Remote  = fedRemote{}
)

func (f fedRemote) do(ctx context.Context, server, method string, path federation.URLPath, q url.Values, req, resp any) error {
	_, _, err := f.c.Client.MakeFullRequest(ctx, federation.RequestParams{ServerName: server, Method: method, Path: path,
		Query: q, Authenticate: true, RequestJSON: req, ResponseJSON: resp})
	return err
}

// QueryProfile implements profiles.Remote with GET query/profile.
func (f fedRemote) QueryProfile(ctx context.Context, userID string) (profiles.Profile, error) {
	var resp struct {
		DisplayName any `json:"displayname"`
		AvatarURL   any `json:"avatar_url"`
	}
	err := f.do(ctx, pdu.Domain(userID), http.MethodGet, federation.URLPath{"v1", "query", "profile"}, url.Values{"user_id": {userID}}, nil, &resp)
	if errors.Is(err, mautrix.MNotFound) {
		return profiles.Profile{}, fmt.Errorf("%w: %s", profiles.ErrNotFound, userID)
	}
	if err != nil {
		return profiles.Profile{}, err
	}
	// Fields of the wrong type are taken as unset, as Synapse does.
	name, _ := resp.DisplayName.(string)
	avatar, _ := resp.AvatarURL.(string)
	return profiles.Profile{DisplayName: name, AvatarURL: avatar}, nil
}

// QueryKeys implements e2ekeys.Remote with POST user/keys/query.
func (f fedRemote) QueryKeys(ctx context.Context, server string, want map[string][]string) (e2ekeys.RemoteKeys, error) {
	var resp struct {
		DeviceKeys  map[string]map[string]json.RawMessage `json:"device_keys"`
		Master      map[string]json.RawMessage            `json:"master_keys"`
		SelfSigning map[string]json.RawMessage            `json:"self_signing_keys"`
	}
	for u, devs := range want {
		if devs == nil {
			want[u] = []string{} // the wire wants a list, not null
		}
	}
	err := f.do(ctx, server, http.MethodPost, federation.URLPath{"v1", "user", "keys", "query"}, nil, map[string]any{"device_keys": want}, &resp)
	if err != nil {
		return e2ekeys.RemoteKeys{}, err
	}
	return e2ekeys.RemoteKeys{DeviceKeys: resp.DeviceKeys, Master: resp.Master, SelfSigning: resp.SelfSigning}, nil
}

// ClaimKeys implements e2ekeys.Remote with POST user/keys/claim.
func (f fedRemote) ClaimKeys(ctx context.Context, server string, want map[string]map[string]string) (map[string]map[string]map[string]json.RawMessage, error) {
	var resp struct {
		OneTimeKeys map[string]map[string]map[string]json.RawMessage `json:"one_time_keys"`
	}
	err := f.do(ctx, server, http.MethodPost, federation.URLPath{"v1", "user", "keys", "claim"}, nil, map[string]any{"one_time_keys": want}, &resp)
	if err != nil {
		return nil, err
	}
	return resp.OneTimeKeys, nil
}
