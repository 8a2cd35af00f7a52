// Package todevice owns to-device messaging (sendToDevice): which messages
// are delivered at all, how many one request may carry, and how long an
// undelivered message is kept. The room writer (rooms.Service) only stores
// what this package lets through, so every check runs outside the writer
// goroutine: graph lookups (Neo4j) and device lookups never hold it.
package todevice

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/parley-im/parley/rooms"
	"github.com/parley-im/parley/rooms/pdu"
)

var (
	// ErrTooMany: the request reaches more devices than MaxPerRequest.
	// Nothing was stored; the client should split the request.
	ErrTooMany = errors.New("todevice: too many messages in one request")
	// ErrInvalid: a message's content is not a JSON object.
	ErrInvalid = errors.New("todevice: invalid message")
)

// Writer stores messages that passed the checks (rooms.Service).
type Writer interface {
	SendToDevice(ctx context.Context, sender, senderDevice, txnID, typ string, msgs []rooms.ToDeviceMessage) error
}

// Devices finds users' devices and expires old messages (storage.Store).
type Devices interface {
	DeviceIDs(ctx context.Context, users []string) (map[string][]string, error)
	DeleteExpiredToDevice(ctx context.Context, beforeTS, nowTS int64, limit int) (int64, error)
}

// Blocks lists whom a user blocked: graph.Contacts, which caches the
// lists, so a room-key share to hundreds of users asks the graph once per
// user until a block changes.
type Blocks interface {
	Blocked(ctx context.Context, userID string) ([]string, error)
}

// Remote hands messages for other servers' users to federation: one
// m.direct_to_device EDU per server. It must store the EDU durably before
// returning (the outbound queue does), since the client is told "sent".
type Remote interface {
	SendRemoteToDevice(ctx context.Context, server string, m RemoteMessage) error
}

// RemoteMessage is the content of one m.direct_to_device EDU.
type RemoteMessage struct {
	Sender    string `json:"sender"`
	Type      string `json:"type"`
	MessageID string `json:"message_id"`
	// Messages maps user ID (all of one server) to device ID (or "*") to
	// content.
	Messages map[string]map[string]json.RawMessage `json:"messages"`
}

// Config is what the service needs. Zero values mean the defaults noted.
type Config struct {
	ServerName string
	Writer     Writer
	Devices    Devices
	// Remote sends messages for other servers' users; nil drops them
	// (federation off), with one log line per request.
	Remote Remote
	// Blocks is the relationship graph; nil means no blocks to apply.
	Blocks Blocks
	Logger *slog.Logger
	// MaxPerRequest caps the devices one request reaches, after "*" is
	// expanded. Zero means 1000.
	MaxPerRequest int
	// Retention is how long an undelivered message is kept. Zero means 7
	// days.
	Retention time.Duration
	// Now returns the current time; zero means time.Now. Tests may fix it.
	Now func() time.Time
}

// Service checks and queues to-device messages and expires undelivered
// ones. It is safe for concurrent use; all fields are static after New.
type Service struct {
	// Static after New.
	cfg Config
}

