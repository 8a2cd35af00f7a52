// Package keybackup owns server-side key backup (the client-server spec's
// "Server-side key backups"): which backup version is current, which
// version a client may write to, which of two copies of a room key is kept,
// and the limits on what one user may store. The keys themselves are
// encrypted by the client; the server never reads session_data or
// auth_data beyond checking that they are JSON objects.
//
// Storage keeps the rows and runs each change in one transaction; HTTP
// handlers only parse requests and map this package's errors.
package keybackup

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/parley-im/parley/storage"
)

// Store is what the service needs from storage.
type Store interface {
	CreateBackupVersion(ctx context.Context, userID, algorithm, authData string, maxLive int64) (int64, error)
	GetBackupVersion(ctx context.Context, userID string, version int64) (storage.BackupVersion, error)
	UpdateBackupAuthData(ctx context.Context, userID string, version int64, authData string) error
	DeleteBackupVersion(ctx context.Context, userID string, version int64) error
	PutBackupSessions(ctx context.Context, userID string, version int64, sessions []storage.BackupSession,
		replace func(old, new *storage.BackupSession) bool, maxSessions int64) (etag, count int64, err error)
	BackupSessions(ctx context.Context, userID string, version int64, roomID, sessionID string) ([]storage.BackupSession, error)
	DeleteBackupSessions(ctx context.Context, userID string, version int64, roomID, sessionID string) (etag, count int64, err error)
}

// Defaults for Config's zero values.
const (
	// DefaultMaxSessions caps the sessions one user keeps in all live
	// backup versions together (older versions keep their keys until
	// deleted). An account that has read encrypted rooms for years holds
	// tens of thousands of megolm sessions; 200,000 leaves room for that
	// while keeping one "download everything" answer (about 1 KiB a
	// session) within a few hundred MiB.
	DefaultMaxSessions = 200_000
	// DefaultMaxVersions caps a user's live (not deleted) backup versions:
	// each holds up to 1 MiB of auth_data. Clients keep one.
	DefaultMaxVersions = 100
	// DefaultMaxSessionsPerRequest caps one upload. Clients send a few
	// hundred at a time (Element: 200).
	DefaultMaxSessionsPerRequest = 10_000
	// MaxIDBytes caps room and session IDs; real ones are under 100 bytes.
	MaxIDBytes = 255
	// MaxAlgorithmBytes caps the algorithm name.
	MaxAlgorithmBytes = 255
)

// Config tunes the service; zero values mean the defaults above.
type Config struct {
	// MaxSessions caps the sessions one user keeps in all live versions.
	MaxSessions int64
	// MaxVersions caps one user's live backup versions.
	MaxVersions int64
	// MaxSessionsPerRequest caps the sessions one upload carries.
	MaxSessionsPerRequest int
}

// Errors, for the HTTP layer to map.
var (
	// ErrNotFound: no such backup version, no current backup, or no such
	// session (M_NOT_FOUND, 404).
	ErrNotFound = errors.New("keybackup: not found")
	// ErrInvalid: a malformed request (M_INVALID_PARAM or M_BAD_JSON, 400).
	ErrInvalid = errors.New("keybackup: invalid")
	// ErrFull: the backup would hold more sessions than allowed (413).
	ErrFull = errors.New("keybackup: backup is full")
)

// WrongVersionError says an upload named a version other than the current
// one (M_WRONG_ROOM_KEYS_VERSION, 403, with current_version).
type WrongVersionError struct{ Current string }

func (e *WrongVersionError) Error() string {
	return "keybackup: wrong backup version; the current one is " + e.Current
}

// Service applies the key backup rules.
type Service struct {
	// Static after New.
	store Store
	cfg   Config
}

// New returns a service on store.
func New(store Store, cfg Config) *Service {
	if cfg.MaxSessions <= 0 {
		cfg.MaxSessions = DefaultMaxSessions
	}
	if cfg.MaxVersions <= 0 {
		cfg.MaxVersions = DefaultMaxVersions
	}
	if cfg.MaxSessionsPerRequest <= 0 {
		cfg.MaxSessionsPerRequest = DefaultMaxSessionsPerRequest
	}
	return &Service{store: store, cfg: cfg}
}

// VersionInfo is a backup version as the spec shows it.
type VersionInfo struct {
	Algorithm string          `json:"algorithm"`
	AuthData  json.RawMessage `json:"auth_data"`
	Version   string          `json:"version"`
	Etag      string          `json:"etag"`
	Count     int64           `json:"count"`
}

// KeyData is one backed-up session key (the spec's KeyBackupData).
type KeyData struct {
	FirstMessageIndex int64           `json:"first_message_index"`
	ForwardedCount    int64           `json:"forwarded_count"`
	IsVerified        bool            `json:"is_verified"`
	SessionData       json.RawMessage `json:"session_data"`
}

