package homeserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/parley-im/parley/config"
	"github.com/parley-im/parley/federation/inbound"
	"github.com/parley-im/parley/federation/outbound"
	"github.com/parley-im/parley/federation/transport"
	"github.com/parley-im/parley/inbox"
	"github.com/parley-im/parley/media"
	"github.com/parley-im/parley/rooms"
	checks "github.com/parley-im/parley/rooms/inbound"
	"github.com/parley-im/parley/storage"
	"github.com/parley-im/parley/todevice"
)

// This file connects the federation parts to each other and to the rest
// of the server (issue 11): the outbound queue over the signed client,
// and federation/inbound's /send with its EDU sinks. See the "Wiring"
// section of docs/federation.md for what is connected and what is not.

// fedTransport adapts the signed client to outbound.Transport. Static.
type fedTransport struct{ c *transport.Client }

var _ outbound.Transport = fedTransport{}

// SendTransaction implements outbound.Transport: it PUTs txn, signed. Any
// error means the queue retries the same transaction later.
func (t fedTransport) SendTransaction(ctx context.Context, destination string, txn *outbound.Transaction) (outbound.Result, error) {
	edus, err := marshalEDUs(txn.EDUs)
	if err != nil {
		return outbound.Result{}, err
	}
	res, err := t.c.Send(ctx, destination, txn.ID, txn.OriginServerTS, txn.PDUs, edus)
	if err != nil {
		return outbound.Result{}, err
	}
	return outbound.Result{PDUErrors: pduErrors(res)}, nil
}

// marshalEDUs turns the queue's EDUs into the wire's JSON objects.
func marshalEDUs(edus []outbound.EDU) ([]json.RawMessage, error) {
	if len(edus) == 0 {
		return nil, nil
	}
	out := make([]json.RawMessage, len(edus))
	for i := range edus {
		b, err := json.Marshal(&edus[i])
		if err != nil {
			return nil, fmt.Errorf("federation: EDU %s: %w", edus[i].Type, err)
		}
		out[i] = b
	}
	return out, nil
}

// pduErrors keeps the PDUs the destination refused (non-empty error text);
// nil when it took them all, so the common case allocates nothing.
func pduErrors(res map[string]string) map[string]string {
	var out map[string]string
	for id, msg := range res {
		if msg == "" {
			continue
		}
		if out == nil {
			out = make(map[string]string)
		}
		out[id] = msg
	}
	return out
}

// reachable tells the outbound queue that an origin that just reached us
// is up, so its backoff ends at once (Queue.Reachable). It runs after the
// X-Matrix check, so only an authenticated origin ends a backoff.
func reachable(q *outbound.Queue) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if o := transport.Origin(r.Context()); o != "" {
				q.Reachable(o)
			}
			next.ServeHTTP(w, r)
		})
	}
}

// fedDeps are the parts of the server that federation feeds.
type fedDeps struct {
	notifier *inbox.Notifier
	rooms    *rooms.Service
	toDevice *todevice.Service
	// remoteToDevice is todevice's Remote; wireFederation gives it the
	// queue.
	remoteToDevice *fedToDevice
	// roomEDUs sends local receipts; wireFederation gives it the queue.
	roomEDUs *fedRoomEDUs
	// media serves federation media and fetches remote media (fedreads.go).
	media *media.Repo
	// remote is the client API's joiner; wireFederation sets it.
	remote *fedMembership
	// backfill is the client API's backfiller; wireFederation sets it.
	backfill *fedBackfill
	// presence is the tracker remote presence goes into; edus the hooks
	// that send local presence and device lists out (fededus_wire.go);
	// bg ends when the server stops.
	presence *inbox.Presence
	edus     *fedEDUsOut
	bg       context.Context
}

// wireFederation starts the outbound queue and mounts /send on the
// federation router, when federation is on. It runs in New, before
// ServeFederation, so every route added later on Fed.Router.Authed goes
// through the same middleware.
func (s *Server) wireFederation(ctx context.Context, d fedDeps) error {
	fed := s.Fed
	if fed == nil {
		return nil
	}
	q, err := s.StartOutbound(ctx, outbound.Config{Transport: fedTransport{fed.Client},
		MinBackoff: s.cfg.Federation.RetryMin(), MaxBackoff: s.cfg.Federation.RetryMax()})
	if err != nil {
		return fmt.Errorf("outbound federation: %w", err)
	}
	if d.remoteToDevice != nil {
		d.remoteToDevice.q = q
	}
	if d.notifier != nil {
		d.notifier.OnTyping(typingOut(s.cfg.ServerName, q))
	}
	if d.roomEDUs != nil {
		d.roomEDUs.q = q
	}
	fed.Router.Authed = fed.Router.Authed.With(reachable(q))
	s.wireEDUs(d, q) // fededus_wire.go: presence and device lists, both ways
	// The checks on each PDU (rooms/inbound) read and write the room
	// through the room service's adapter over the DAG storage.
	src := s.Rooms.InboundStore()
	h := inbound.New(inbound.Config{
		ServerName:  s.cfg.ServerName,
		Origin:      requestOrigin,
		Pipeline:    checks.New(src, fed.Keys, src),
		Source:      src,
		Fetcher:     inbound.ClientFetcher{Client: fed.Client.Client},
		RoomServers: s.Store,
		TxnLog:      s.Store,
		OutOfBand:   s.Rooms, // a kick ending a knock or invite here (issue 11)
		Keys:        fed.Keys,
		EDUs:        eduSinks(s.cfg.ServerName, d, s.log),
		Limit:       inboundLimits(s.cfg.FederationInbound),
		Log:         s.log,
	})
	h.Mount(fed.Router.Authed)
	fed.Inbound = h
	s.mountFedReads(fed, d.media) // fedreads.go
	s.wireMembership(d.remote, q) // fedmembership.go
	s.wireBackfill(d.backfill)    // fedbackfill.go
	return nil
}

