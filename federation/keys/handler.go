package keys

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"

	"github.com/go-chi/chi/v5"
	"github.com/tidwall/sjson"
	"go.mau.fi/util/exgjson"
	"maunium.net/go/mautrix/crypto/canonicaljson"
	"maunium.net/go/mautrix/federation"

	"github.com/parley-im/parley/apierr"
	"github.com/parley-im/parley/rooms/pdu"
	"github.com/parley-im/parley/storage"
)

// Limits of the notary endpoint: a query is one small JSON object, and each
// server named may cost an outbound fetch.
const (
	MaxQueryBytes   = 64 << 10
	MaxQueryServers = 100
	// MaxQueryFetches is how many servers one notary query may make us
	// fetch (the others are answered from the cache or left out), so an
	// unauthenticated query cannot make us dial a hundred hosts.
	MaxQueryFetches = 5
)

// Mount adds the key endpoints to r: /_matrix/key/v2/server and the notary
// /_matrix/key/v2/query (GET and POST). They need no X-Matrix auth: key
// responses carry their own signatures.
//
// mautrix's KeyServer is not used for these: its notary answers only for
// its own name on POST, as a map instead of the spec's list, and re-encodes
// other servers' responses from parsed structs, which can break their
// signatures (see docs/federation.md).
func (k *Keyring) Mount(r chi.Router) {
	r.Get("/_matrix/key/v2/server", k.serveServer)
	r.Get("/_matrix/key/v2/server/{keyID}", k.serveServer) // deprecated form, same answer
	r.Get("/_matrix/key/v2/query/{serverName}", k.serveQueryGet)
	r.Post("/_matrix/key/v2/query", k.serveQueryPost)
}

func (k *Keyring) serveServer(w http.ResponseWriter, r *http.Request) {
	skr, err := k.cfg.Own.Response(k.cfg.Now())
	if err != nil {
		apierr.Write(w, err)
		return
	}
	apierr.WriteJSON(w, http.StatusOK, skr)
}

func (k *Keyring) serveQueryGet(w http.ResponseWriter, r *http.Request) {
	var minValid int64
	if s := r.URL.Query().Get("minimum_valid_until_ts"); s != "" {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			apierr.Write(w, apierr.InvalidParam("minimum_valid_until_ts is not an integer"))
			return
		}
		minValid = v
	}
	// chi matches on the raw path, so the name arrives as the client
	// escaped it (a port's colon as %3A).
	server := chi.URLParam(r, "serverName")
	if v, err := url.PathUnescape(server); err == nil {
		server = v
	}
	out := k.answer(r, map[string]int64{server: minValid})
	apierr.WriteJSON(w, http.StatusOK, map[string]any{"server_keys": out})
}

func (k *Keyring) serveQueryPost(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxQueryBytes+1))
	if err != nil {
		apierr.Write(w, apierr.BadJSON("could not read the body"))
		return
	}
	if len(body) > MaxQueryBytes {
		apierr.Write(w, apierr.TooLarge("key query too large"))
		return
	}
	var req federation.ReqQueryKeys
	if err := json.Unmarshal(body, &req); err != nil {
		apierr.Write(w, apierr.BadJSON("request is not a key query"))
		return
	}
	if len(req.ServerKeys) > MaxQueryServers {
		apierr.Write(w, apierr.TooLarge("too many servers in one key query"))
		return
	}
	want := make(map[string]int64, len(req.ServerKeys))
	for server, ids := range req.ServerKeys {
		var minValid int64
		for _, c := range ids {
			minValid = max(minValid, c.MinimumValidUntilTS.UnixMilli())
		}
		want[server] = minValid
	}
	apierr.WriteJSON(w, http.StatusOK, map[string]any{"server_keys": k.answer(r, want)})
}

// answer builds the notary's list of key responses, each as the origin
// signed it plus our signature. A server whose keys cannot be had is left
// out, as the spec allows.
func (k *Keyring) answer(r *http.Request, want map[string]int64) []json.RawMessage {
	ctx := r.Context()
	out := make([]json.RawMessage, 0, len(want))
	own := k.cfg.Own
	fetches := 0
	for server, minValid := range want {
		if !pdu.ValidServerName(server) {
			continue
		}
		if server == own.ServerName() {
			skr, err := own.Response(k.cfg.Now())
			if err != nil {
				continue
			}
			raw, err := json.Marshal(skr)
			if err == nil {
				out = append(out, raw)
			}
			continue
		}
		raw, valid, _, err := k.cfg.Store.RemoteKeyResponse(ctx, server)
		now := k.cfg.Now().UnixMilli()
		if (errors.Is(err, storage.ErrNotFound) || (err == nil && (valid < now || valid < minValid))) && fetches < MaxQueryFetches {
			fetches++
			if k.Refresh(ctx, server) == nil {
				raw, valid, _, err = k.cfg.Store.RemoteKeyResponse(ctx, server)
			}
		}
		if err != nil || valid < minValid {
			continue
		}
		signed, err := k.notarise([]byte(raw))
		if err != nil {
			continue
		}
		out = append(out, signed)
	}
	return out
}

// notarise adds this server's signature to a key response, leaving the
// origin's bytes and signatures as they were.
func (k *Keyring) notarise(raw []byte) (json.RawMessage, error) {
	stripped, err := sjson.DeleteBytes(raw, "signatures")
	if err != nil {
		return nil, err
	}
	if stripped, err = sjson.DeleteBytes(stripped, "unsigned"); err != nil {
		return nil, err
	}
	msg := json.RawMessage(stripped)
	if err := canonicaljson.Canonicalize(&msg); err != nil {
		return nil, err
	}
	key := k.cfg.Own.SigningKey()
	sig := base64.RawStdEncoding.EncodeToString(ed25519.Sign(key.Priv, msg))
	return sjson.SetBytes(raw, exgjson.Path("signatures", k.cfg.Own.ServerName(), string(key.ID)), sig)
}
