// Package homeserver assembles one Parley server from its configuration:
// the store, the signing key, the room writer, the sync notifier, the media
// repository and the HTTP APIs. It owns their lifetimes: New starts them,
// Shutdown stops them in reverse order and waits for every goroutine.
package homeserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/parley-im/parley/accounts/password"
	"github.com/parley-im/parley/clientapi"
	"github.com/parley-im/parley/config"
	"github.com/parley-im/parley/connlimit"
	"github.com/parley-im/parley/desks"
	"github.com/parley-im/parley/envelopes"
	"github.com/parley-im/parley/federation/outbound"
	"github.com/parley-im/parley/graph"
	"github.com/parley-im/parley/inbox"
	"github.com/parley-im/parley/media"
	"github.com/parley-im/parley/observe"
	"github.com/parley-im/parley/push"
	"github.com/parley-im/parley/pushrules"
	"github.com/parley-im/parley/ratelimit"
	"github.com/parley-im/parley/relations"
	"github.com/parley-im/parley/rooms"
	"github.com/parley-im/parley/rooms/pdu"
	"github.com/parley-im/parley/storage"
	"github.com/parley-im/parley/todevice"
	"github.com/parley-im/parley/wallet"
)

// Server is a running homeserver.
type Server struct {
	// Static after New.
	cfg      config.Config
	log      *slog.Logger
	Store    *storage.Store
	Key      *pdu.SigningKey
	Rooms    *rooms.Service
	Notifier *inbox.Notifier
	Channels *inbox.ChannelFeed // the channel stream (channels.go)
	Hasher   *password.Hasher
	Desks    *desks.Service
	Graph    graph.Store
	ToDevice *todevice.Service
	Media    *media.Repo
	handler  http.Handler
	obs      *observability // metrics and request observation (observe.go)
	fedEDUs  *fedEDUsOut    // presence and device lists across servers; set by wireEDUs in New, static after
	commits  *commitFanout
	cancel   context.CancelFunc
	bg       sync.WaitGroup

	// Domain holds the services both APIs share (domain.go). Static
	// after New.
	Domain *Domain
	Fed    *Federation // nil when federation is off; see federation.go
	// Push stores pushers and delivers to push gateways (push.go).
	Push *push.Service

	mu      sync.Mutex
	http    *http.Server // guarded by mu
	fedHTTP *http.Server // guarded by mu
	closed  bool         // guarded by mu; set by Shutdown, so a late Serve returns at once

	outbound *outbound.Queue // guarded by mu; see StartOutbound

	// Wallet and Envelopes: the ledger and red envelopes (docs/envelopes.md).
	Wallet    *wallet.Service
	Envelopes *envelopes.Service
}

