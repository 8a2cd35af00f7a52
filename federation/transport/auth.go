package transport

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	"maunium.net/go/mautrix/crypto/canonicaljson"
	"maunium.net/go/mautrix/federation"

	"github.com/parley-im/parley/apierr"
	"github.com/parley-im/parley/rooms/pdu"
)

// DefaultMaxBody caps an inbound federation request body. A transaction
// holds at most 50 PDUs of at most 64 KiB and 100 EDUs; 20 MiB leaves room
// for send_join state answers without letting a peer exhaust memory.
const DefaultMaxBody = 20 << 20

// KeySource returns a server's verify key; *keys.Keyring implements it.
type KeySource interface {
	VerifyKey(ctx context.Context, server, keyID string, atMs int64, roomVersion string) (ed25519.PublicKey, error)
}

// Authenticator checks the X-Matrix signature of inbound requests. Static
// after construction; safe for concurrent use.
type Authenticator struct {
	serverName string
	keys       KeySource
	maxBody    int64
}

// NewAuthenticator returns an Authenticator for serverName (port included
// when it has one). maxBody 0 means DefaultMaxBody.
func NewAuthenticator(serverName string, keys KeySource, maxBody int64) *Authenticator {
	if maxBody <= 0 {
		maxBody = DefaultMaxBody
	}
	return &Authenticator{serverName: serverName, keys: keys, maxBody: maxBody}
}

type originKey struct{}

// Origin returns the authenticated origin server of a request that passed
// Middleware, or "".
func Origin(ctx context.Context) string {
	s, _ := ctx.Value(originKey{}).(string)
	return s
}

func unauthorized(msg string) error {
	return apierr.New(http.StatusUnauthorized, "M_UNAUTHORIZED", msg)
}

// Middleware lets a request through only with a valid X-Matrix signature
// addressed to us, and puts the origin in its context (see Origin). Every
// failure is 401 M_UNAUTHORIZED, except a body too large (413) or not
// JSON (400).
func (a *Authenticator) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r2, err := a.Authenticate(r)
		if err != nil {
			apierr.Write(w, err)
			return
		}
		next.ServeHTTP(w, r2)
	})
}

// signable is the JSON object an X-Matrix signature covers, field for
// field as in the spec and in mautrix's (unexported) signableRequest.
type signable struct {
	Method      string          `json:"method"`
	URI         string          `json:"uri"`
	Origin      string          `json:"origin"`
	Destination string          `json:"destination"`
	Content     json.RawMessage `json:"content,omitempty"`
}

// Authenticate checks r's X-Matrix header and returns r with the origin in
// its context and its body buffered, or an *apierr.Error.
//
// mautrix's ServerAuth.Authenticate is not used: it accepts a header with
// no destination (the spec requires one since v1.3 and Synapse sends it),
// and it fetches keys only directly, bypassing Parley's keyring (store
// cache, notaries, the 7-day rule). Header parsing is the library's.
func (a *Authenticator) Authenticate(r *http.Request) (*http.Request, error) {
	var header string
	for _, h := range r.Header.Values("Authorization") {
		if strings.HasPrefix(h, "X-Matrix ") {
			header = h
			break
		}
	}
	if header == "" {
		return nil, unauthorized("Missing X-Matrix Authorization header")
	}
	xm := federation.ParseXMatrixAuth(header)
	switch {
	case xm.Origin == "" || xm.KeyID == "" || xm.Signature == "":
		return nil, unauthorized("X-Matrix header lacks origin, key or sig")
	case xm.Destination == "":
		return nil, unauthorized("X-Matrix header lacks destination")
	case xm.Destination != a.serverName:
		return nil, unauthorized("X-Matrix destination is not this server")
	case !pdu.ValidServerName(xm.Origin):
		return nil, unauthorized("X-Matrix origin is not a server name")
	case !strings.HasPrefix(string(xm.KeyID), "ed25519:"):
		return nil, unauthorized("X-Matrix key is not an ed25519 key")
	}
	sig, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(xm.Signature, "="))
	if err != nil || len(sig) != ed25519.SignatureSize {
		return nil, unauthorized("X-Matrix sig is not an ed25519 signature")
	}
	var body []byte
	if r.Body != nil && r.Method != http.MethodGet && r.Method != http.MethodHead {
		if r.ContentLength > a.maxBody {
			return nil, apierr.TooLarge("request body too large")
		}
		body, err = io.ReadAll(io.LimitReader(r.Body, a.maxBody+1))
		if err != nil {
			return nil, apierr.BadJSON("could not read the request body")
		}
		if int64(len(body)) > a.maxBody {
			return nil, apierr.TooLarge("request body too large")
		}
		if len(body) > 0 && !json.Valid(body) {
			return nil, apierr.NotJSON("request body is not JSON")
		}
	}
	uri := r.RequestURI
	if uri == "" {
		uri = r.URL.RequestURI()
	}
	msg, err := canonicaljson.Marshal(signable{Method: r.Method, URI: uri, Origin: xm.Origin, Destination: xm.Destination, Content: body})
	if err != nil {
		return nil, apierr.BadJSON("request body is not canonical JSON")
	}
	pub, err := a.keys.VerifyKey(r.Context(), xm.Origin, string(xm.KeyID), time.Now().UnixMilli(), "")
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return nil, err
		}
		return nil, unauthorized("Unknown or expired key for the origin server")
	}
	if !ed25519.Verify(pub, msg, sig) {
		return nil, unauthorized("Bad X-Matrix signature")
	}
	r2 := r.WithContext(context.WithValue(r.Context(), originKey{}, xm.Origin))
	if body != nil {
		r2.Body = io.NopCloser(bytes.NewReader(body))
	}
	return r2, nil
}
