package config

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
)

// Bounds on password hashing cost. They match accounts/password's, which
// refuses to verify hashes beyond them; above them a setting is more likely a
// unit mistake (bytes for KiB) than a choice, and would exhaust memory.
const (
	maxArgon2MemoryKiB = 2 << 20 // 2 GiB
	maxArgon2Time      = 64
)

// Validate reports every invalid setting at once, each prefixed with its YAML
// key, so an operator can fix a file in one pass. It accepts zero values that
// stand for defaults. Error text never repeats a database or Neo4j URL, which
// may carry a password.
func (c *Config) Validate() error {
	var errs []error
	check := func(key string, err error) {
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", key, err))
		}
	}
	nonEmpty := func(check func(string) error) func(string) error {
		return func(s string) error {
			if s == "" { // zero value: the default
				return nil
			}
			return check(s)
		}
	}
	check("server_name", nonEmpty(checkServerName)(c.ServerName))
	check("listen", nonEmpty(checkListen)(c.Listen))
	check("public_base_url", nonEmpty(checkBaseURL)(c.PublicBaseURL))
	check("database_url", checkDatabaseURL(c.DatabaseURL))
	check("default_room_version", nonEmpty(checkRoomVersion)(c.DefaultRoomVersion))

	check("registration.mode", nonEmpty(checkRegistrationMode)(c.Registration.Mode))
	for i, tok := range c.Registration.Tokens {
		check(fmt.Sprintf("registration.tokens[%d]", i), checkRegistrationToken(tok))
	}

	check("media.max_upload_bytes", checkNotNegative(c.Media.MaxUploadBytes))
	check("media.thumbnail_max_pixels", checkNotNegative(c.Media.ThumbnailMaxPixels))
	check("media.thumbnail_max_decode_bytes", checkNotNegative(c.Media.ThumbnailMaxDecodeBytes))
	check("media.thumbnail_max_jpeg_scans", checkNotNegative(c.Media.ThumbnailMaxJPEGScans))
	check("media.thumbnail_concurrency", checkNotNegative(c.Media.ThumbnailConcurrency))
	check("media.thumbnail_queue", checkNotNegative(c.Media.ThumbnailQueue))

	checkBucket(check, "rate_limit.per_user", c.RateLimit.PerUser)
	checkBucket(check, "rate_limit.per_ip", c.RateLimit.PerIP)
	for i, id := range c.RateLimit.Exempt {
		check(fmt.Sprintf("rate_limit.exempt[%d]", i), checkUserID(id))
	}

	check("passwords.concurrency", checkNotNegative(c.Passwords.Concurrency))
	if m := c.Passwords.Argon2MemoryKiB; m != 0 && (m < 8 || m > maxArgon2MemoryKiB) {
		check("passwords.argon2_memory_kib", fmt.Errorf("%d is outside 8 to %d (KiB, not bytes)", m, maxArgon2MemoryKiB))
	}
	if t := c.Passwords.Argon2Time; t > maxArgon2Time {
		check("passwords.argon2_time", fmt.Errorf("%d is above the limit of %d", t, maxArgon2Time))
	}

	checkBucket(check, "rate_limit.failed_login", c.RateLimit.FailedLogin)
	checkBucket(check, "rate_limit.register", c.RateLimit.Register)
	checkBucket(check, "rate_limit.message", c.RateLimit.Message)
	checkBucket(check, "rate_limit.join", c.RateLimit.Join)
	checkBucket(check, "rate_limit.invite_per_room", c.RateLimit.InvitePerRoom)
	checkBucket(check, "rate_limit.invite_per_user", c.RateLimit.InvitePerUser)
	checkBucket(check, "rate_limit.create_room", c.RateLimit.CreateRoom)
	checkBucket(check, "rate_limit.media_upload", c.RateLimit.MediaUpload)
	checkBucket(check, "rate_limit.per_device", c.RateLimit.PerDevice)
	check("passwords.max_waiting", checkNotNegative(c.Passwords.MaxWaiting))
	check("http.body_idle_timeout_ms", checkNotNegative(c.HTTP.BodyIdleTimeoutMs))
	check("http.max_conns_per_address", checkNotNegative(c.HTTP.MaxConnsPerAddress))
	check("to_device.max_messages_per_request", checkNotNegative(c.ToDevice.MaxMessagesPerRequest))
	check("to_device.retention_hours", checkNotNegative(c.ToDevice.RetentionHours))

	check("sync.max_timeout_ms", checkNotNegative(c.Sync.MaxTimeoutMs))
	check("sync.default_timeline_limit", checkNotNegative(c.Sync.DefaultTimelineLimit))

	checkBucket(check, "sync.full_sync", c.Sync.FullSync)
	check("sync.max_concurrent_full_syncs", checkNotNegative(c.Sync.MaxConcurrentFullSyncs))
	check("writer.cache_bytes", checkNotNegative(c.Writer.CacheBytes))
	check("writer.queue", checkNotNegative(c.Writer.Queue))
	check("writer.queue_per_user", checkNotNegative(c.Writer.QueuePerUser))
	check("writer.batch_events", checkNotNegative(c.Writer.BatchEvents))
	check("room_limits.max_initial_state", checkNotNegative(c.RoomLimits.MaxInitialState))
	check("room_limits.max_create_invites", checkNotNegative(c.RoomLimits.MaxCreateInvites))
	check("room_limits.max_state_events", checkNotNegative(c.RoomLimits.MaxStateEvents))
	check("room_limits.max_state_bytes", checkNotNegative(c.RoomLimits.MaxStateBytes))

	check("graph.neo4j_url", checkNeo4jURL(c.Graph.Neo4jURL))

	check("log.level", nonEmpty(checkLogLevel)(c.Log.Level))
	check("log.format", nonEmpty(checkLogFormat)(c.Log.Format))
	check("room_tiers", c.RoomTiers.validate())
	check("federation_inbound", c.FederationInbound.validate())
	errs = append(errs, c.Federation.validate())
	check("push", c.Push.validate())
	check("moments.fanout", checkFanout(c.Moments.Fanout)) // moments.go
	return errors.Join(errs...)
}

