package edus

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"sort"
	"strings"
	"sync"

	"github.com/parley-im/parley/federation/outbound"
	"github.com/parley-im/parley/storage"
)

// DeviceStore is what DeviceListOut reads and writes (*storage.Store): the
// user's devices and keys now, and what was last announced of them.
type DeviceStore interface {
	DevicesOf(ctx context.Context, userIDs []string) ([]storage.Device, error)
	DeviceKeys(ctx context.Context, userIDs []string) (map[string]map[string]string, error)
	CrossSigningKeys(ctx context.Context, userIDs []string) (map[string]map[string]string, error)
	DeviceListAnnounced(ctx context.Context, userID string) (int64, map[string]string, error)
	SaveDeviceListAnnounced(ctx context.Context, userID string, streamID int64, set map[string]string, gone []string) error
}

// DeviceListOut announces local users' device-list changes to the servers
// that share a room with them (any tier: E2EE needs every member's
// devices).
//
// It is told only that a user's devices or keys changed. It then compares
// the user's devices, device keys and cross-signing keys with what it last
// announced (schema 039) and sends one m.device_list_update per device
// that was added, changed or deleted, and an m.signing_key_update when the
// master or self-signing key changed. Each device update takes the user's
// next stream ID, and names the one before as prev_id, so the receiver can
// tell when it missed one. What was announced is saved before the EDUs are
// queued: a crash in between loses those EDUs, and the receiver sees the
// gap at the user's next change and asks for the whole list again.
type DeviceListOut struct {
	// Static after NewDeviceListOut.
	store DeviceStore
	rooms Rooms
	q     Queue
	log   *slog.Logger
	kick  chan struct{} // capacity 1: pending is not empty

	mu      sync.Mutex
	pending map[string]struct{} // guarded by mu: users to look at
}

// NewDeviceListOut builds the announcer. Run announces.
func NewDeviceListOut(store DeviceStore, rooms Rooms, q Queue, log *slog.Logger) *DeviceListOut {
	if log == nil {
		log = slog.Default()
	}
	return &DeviceListOut{store: store, rooms: rooms, q: q, log: log, kick: make(chan struct{}, 1), pending: map[string]struct{}{}}
}

// Changed notes that a local user's devices or keys changed (memory only);
// Run announces it.
func (d *DeviceListOut) Changed(userID string) {
	d.mu.Lock()
	d.pending[userID] = struct{}{}
	d.mu.Unlock()
	select {
	case d.kick <- struct{}{}:
	default:
	}
}

// Run announces the noted changes until ctx ends, one user at a time, so
// one user's stream IDs are handed out in order.
func (d *DeviceListOut) Run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-d.kick:
		}
		d.mu.Lock()
		users := d.pending
		d.pending = map[string]struct{}{}
		d.mu.Unlock()
		for u := range users {
			if err := d.Announce(ctx, u); err != nil && ctx.Err() == nil {
				d.log.Warn("federation: device list not announced", "user", u, "err", err)
			}
		}
	}
}

// DeviceListUpdate is the content of m.device_list_update.
type DeviceListUpdate struct {
	UserID      string          `json:"user_id"`
	DeviceID    string          `json:"device_id"`
	DisplayName string          `json:"device_display_name,omitempty"`
	StreamID    int64           `json:"stream_id"`
	PrevID      []int64         `json:"prev_id"`
	Deleted     bool            `json:"deleted,omitempty"`
	Keys        json.RawMessage `json:"keys,omitempty"`
}

// signingKeyUpdate is the content of m.signing_key_update.
type signingKeyUpdate struct {
	UserID         string          `json:"user_id"`
	MasterKey      json.RawMessage `json:"master_key,omitempty"`
	SelfSigningKey json.RawMessage `json:"self_signing_key,omitempty"`
}

func digest(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return base64.RawStdEncoding.EncodeToString(h.Sum(nil))
}

// Announce compares userID's devices and keys with what was last
// announced, and announces the difference.
func (d *DeviceListOut) Announce(ctx context.Context, userID string) error {
	users := []string{userID}
	devs, err := d.store.DevicesOf(ctx, users)
	if err != nil {
		return err
	}
	keys, err := d.store.DeviceKeys(ctx, users)
	if err != nil {
		return err
	}
	xs, err := d.store.CrossSigningKeys(ctx, users)
	if err != nil {
		return err
	}
	stream, announced, err := d.store.DeviceListAnnounced(ctx, userID)
	if err != nil {
		return err
	}
	set := map[string]string{}
	var updates []DeviceListUpdate
	now := map[string]bool{}
	sort.Slice(devs, func(i, j int) bool { return devs[i].DeviceID < devs[j].DeviceID })
	for _, dv := range devs {
		item := "d:" + dv.DeviceID
		now[item] = true
		k := keys[userID][dv.DeviceID]
		dg := digest(dv.DisplayName, k)
		if announced[item] == dg {
			continue
		}
		set[item] = dg
		u := DeviceListUpdate{UserID: userID, DeviceID: dv.DeviceID, DisplayName: dv.DisplayName}
		if k != "" {
			u.Keys = json.RawMessage(k)
		}
		updates = append(updates, u)
	}
	var gone []string
	for item := range announced {
		if dev, ok := strings.CutPrefix(item, "d:"); ok && !now[item] {
			gone = append(gone, item)
			updates = append(updates, DeviceListUpdate{UserID: userID, DeviceID: dev, Deleted: true})
		}
	}
	var sk *signingKeyUpdate
	for _, typ := range []string{"master", "self_signing"} {
		k := xs[userID][typ]
		if k == "" || announced[typ] == digest(k) {
			continue
		}
		set[typ] = digest(k)
		if sk == nil {
			sk = &signingKeyUpdate{UserID: userID}
		}
		if typ == "master" {
			sk.MasterKey = json.RawMessage(k)
		} else {
			sk.SelfSigningKey = json.RawMessage(k)
		}
	}
	if len(updates) == 0 && sk == nil {
		return nil
	}
	if sk != nil { // a receiver wants both keys in one update
		if sk.MasterKey == nil && xs[userID]["master"] != "" {
			sk.MasterKey = json.RawMessage(xs[userID]["master"])
		}
		if sk.SelfSigningKey == nil && xs[userID]["self_signing"] != "" {
			sk.SelfSigningKey = json.RawMessage(xs[userID]["self_signing"])
		}
	}
	edus := make([]outbound.EDU, 0, len(updates)+1)
	for i := range updates {
		stream++
		updates[i].StreamID, updates[i].PrevID = stream, []int64{stream - 1}
		content, err := json.Marshal(&updates[i])
		if err != nil {
			return err
		}
		edus = append(edus, outbound.EDU{Type: "m.device_list_update", Content: content})
	}
	if sk != nil {
		content, err := json.Marshal(sk)
		if err != nil {
			return err
		}
		edus = append(edus, outbound.EDU{Type: "m.signing_key_update", Content: content})
	}
	if err := d.store.SaveDeviceListAnnounced(ctx, userID, stream, set, gone); err != nil {
		return err
	}
	for _, srv := range serversSharing(d.rooms, d.q, userID, true) {
		for _, e := range edus {
			if err := d.q.EnqueueEDU(ctx, srv, e); err != nil {
				d.log.Warn("federation: device list update not queued", "user", userID, "destination", srv, "err", err)
				break // the destination sees a gap at the next change
			}
		}
	}
	return nil
}