// Key names a session key within a backup.
type Key struct {
	RoomID, SessionID string
	Data              KeyData
}

// Counts is the answer to a change of keys.
type Counts struct {
	Etag  string `json:"etag"`
	Count int64  `json:"count"`
}

// parseVersion reads a version string. Versions are positive decimal
// integers; anything else names no version.
func parseVersion(v string) (int64, bool) {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 || strconv.FormatInt(n, 10) != v {
		return 0, false
	}
	return n, true
}

// isObject reports whether raw is a JSON object.
func isObject(raw json.RawMessage) bool {
	for _, c := range raw {
		switch c {
		case ' ', '\t', '\r', '\n':
			continue
		case '{':
			return json.Valid(raw)
		}
		return false
	}
	return false
}

func checkVersionBody(algorithm string, authData json.RawMessage) error {
	if algorithm == "" {
		return fmt.Errorf("%w: algorithm is required", ErrInvalid)
	}
	if len(algorithm) > MaxAlgorithmBytes {
		return fmt.Errorf("%w: algorithm is longer than %d bytes", ErrInvalid, MaxAlgorithmBytes)
	}
	if !isObject(authData) {
		return fmt.Errorf("%w: auth_data must be a JSON object", ErrInvalid)
	}
	return nil
}

// CreateVersion makes a new backup version, which becomes the current one,
// and returns its version string.
func (s *Service) CreateVersion(ctx context.Context, userID, algorithm string, authData json.RawMessage) (string, error) {
	if err := checkVersionBody(algorithm, authData); err != nil {
		return "", err
	}
	v, err := s.store.CreateBackupVersion(ctx, userID, algorithm, string(authData), s.cfg.MaxVersions)
	if errors.Is(err, storage.ErrBackupFull) {
		return "", fmt.Errorf("%w: a user keeps at most %d backup versions; delete one first", ErrFull, s.cfg.MaxVersions)
	}
	if err != nil {
		return "", err
	}
	return strconv.FormatInt(v, 10), nil
}

// Version returns a backup version; "" means the current one.
func (s *Service) Version(ctx context.Context, userID, version string) (VersionInfo, error) {
	var n int64
	if version != "" {
		var ok bool
		if n, ok = parseVersion(version); !ok {
			return VersionInfo{}, fmt.Errorf("%w: no backup version %q", ErrNotFound, version)
		}
	}
	v, err := s.store.GetBackupVersion(ctx, userID, n)
	if errors.Is(err, storage.ErrNotFound) {
		if version == "" {
			return VersionInfo{}, fmt.Errorf("%w: no current backup version", ErrNotFound)
		}
		return VersionInfo{}, fmt.Errorf("%w: no backup version %q", ErrNotFound, version)
	}
	if err != nil {
		return VersionInfo{}, err
	}
	return VersionInfo{Algorithm: v.Algorithm, AuthData: json.RawMessage(v.AuthData), Version: strconv.FormatInt(v.Version, 10),
		Etag: strconv.FormatInt(v.Etag, 10), Count: v.Count}, nil
}

// UpdateVersion replaces a version's auth_data. The algorithm must be the
// version's own, and a version named in the body must be the one in the
// path: a backup's algorithm never changes, since its keys were encrypted
// for it.
func (s *Service) UpdateVersion(ctx context.Context, userID, version, bodyVersion, algorithm string, authData json.RawMessage) error {
	cur, err := s.Version(ctx, userID, version)
	if err != nil {
		return err
	}
	if bodyVersion != "" && bodyVersion != version {
		return fmt.Errorf("%w: the version in the body does not match the one in the path", ErrInvalid)
	}
	if err := checkVersionBody(algorithm, authData); err != nil {
		return err
	}
	if algorithm != cur.Algorithm {
		return fmt.Errorf("%w: the algorithm does not match the backup's", ErrInvalid)
	}
	n, _ := parseVersion(version)
	if err := s.store.UpdateBackupAuthData(ctx, userID, n, string(authData)); errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("%w: no backup version %q", ErrNotFound, version)
	} else if err != nil {
		return err
	}
	return nil
}

// DeleteVersion deletes a backup version and its keys. Its number is never
// given out again.
func (s *Service) DeleteVersion(ctx context.Context, userID, version string) error {
	n, ok := parseVersion(version)
	if !ok {
		return fmt.Errorf("%w: no backup version %q", ErrNotFound, version)
	}
	if err := s.store.DeleteBackupVersion(ctx, userID, n); errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("%w: no backup version %q", ErrNotFound, version)
	} else if err != nil {
		return err
	}
	return nil
}

// Replace reports whether a newly uploaded copy of a session key takes the
// place of the stored one, by the spec's rules in order: a verified key
// beats an unverified one; then the lower first_message_index wins (it
// decrypts more of the history); then the lower forwarded_count (fewer
// hands passed it on). When all three are equal the stored key stays.
func Replace(old, new *storage.BackupSession) bool {
	if old.IsVerified != new.IsVerified {
		return new.IsVerified
	}
	if old.FirstMessageIndex != new.FirstMessageIndex {
		return new.FirstMessageIndex < old.FirstMessageIndex
	}
	return new.ForwardedCount < old.ForwardedCount
}