// checkBucket checks a token bucket's two keys under prefix.
func checkBucket(check func(key string, err error), prefix string, b Bucket) {
	check(prefix+".per_second", checkRate(b.PerSecond))
	check(prefix+".burst", checkNotNegative(b.Burst))
}

func checkNotNegative[T int | int64](n T) error {
	if n < 0 {
		return fmt.Errorf("%d is negative", n)
	}
	return nil
}

func checkRate(r float64) error {
	if r < 0 || math.IsNaN(r) || math.IsInf(r, 0) {
		return fmt.Errorf("%v is not a finite, non-negative rate", r)
	}
	return nil
}

func checkOneOf(what, s string, allowed ...string) error {
	for _, a := range allowed {
		if s == a {
			return nil
		}
	}
	return fmt.Errorf("unknown %s %q (want %s)", what, s, strings.Join(allowed, ", "))
}

func checkRegistrationMode(s string) error {
	return checkOneOf("registration mode", s, RegistrationClosed, RegistrationOpen, RegistrationToken)
}

func checkLogLevel(s string) error {
	return checkOneOf("log level", s, "debug", "info", "warn", "error")
}

// checkRoomVersion accepts the room versions Parley implements (rooms/pdu
// holds the rules of each); rooms.New refuses any other too.
func checkRoomVersion(s string) error { return checkOneOf("room version", s, "10", "11", "12") }

func checkLogFormat(s string) error { return checkOneOf("log format", s, "text", "json") }

// checkServerName follows the Matrix spec's server name grammar: a DNS name,
// an IPv4 address or a bracketed IPv6 address, then an optional :port.
func checkServerName(s string) error {
	host, port, hasPort := s, "", false
	if rest, ok := strings.CutPrefix(s, "["); ok {
		literal, after, ok := strings.Cut(rest, "]")
		if !ok {
			return fmt.Errorf("%q has an unclosed [", s)
		}
		if addr, err := netip.ParseAddr(literal); err != nil || !addr.Is6() || addr.Zone() != "" {
			return fmt.Errorf("%q: [%s] is not an IPv6 address", s, literal)
		}
		if after != "" {
			if port, hasPort = strings.CutPrefix(after, ":"); !hasPort {
				return fmt.Errorf("%q: want :port after ]", s)
			}
		}
		host = "" // checked above
	} else {
		if i := strings.LastIndexByte(s, ':'); i >= 0 {
			host, port, hasPort = s[:i], s[i+1:], true
		}
		if strings.Contains(host, ":") {
			return fmt.Errorf("%q: an IPv6 address must be in brackets, as [::1]:8448", s)
		}
		if host == "" {
			return fmt.Errorf("%q has no host name", s)
		}
		if len(host) > 255 || !isDNSChars(host) {
			return fmt.Errorf("%q: a host name has 1 to 255 letters, digits, '-' and '.'", s)
		}
	}
	if hasPort {
		n, err := strconv.Atoi(port)
		if err != nil || len(port) > 5 || strings.TrimLeft(port, "0123456789") != "" || n < 1 || n > 65535 {
			return fmt.Errorf("%q: port %q is not a number from 1 to 65535", s, port)
		}
	}
	return nil
}

