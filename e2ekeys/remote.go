package e2ekeys

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/tidwall/gjson"

	"github.com/parley-im/parley/rooms/pdu"
)

// Remote asks another server for its users' keys (federation's
// user/keys/query and user/keys/claim).
type Remote interface {
	QueryKeys(ctx context.Context, server string, want map[string][]string) (RemoteKeys, error)
	ClaimKeys(ctx context.Context, server string, want map[string]map[string]string) (map[string]map[string]map[string]json.RawMessage, error)
}

// RemoteKeys is another server's answer to a key query.
type RemoteKeys struct {
	DeviceKeys          map[string]map[string]json.RawMessage `json:"device_keys"`
	Master, SelfSigning map[string]json.RawMessage
}

// ServerFailure is why a server's users are missing from an answer, as
// the client API's failures map carries it.
type ServerFailure struct {
	Status  int    `json:"status"`
	Message string `json:"message"`
}

// statusUnavailable is the failures map's status for a server that could
// not be asked or did not answer in time (Synapse's 503).
const statusUnavailable = 503

// Fan-out bounds for other servers' keys.
const (
	// DefaultRemoteTimeout is how long a query waits for other servers
	// when the client names no timeout (the spec's default, 10 s).
	DefaultRemoteTimeout = 10 * time.Second
	// MaxRemoteTimeout caps a client's timeout.
	MaxRemoteTimeout = 30 * time.Second
	// remoteParallel bounds the servers asked at once for one request.
	remoteParallel = 10
)

// RemoteCache holds other servers' users' keys, kept current by their
// servers' device-list EDUs (*edus.RemoteDevices). QueryAll answers from
// it for the users it holds, and tells it of the users it did not.
type RemoteCache interface {
	Cached(userID string) (devices map[string]json.RawMessage, master, selfSigning json.RawMessage, ok bool)
	Missed(userID string)
}

// SetRemoteCache makes QueryAll answer from c for the users it holds. Call
// it before the service is used.
func (s *Service) SetRemoteCache(c RemoteCache) { s.cache = c }

// RemoteQueries returns how many user/keys/query requests QueryAll sent
// to other servers.
func (s *Service) RemoteQueries() int64 { return s.remoteQueries.Load() }

// fromCache moves the users of want that the cache holds into out, and
// returns want without them (a copy, when any was taken).
func (s *Service) fromCache(want map[string][]string, out Keys) map[string][]string {
	if s.cache == nil {
		return want
	}
	var rest map[string][]string
	for u, devs := range want {
		if !pdu.ValidUserID(u) || pdu.Domain(u) == s.serverName {
			continue
		}
		all, master, ss, ok := s.cache.Cached(u)
		if !ok {
			s.cache.Missed(u)
			continue
		}
		if rest == nil {
			rest = make(map[string][]string, len(want))
			for k, v := range want {
				rest[k] = v
			}
		}
		delete(rest, u)
		keep := all
		if len(devs) > 0 {
			keep = map[string]json.RawMessage{}
			for _, d := range devs {
				if k, ok := all[d]; ok {
					keep[d] = k
				}
			}
		}
		out.DeviceKeys[u] = keep
		if master != nil {
			out.Master[u] = master
		}
		if ss != nil {
			out.SelfSigning[u] = ss
		}
	}
	if rest == nil {
		return want
	}
	return rest
}

// SetRemote lets QueryAll and ClaimAll ask other servers through r. Call
// it before the service is used; without it other servers' users are
// left out, as Query and Claim leave them.
func (s *Service) SetRemote(r Remote) { s.remote = r }

// clampTimeout turns a client's timeout into the one used.
func clampTimeout(d time.Duration) time.Duration {
	if d <= 0 {
		return DefaultRemoteTimeout
	}
	return min(d, MaxRemoteTimeout)
}

// byServer groups the other servers' users of want by server.
func byServer[V any](self string, want map[string]V) map[string]map[string]V {
	out := map[string]map[string]V{}
	for u, v := range want {
		if !pdu.ValidUserID(u) {
			continue
		}
		srv := pdu.Domain(u)
		if srv == self {
			continue
		}
		if out[srv] == nil {
			out[srv] = map[string]V{}
		}
		out[srv][u] = v
	}
	return out
}