// PutKeys stores keys in version, which must be the current one.
func (s *Service) PutKeys(ctx context.Context, userID, version string, keys []Key) (Counts, error) {
	n, ok := parseVersion(version)
	if !ok {
		cur, err := s.Version(ctx, userID, "")
		if err != nil {
			return Counts{}, err
		}
		return Counts{}, &WrongVersionError{Current: cur.Version}
	}
	if len(keys) > s.cfg.MaxSessionsPerRequest {
		return Counts{}, fmt.Errorf("%w: more than %d sessions in one request", ErrInvalid, s.cfg.MaxSessionsPerRequest)
	}
	rows := make([]storage.BackupSession, len(keys))
	for i, k := range keys {
		if err := checkKey(k); err != nil {
			return Counts{}, err
		}
		rows[i] = storage.BackupSession{RoomID: k.RoomID, SessionID: k.SessionID, FirstMessageIndex: k.Data.FirstMessageIndex,
			ForwardedCount: k.Data.ForwardedCount, IsVerified: k.Data.IsVerified, SessionData: string(k.Data.SessionData)}
	}
	etag, count, err := s.store.PutBackupSessions(ctx, userID, n, rows, Replace, s.cfg.MaxSessions)
	var ve *storage.BackupVersionError
	switch {
	case errors.As(err, &ve):
		return Counts{}, &WrongVersionError{Current: strconv.FormatInt(ve.Current, 10)}
	case errors.Is(err, storage.ErrNotFound):
		return Counts{}, fmt.Errorf("%w: no current backup version", ErrNotFound)
	case errors.Is(err, storage.ErrBackupFull):
		return Counts{}, fmt.Errorf("%w: a user's backups hold at most %d sessions", ErrFull, s.cfg.MaxSessions)
	case err != nil:
		return Counts{}, err
	}
	return Counts{Etag: strconv.FormatInt(etag, 10), Count: count}, nil
}

func checkKey(k Key) error {
	switch {
	case k.RoomID == "" || k.SessionID == "":
		return fmt.Errorf("%w: room and session IDs must not be empty", ErrInvalid)
	case len(k.RoomID) > MaxIDBytes || len(k.SessionID) > MaxIDBytes:
		return fmt.Errorf("%w: room and session IDs are at most %d bytes", ErrInvalid, MaxIDBytes)
	case k.Data.FirstMessageIndex < 0 || k.Data.ForwardedCount < 0:
		return fmt.Errorf("%w: first_message_index and forwarded_count must not be negative", ErrInvalid)
	case !isObject(k.Data.SessionData):
		return fmt.Errorf("%w: session_data must be a JSON object", ErrInvalid)
	}
	return nil
}

// Keys returns the keys of a version: all (roomID ""), one room's, or one
// session (both set; ErrNotFound when it is not stored).
func (s *Service) Keys(ctx context.Context, userID, version, roomID, sessionID string) ([]Key, error) {
	n, ok := parseVersion(version)
	if !ok {
		return nil, fmt.Errorf("%w: no backup version %q", ErrNotFound, version)
	}
	rows, err := s.store.BackupSessions(ctx, userID, n, roomID, sessionID)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, fmt.Errorf("%w: no backup version %q", ErrNotFound, version)
	}
	if err != nil {
		return nil, err
	}
	if sessionID != "" && len(rows) == 0 {
		return nil, fmt.Errorf("%w: no such session in the backup", ErrNotFound)
	}
	out := make([]Key, len(rows))
	for i, r := range rows {
		out[i] = Key{RoomID: r.RoomID, SessionID: r.SessionID, Data: KeyData{FirstMessageIndex: r.FirstMessageIndex,
			ForwardedCount: r.ForwardedCount, IsVerified: r.IsVerified, SessionData: json.RawMessage(r.SessionData)}}
	}
	return out, nil
}

// DeleteKeys deletes keys of a version: all, one room's or one session.
func (s *Service) DeleteKeys(ctx context.Context, userID, version, roomID, sessionID string) (Counts, error) {
	n, ok := parseVersion(version)
	if !ok {
		return Counts{}, fmt.Errorf("%w: no backup version %q", ErrNotFound, version)
	}
	etag, count, err := s.store.DeleteBackupSessions(ctx, userID, n, roomID, sessionID)
	if errors.Is(err, storage.ErrNotFound) {
		return Counts{}, fmt.Errorf("%w: no backup version %q", ErrNotFound, version)
	}
	if err != nil {
		return Counts{}, err
	}
	return Counts{Etag: strconv.FormatInt(etag, 10), Count: count}, nil
}