func isDNSChars(s string) bool {
	for _, r := range s {
		if !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '-' || r == '.') {
			return false
		}
	}
	return true
}

// checkListen accepts host:port with a numeric port; an empty host means all
// interfaces, and port 0 asks the kernel for a free one (handy in tests).
func checkListen(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("%q is not host:port: %w", s, err)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("%q: port %q is not a number from 0 to 65535", s, port)
	}
	if _, err := netip.ParseAddr(host); err != nil && !isDNSChars(host) {
		return fmt.Errorf("%q: %q is neither an IP address nor a host name", s, host)
	}
	return nil
}

func checkBaseURL(s string) error {
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return err
	case u.Scheme != "http" && u.Scheme != "https" || u.Host == "":
		return fmt.Errorf("%q is not an http:// or https:// URL", s)
	case u.User != nil || u.RawQuery != "" || u.Fragment != "":
		return fmt.Errorf("%q: a base URL has no user, query or fragment", s)
	}
	return nil
}

// checkDatabaseURL accepts "" (SQLite) or a PostgreSQL URL. Its errors name
// at most the scheme: the rest of the URL may hold a password.
func checkDatabaseURL(s string) error {
	if s == "" {
		return nil
	}
	scheme, err := secretURLScheme(s)
	if err != nil {
		return err
	}
	if scheme != "postgres" && scheme != "postgresql" {
		return fmt.Errorf("unsupported scheme %q (want postgres:// or postgresql://, or leave it empty for SQLite in data_dir)", scheme)
	}
	return nil
}

// checkNeo4jURL accepts "" or a Neo4j driver URL, naming at most the scheme.
func checkNeo4jURL(s string) error {
	if s == "" {
		return nil
	}
	scheme, err := secretURLScheme(s)
	if err != nil {
		return err
	}
	if err := checkOneOf("Neo4j URL scheme", scheme, "neo4j", "neo4j+s", "neo4j+ssc", "bolt", "bolt+s", "bolt+ssc"); err != nil {
		return err
	}
	if u, _ := url.Parse(s); u.Host == "" {
		return errors.New("the URL has no host")
	}
	return nil
}

// secretURLScheme parses a URL that may contain credentials and returns its
// scheme, with an error that does not quote the URL (url.Parse's would).
func secretURLScheme(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return "", fmt.Errorf("not a URL: %w", err)
	}
	if u.Scheme == "" {
		return "", errors.New("not a URL: no scheme")
	}
	return u.Scheme, nil
}

// checkRegistrationToken applies the spec's token grammar: 1 to 64 characters
// from [A-Za-z0-9._~-].
func checkRegistrationToken(tok string) error {
	if tok == "" || len(tok) > 64 {
		return fmt.Errorf("a token has 1 to 64 characters, this one %d", len(tok))
	}
	for _, r := range tok {
		if !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || strings.ContainsRune("._~-", r)) {
			return fmt.Errorf("a token has only letters, digits and . _ ~ -, not %q", r)
		}
	}
	return nil
}

// checkUserID accepts @localpart:server_name.
func checkUserID(id string) error {
	local, server, ok := strings.Cut(strings.TrimPrefix(id, "@"), ":")
	if !strings.HasPrefix(id, "@") || !ok || local == "" {
		return fmt.Errorf("%q is not a user ID (want @localpart:server.name)", id)
	}
	if err := checkServerName(server); err != nil {
		return fmt.Errorf("%q: server name %w", id, err)
	}
	return nil
}