// New returns a Service for cfg.
func New(cfg Config) *Service {
	if cfg.MaxPerRequest <= 0 {
		cfg.MaxPerRequest = 1000
	}
	if cfg.Retention <= 0 {
		cfg.Retention = 7 * 24 * time.Hour
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Service{cfg: cfg}
}

// Request is one sendToDevice call: Messages maps user ID to device ID (or
// "*", every device of the user) to the message content.
type Request struct {
	Sender, SenderDevice string
	TxnID, Type          string
	Messages             map[string]map[string]json.RawMessage
}

// Send queues req's messages for the devices that exist and may be reached,
// and silently drops the rest, as the spec asks (the sender is never told
// whether a device exists or whether its user blocked them):
//   - messages for users on other servers (no federation yet), logged;
//   - messages for unknown users and unknown devices;
//   - messages for a user who blocked the sender.
//
// A request reaching more than MaxPerRequest devices fails with ErrTooMany
// and stores nothing. Graph errors fail the request (nothing stored), so a
// graph outage never lets a blocked user through; the client retries with
// the same txnId.
func (s *Service) Send(ctx context.Context, req Request) error {
	entries := 0
	for _, devices := range req.Messages {
		entries += len(devices)
		for _, content := range devices {
			if len(content) == 0 || content[0] != '{' {
				return fmt.Errorf("%w: to-device content must be an object", ErrInvalid)
			}
		}
	}
	if entries > s.cfg.MaxPerRequest {
		return fmt.Errorf("%w: %d devices, at most %d", ErrTooMany, entries, s.cfg.MaxPerRequest)
	}
	local := make([]string, 0, len(req.Messages))
	suffix := ":" + s.cfg.ServerName
	remote, example := 0, ""
	for user := range req.Messages {
		if strings.HasSuffix(user, suffix) {
			local = append(local, user)
		} else {
			remote, example = remote+1, user
		}
	}
	if remote > 0 && s.cfg.Remote == nil { // one line per request, however many users it names
		s.cfg.Logger.Info("to-device messages for remote users dropped: federation is off", "sender", req.Sender, "users", remote, "example", example)
	}
	if remote > 0 && s.cfg.Remote != nil {
		// Remote first: when it fails nothing local is stored yet, and
		// the client's retry (same txnId) sends the same message IDs,
		// which receivers drop as repeats.
		if err := s.sendRemote(ctx, req); err != nil {
			return err
		}
	}
	if len(local) == 0 {
		return nil
	}
	known, err := s.cfg.Devices.DeviceIDs(ctx, local)
	if err != nil {
		return err
	}
	var msgs []rooms.ToDeviceMessage
	for user, devs := range known {
		if blocked, err := s.blocked(ctx, user, req.Sender); err != nil {
			return err
		} else if blocked {
			continue
		}
		for _, d := range devs {
			content, ok := req.Messages[user][d]
			if !ok {
				content, ok = req.Messages[user]["*"]
			}
			if !ok {
				continue
			}
			if len(msgs) == s.cfg.MaxPerRequest {
				return fmt.Errorf("%w: \"*\" reaches more than %d devices", ErrTooMany, s.cfg.MaxPerRequest)
			}
			msgs = append(msgs, rooms.ToDeviceMessage{UserID: user, DeviceID: d, Content: content})
		}
	}
	if len(msgs) == 0 {
		return nil
	}
	return s.cfg.Writer.SendToDevice(ctx, req.Sender, req.SenderDevice, req.TxnID, req.Type, msgs)
}

// sendRemote groups req's messages for other servers' users by server and
// hands each server's share to Remote. The message ID derives from the
// sender's device and txnId, so a retried request repeats it.
func (s *Service) sendRemote(ctx context.Context, req Request) error {
	byServer := map[string]map[string]map[string]json.RawMessage{}
	suffix := ":" + s.cfg.ServerName
	for user, devs := range req.Messages {
		if strings.HasSuffix(user, suffix) {
			continue
		}
		if !pdu.ValidUserID(user) {
			continue // not a user ID: nobody to deliver to, and no server to queue for
		}
		server := pdu.Domain(user)
		if byServer[server] == nil {
			byServer[server] = map[string]map[string]json.RawMessage{}
		}
		byServer[server][user] = devs
	}
	msgID := req.SenderDevice + "/" + req.TxnID
	for server, msgs := range byServer {
		m := RemoteMessage{Sender: req.Sender, Type: req.Type, MessageID: msgID, Messages: msgs}
		if err := s.cfg.Remote.SendRemoteToDevice(ctx, server, m); err != nil {
			return fmt.Errorf("to-device for %s: %w", server, err)
		}
	}
	return nil
}

// blocked reports whether target blocked sender. One's own devices are
// always reachable.
func (s *Service) blocked(ctx context.Context, target, sender string) (bool, error) {
	if s.cfg.Blocks == nil || target == sender {
		return false, nil
	}
	list, err := s.cfg.Blocks.Blocked(ctx, target)
	if err != nil {
		return false, fmt.Errorf("to-device block check: %w", err)
	}
	return slices.Contains(list, sender), nil
}

// sweepBatch is how many expired rows one delete removes; small enough that
// each statement holds the database for milliseconds.
const sweepBatch = 1000

// Sweep deletes the messages queued more than Retention before now and
// still undelivered, in batches, and returns how many it deleted. Delivered
// messages are deleted by the sync that acknowledges them
// (storage.ToDeviceFor), and a deleted device's with it.
func (s *Service) Sweep(ctx context.Context, now time.Time) (int64, error) {
	before := now.Add(-s.cfg.Retention).UnixMilli()
	var total int64
	for {
		n, err := s.cfg.Devices.DeleteExpiredToDevice(ctx, before, now.UnixMilli(), sweepBatch)
		total += n
		if err != nil || n < sweepBatch {
			return total, err
		}
	}
}

// Run sweeps expired messages every interval (a tenth of Retention, between
// one minute and one hour) until ctx ends. Its end is ctx's: the server
// cancels it on Shutdown.
func (s *Service) Run(ctx context.Context) {
	every := min(max(s.cfg.Retention/10, time.Minute), time.Hour)
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if n, err := s.Sweep(ctx, s.cfg.Now()); err != nil && ctx.Err() == nil {
				s.cfg.Logger.Warn("to-device sweep failed", "err", err)
			} else if n > 0 {
				s.cfg.Logger.Info("expired undelivered to-device messages", "deleted", n)
			}
		}
	}
}