// New opens the store (migrating it), loads or creates the signing key and
// starts the background parts. It does not listen yet: see Serve.
func New(ctx context.Context, cfg config.Config, log *slog.Logger) (*Server, error) {
	if log == nil {
		log = slog.Default()
	}
	log = slog.New(observe.ContextHandler{Handler: log.Handler()}) // request IDs on request log lines
	store, err := storage.Open(ctx, cfg.DatabaseURL, cfg.SQLitePath())
	if err != nil {
		return nil, err
	}
	key, err := pdu.LoadOrCreateKey(filepath.Join(cfg.DataDir, "signing.key"), cfg.ServerName)
	if err != nil {
		store.Close()
		return nil, fmt.Errorf("signing key: %w", err)
	}
	fed, err := newFederation(ctx, cfg, store, key, log)
	if err != nil {
		store.Close()
		return nil, err
	}
	n, err := inbox.NewNotifier(ctx, store)
	if err != nil {
		store.Close()
		return nil, err
	}
	n.SetTiers(roomTiers(cfg.RoomTiers))
	// The graph opens before the room service: every invite, whatever its
	// route, asks the invite policy, which reads blocks and DM policies.
	rel, err := openGraph(ctx, cfg, store)
	if err != nil {
		store.Close()
		return nil, err
	}
	// Per-action limits (config rate_limit.message, join, invite_*,
	// create_room, media_upload) live in the packages that act; built
	// here so the sweeper below sees them (actionlimits.go).
	actions, mediaUploads, actionLimiters := actionLimits(cfg.RateLimit)
	commits := &commitFanout{first: n}
	fedOut := &fedRoomEDUs{server: cfg.ServerName} // its queue is set by wireFederation
	var receiptHook func(storage.Receipt)
	if fed != nil {
		receiptHook = fedOut.receipt
	}
	policy := clientapi.NewInvitePolicy(cfg.ServerName, store, rel)
	fedRem := &fedMembership{} // its joiner is set by wireFederation
	var remoteInv rooms.RemoteInviter
	if fed != nil {
		policy, remoteInv = policy.WithFederation(), fedRem
	}
	rs, err := rooms.New(ctx, rooms.Config{Actions: actions, ServerName: cfg.ServerName, Key: key, Store: store, Listener: commits, Logger: log,
		Policy: policy, Remote: remoteInv,
		MaxBatchEvents: cfg.Writer.BatchEvents, MaxQueue: cfg.Writer.Queue, MaxQueuePerUser: cfg.Writer.QueuePerUser,
		CacheBytes: cfg.Writer.CacheBytes, Limits: rooms.Limits{MaxInitialState: cfg.RoomLimits.MaxInitialState,
			MaxCreateInvites: cfg.RoomLimits.MaxCreateInvites, MaxStateEvents: cfg.RoomLimits.MaxStateEvents,
			MaxStateBytes: cfg.RoomLimits.MaxStateBytes},
		Tiers: roomTiers(cfg.RoomTiers), DefaultRoomVersion: cfg.DefaultRoomVersion, ReceiptHook: receiptHook})
	if err != nil {
		store.Close()
		return nil, err
	}
	repo, err := media.New(media.Config{Dir: filepath.Join(cfg.DataDir, "media"), ServerName: cfg.ServerName,
		MaxUploadBytes: cfg.Media.MaxUploadBytes, UploadLimiter: mediaUploads, UploadExempt: actions.Exempt, Logger: log, Thumbnails: media.ThumbnailLimits{
			MaxPixels: cfg.Media.ThumbnailMaxPixels, MaxDecodeBytes: cfg.Media.ThumbnailMaxDecodeBytes,
			MaxJPEGScans: cfg.Media.ThumbnailMaxJPEGScans, Concurrency: cfg.Media.ThumbnailConcurrency,
			MaxPending: cfg.Media.ThumbnailQueue}, QuotaBytes: cfg.Media.QuotaBytes, AdminContact: cfg.Media.AdminContact})
	if err != nil {
		store.Close()
		return nil, err
	}
	hasher := password.NewHasher(password.Params{MemoryKiB: cfg.Passwords.Argon2MemoryKiB, Time: cfg.Passwords.Argon2Time,
		Concurrency: cfg.Passwords.Concurrency, MaxWaiting: cfg.Passwords.MaxWaiting})
	// A user is offline once no device has synced for a full long-poll plus
	// a margin, so a client that long-polls for the maximum never flaps.
	idle := max(60*time.Second, time.Duration(cfg.Sync.MaxTimeoutMs)*time.Millisecond+30*time.Second)
	var contacts *graph.Contacts
	var presContacts inbox.Contacts // stays a nil interface without a graph
	if rel != nil {
		contacts = graph.NewContacts(rel, 5*time.Minute, 100_000)
		presContacts = contacts
	}
	edusOut := &fedEDUsOut{suffix: ":" + cfg.ServerName} // its senders are set by wireFederation (fededus_wire.go)
	pres := inbox.NewPresence(store, presenceHook{rs, edusOut}, presContacts, log, idle)
	pres.SetServerName(cfg.ServerName, 0)
	rels := relations.New(store, rs) // relations, threads and bundles: /relations, /threads, reads and sync
	epoch, err := store.Epoch(ctx)   // sync tokens carry it; restore renews it
	if err != nil {
		store.Close()
		return nil, err
	}
	chanSvc, chanFeed, err := newChannels(ctx, cfg, store, rel, n)
	if err != nil {
		store.Close()
		return nil, err
	}
	momSvc, momFeed := newMoments(cfg, store, rel, n) // moments.go
	syncer := inbox.NewSyncer(inbox.SyncerConfig{Store: store, Notifier: n, Presence: pres, Contacts: presContacts, Logger: log,
		DefaultTimelineLimit: cfg.Sync.DefaultTimelineLimit, Bundler: rels, Epoch: epoch, Channels: chanFeed, Moments: momFeed})

	dom := newDomain(cfg.ServerName, store, rs, deviceListHook{rs, edusOut}, log) // before desks: a desk rename is a profile change
	ds, err := desks.New(ctx, desks.Config{ServerName: cfg.ServerName, Store: store, Rooms: rs, Presence: pres, Profiles: dom.Profiles, Logger: log})
	if err != nil {
		store.Close()
		return nil, err
	}

	wal := wallet.New(store, cfg.Envelopes.Currency)
	envs := envelopes.New(envelopes.Config{Store: store, Rooms: rs, Wallet: wal, Logger: log,
		MaxTotal: cfg.Envelopes.MaxTotal, MaxCount: cfg.Envelopes.MaxCount, PerMinute: cfg.Envelopes.PerMinute,
		Expiry:        time.Duration(cfg.Envelopes.ExpirySeconds) * time.Second,
		SweepInterval: time.Duration(cfg.Envelopes.SweepIntervalMs) * time.Millisecond})

	var blocks todevice.Blocks // stays a nil interface without a graph
	if contacts != nil {
		blocks = contacts
	}
	var remoteTD todevice.Remote // stays a nil interface with federation off
	fedTD := &fedToDevice{}
	if fed != nil {
		remoteTD = fedTD
	}
	td := todevice.New(todevice.Config{ServerName: cfg.ServerName, Writer: rs, Devices: store, Blocks: blocks, Logger: log, Remote: remoteTD,
		MaxPerRequest: cfg.ToDevice.MaxMessagesPerRequest, Retention: time.Duration(cfg.ToDevice.RetentionHours) * time.Hour})

	apiCfg := clientapi.Config{
		ServerName: cfg.ServerName, PublicBaseURL: cfg.PublicBaseURL,
		RegistrationMode: cfg.Registration.Mode, RegistrationTokens: cfg.Registration.Tokens,
		MaxSyncTimeout: time.Duration(cfg.Sync.MaxTimeoutMs) * time.Millisecond,
		RateExempt:     cfg.RateLimit.Exempt,
	}
	apiCfg.MaxConcurrentFullSyncs = cfg.Sync.MaxConcurrentFullSyncs
	limiters := slices.Concat(actionLimiters, chanSvc.Limiters())
	if momSvc != nil {
		limiters = append(limiters, momSvc.Limiters()...)
	}
	if cfg.RateLimit.Enabled {
		apiCfg.DeviceLimiter = ratelimit.New(cfg.RateLimit.PerDevice.PerSecond, cfg.RateLimit.PerDevice.Burst)
		apiCfg.IPLimiter = ratelimit.New(cfg.RateLimit.PerIP.PerSecond, cfg.RateLimit.PerIP.Burst)
		limiters = append(limiters, apiCfg.DeviceLimiter, apiCfg.IPLimiter)
		apiCfg.FullSyncLimiter = ratelimit.New(cfg.Sync.FullSync.PerSecond, cfg.Sync.FullSync.Burst)
		limiters = append(limiters, apiCfg.FullSyncLimiter)
		apiCfg.FailedLoginLimiter = ratelimit.New(cfg.RateLimit.FailedLogin.PerSecond, cfg.RateLimit.FailedLogin.Burst)
		apiCfg.RegisterLimiter = ratelimit.New(cfg.RateLimit.Register.PerSecond, cfg.RateLimit.Register.Burst)
		limiters = append(limiters, apiCfg.FailedLoginLimiter, apiCfg.RegisterLimiter)
	}
	// One push-rule service for the client API and push delivery, so
	// both see an edit at once.
	rules := pushrules.New(store, rs, log, 0)
	pushSvc, err := startPush(ctx, cfg.Push, store, rules, log)
	if err != nil {
		rs.Shutdown(ctx)
		store.Close()
		return nil, err
	}
	commits.add(pushSvc)
	var remote clientapi.RemoteMembership // stays a nil interface with federation off
	var fedBF *fedBackfill                // fedbackfill.go; set by wireFederation
	var backfiller clientapi.Backfiller   // stays a nil interface with federation off
	if fed != nil {
		remote = fedRem
		fedBF = &fedBackfill{}
		backfiller = fedBF
	}
	obs := newObservability(cfg, store, log)
	api := clientapi.New(apiCfg, clientapi.Deps{Remote: remote, Backfill: backfiller, Store: store, Rooms: rs, Notifier: n, Syncer: syncer,
		Presence: pres, Media: repo, Hasher: hasher, Logger: log, Graph: rel, Contacts: contacts, Desks: ds,
		Channels: chanSvc, Moments: momSvc,
		ToDevice: td, Profiles: dom.Profiles, Devices: dom.Devices, Keys: dom.Keys, Directory: dom.Directory,
		Relations: rels, Metrics: obs.reg, PushRules: rules, Push: pushSvc, Wallet: wal, Envelopes: envs})

	bgCtx, cancel := context.WithCancel(context.Background())
	s := &Server{Fed: fed, cfg: cfg, log: log, Store: store, Key: key, Rooms: rs, Notifier: n, Channels: chanFeed, Hasher: hasher, Graph: rel,
		Desks: ds, ToDevice: td, Media: repo, Push: pushSvc, handler: withWellKnownServer(api.Handler(), cfg.Federation.WellKnownServer), obs: obs, commits: commits, cancel: cancel}
	s.Domain = dom
	s.Wallet, s.Envelopes = wal, envs
	if err := s.wireFederation(ctx, fedDeps{notifier: n, rooms: rs, toDevice: td, remoteToDevice: fedTD, roomEDUs: fedOut, media: repo, remote: fedRem, backfill: fedBF,
		presence: pres, edus: edusOut, bg: bgCtx}); err != nil {
		cancel()
		pushSvc.Shutdown(ctx)
		rs.Shutdown(ctx)
		store.Close()
		return nil, err
	}
	if fed != nil && fed.Inbound != nil { // inbound federation's figures join the metrics
		obs.reg.MustRegister(fed.Inbound.Collector())
	}
	s.goBackground(func() { n.RunTypingExpiry(bgCtx) })
	s.goBackground(func() { pres.Run(bgCtx) })
	s.goBackground(func() { sweepLimiters(bgCtx, limiters) })
	s.goBackground(func() { ds.Run(bgCtx) })
	s.goBackground(func() { td.Run(bgCtx) })
	s.goBackground(func() { envs.Run(bgCtx) })
	s.goBackground(func() { chanSvc.RunDeletions(bgCtx, log) })
	return s, nil
}