// fanOut runs ask for each server, at most remoteParallel at once, all
// within timeout; a server that fails or is late goes into failures.
func fanOut[V any](ctx context.Context, servers map[string]map[string]V, timeout time.Duration,
	ask func(ctx context.Context, server string, want map[string]V) error) map[string]ServerFailure {
	failures := map[string]ServerFailure{}
	if len(servers) == 0 {
		return failures
	}
	ctx, cancel := context.WithTimeout(ctx, clampTimeout(timeout))
	defer cancel()
	var mu sync.Mutex // guards failures
	var wg sync.WaitGroup
	sem := make(chan struct{}, remoteParallel)
	for srv, want := range servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
				defer func() { <-sem }()
			case <-ctx.Done():
				mu.Lock()
				failures[srv] = ServerFailure{Status: statusUnavailable, Message: "timed out before asking"}
				mu.Unlock()
				return
			}
			if err := ask(ctx, srv, want); err != nil {
				mu.Lock()
				failures[srv] = ServerFailure{Status: statusUnavailable, Message: err.Error()}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return failures
}

// QueryAll is Query for local users plus other servers' users, asked of
// their servers in parallel within timeout (0: DefaultRemoteTimeout).
// Servers that fail are named in the failures map; their users are left
// out. What a server answers is kept only for users of that server that
// were asked, and only device keys that name their user and device.
func (s *Service) QueryAll(ctx context.Context, viewer string, want map[string][]string, timeout time.Duration) (Keys, map[string]ServerFailure, error) {
	out, err := s.Query(ctx, viewer, want)
	if err != nil {
		return Keys{}, nil, err
	}
	if s.remote == nil {
		return out, map[string]ServerFailure{}, nil
	}
	want = s.fromCache(want, out)
	var mu sync.Mutex // guards out's maps
	failures := fanOut(ctx, byServer(s.serverName, want), timeout, func(ctx context.Context, srv string, users map[string][]string) error {
		s.remoteQueries.Add(1)
		got, err := s.remote.QueryKeys(ctx, srv, users)
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		for u, devs := range got.DeviceKeys {
			if _, asked := users[u]; !asked {
				continue
			}
			keep := map[string]json.RawMessage{}
			for d, k := range devs {
				if gjson.GetBytes(k, "user_id").String() == u && gjson.GetBytes(k, "device_id").String() == d {
					keep[d] = k
				}
			}
			out.DeviceKeys[u] = keep
		}
		for u, k := range got.Master {
			if _, asked := users[u]; asked && gjson.GetBytes(k, "user_id").String() == u {
				out.Master[u] = k
			}
		}
		for u, k := range got.SelfSigning {
			if _, asked := users[u]; asked && gjson.GetBytes(k, "user_id").String() == u {
				out.SelfSigning[u] = k
			}
		}
		return nil
	})
	return out, failures, nil
}

// ClaimAll is Claim for local users plus other servers' users, claimed
// from their servers in parallel within timeout. A server's answer is kept
// only for devices that were asked, one key each.
func (s *Service) ClaimAll(ctx context.Context, want map[string]map[string]string, timeout time.Duration) (map[string]map[string]map[string]json.RawMessage, map[string]ServerFailure, error) {
	out, err := s.Claim(ctx, want)
	if err != nil {
		return nil, nil, err
	}
	if s.remote == nil {
		return out, map[string]ServerFailure{}, nil
	}
	var mu sync.Mutex // guards out
	failures := fanOut(ctx, byServer(s.serverName, want), timeout, func(ctx context.Context, srv string, users map[string]map[string]string) error {
		got, err := s.remote.ClaimKeys(ctx, srv, users)
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		for u, devs := range got {
			for d, keys := range devs {
				if _, asked := users[u][d]; !asked || len(keys) != 1 {
					continue
				}
				if out[u] == nil {
					out[u] = map[string]map[string]json.RawMessage{}
				}
				out[u][d] = keys
			}
		}
		return nil
	})
	return out, failures, nil
}