// requestOrigin is the server the X-Matrix middleware authenticated.
func requestOrigin(r *http.Request) (string, bool) {
	o := transport.Origin(r.Context())
	return o, o != ""
}

// inboundLimits maps the federation_inbound config section to the
// handler's limits (zero fields take the handler's defaults).
func inboundLimits(c config.FederationInbound) inbound.Limits {
	return inbound.Limits{
		MaxBodyBytes:     c.MaxBodyBytes,
		OriginRate:       c.OriginPerSecond,
		OriginBurst:      c.OriginBurst,
		MaxRooms:         c.MaxRooms,
		MissingEvents:    c.MissingEventsLimit,
		MaxFetchedEvents: c.MaxFetchedEvents,
		TxnLogTTL:        time.Duration(c.TxnLogHours) * time.Hour,
	}
}

// fedToDevice sends to-device messages for other servers' users as
// durable m.direct_to_device EDUs. q is set by wireFederation, in New,
// before any request can arrive; static after.
type fedToDevice struct{ q *outbound.Queue }

// SendRemoteToDevice implements todevice.Remote. The EDU is in the store
// when it returns (a durable type), so the client's "sent" holds.
func (f *fedToDevice) SendRemoteToDevice(ctx context.Context, server string, m todevice.RemoteMessage) error {
	if f.q == nil {
		return errors.New("federation: outbound queue not started")
	}
	content, err := json.Marshal(&m)
	if err != nil {
		return err
	}
	return f.q.EnqueueEDU(ctx, server, outbound.EDU{Type: "m.direct_to_device", Content: content})
}

// typingOut sends local users' typing to the room's other servers as
// m.typing EDUs (kept in memory by the queue: the next one supersedes
// it). Remote users' typing, which the /send sink sets, is not echoed.
func typingOut(serverName string, q roomEDUQueue) func(room, user string, typing bool) {
	suffix := ":" + serverName
	return func(room, user string, typing bool) {
		if !strings.HasSuffix(user, suffix) {
			return
		}
		servers := q.ServersInRoom(nil, room)
		if len(servers) == 0 {
			return
		}
		content, err := json.Marshal(typingEDU{RoomID: room, UserID: user, Typing: typing})
		if err != nil {
			return
		}
		for _, srv := range servers {
			_ = q.EnqueueEDU(context.Background(), srv, outbound.EDU{Type: "m.typing", Content: content}) // only fails once stopped
		}
	}
}

// roomEDUQueue is the part of the outbound queue that room EDUs use
// (*outbound.Queue).
type roomEDUQueue interface {
	ServersInRoom(dst []string, roomID string) []string
	EnqueueEDU(ctx context.Context, destination string, edu outbound.EDU) error
}

// typingEDU is the content of m.typing.
type typingEDU struct {
	RoomID string `json:"room_id"`
	UserID string `json:"user_id"`
	Typing bool   `json:"typing"`
}

// fedRoomEDUs sends local users' receipts to the room's other servers.
// q is set by wireFederation, in New, before any request; static after.
type fedRoomEDUs struct {
	server string
	q      roomEDUQueue
}

// receipt is rooms.Config.ReceiptHook: a local user's public receipt goes
// out as m.receipt (kept in memory by the queue, as typing is). Private
// receipts never leave the server; remote users' receipts are not echoed.
func (f *fedRoomEDUs) receipt(r storage.Receipt) {
	if f.q == nil || r.Type == "m.read.private" || !strings.HasSuffix(r.UserID, ":"+f.server) {
		return
	}
	servers := f.q.ServersInRoom(nil, r.RoomID)
	if len(servers) == 0 {
		return
	}
	data := map[string]any{"ts": r.TS}
	if r.ThreadID != "" {
		data["thread_id"] = r.ThreadID
	}
	content, err := json.Marshal(map[string]any{r.RoomID: map[string]any{r.Type: map[string]any{
		r.UserID: map[string]any{"event_ids": []string{r.EventID}, "data": data}}}})
	if err != nil {
		return
	}
	for _, srv := range servers {
		_ = f.q.EnqueueEDU(context.Background(), srv, outbound.EDU{Type: "m.receipt", Content: content}) // only fails once stopped
	}
}