func (s *Server) goBackground(f func()) {
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		f()
	}()
}

func sweepLimiters(ctx context.Context, ls []*ratelimit.Limiter) {
	tick := time.NewTicker(time.Minute)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			for _, l := range ls {
				l.Sweep(now)
			}
		}
	}
}

// Handler is the server's HTTP handler.
func (s *Server) Handler() http.Handler { return s.handler }

// Serve answers HTTP on ln until Shutdown. It returns nil after a clean stop.
func (s *Server) Serve(ln net.Listener) error {
	// A body read waits at most BodyIdleTimeoutMs for the next bytes
	// (withBodyIdleTimeout), so a client that trickles its body frees the
	// connection quickly; ReadTimeout, the same, bounds a body the handler
	// never reads, which the server drains after answering. Each client
	// address holds at most MaxConnsPerAddress connections (connlimit).
	// There is no WriteTimeout: long-polls answer late.
	idle := time.Duration(s.cfg.HTTP.BodyIdleTimeoutMs) * time.Millisecond
	if idle <= 0 {
		idle = 30 * time.Second // the documented default, for a Config not filled by config.Load
	}
	// Outside the router: the health probes, then request metrics and IDs.
	handler := withBodyIdleTimeout(observe.Health(s.Store, s.Rooms, s.obs.http.Wrap(s.handler)), idle)
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: idle, IdleTimeout: 120 * time.Second}
	ln = connlimit.New(ln, s.cfg.HTTP.MaxConnsPerAddress, s.cfg.HTTP.LimitLoopback)
	s.mu.Lock()
	if s.closed { // Shutdown ran before Serve: nothing would ever stop srv
		s.mu.Unlock()
		return ln.Close()
	}
	s.http = srv
	s.mu.Unlock()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Shutdown stops accepting requests, lets in-flight ones finish (long-polls
// are cut when ctx ends), stops the writer after its queue drains, and
// closes the store.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	srv := s.http
	s.closed = true
	s.mu.Unlock()
	var errs []error
	s.Notifier.Stop() // answer held long-polls now rather than at their timeout
	if srv != nil {
		if err := srv.Shutdown(ctx); err != nil {
			errs = append(errs, err)
			srv.Close()
		}
	}
	if err := s.shutdownFederation(ctx); err != nil {
		errs = append(errs, err)
	}
	s.cancel()
	s.bg.Wait()
	if q := s.Outbound(); q != nil {
		if err := q.Shutdown(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	if err := s.Push.Shutdown(ctx); err != nil {
		errs = append(errs, err)
	}
	if err := s.Rooms.Shutdown(ctx); err != nil {
		errs = append(errs, err)
	}
	if err := s.Graph.Close(ctx); err != nil {
		errs = append(errs, err)
	}
	if err := s.Store.Close(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
