// Package media owns Parley's media repository: it accepts uploads, stores
// their bytes content-addressed on the local disk next to a small JSON
// metadata record per media ID, and serves downloads and image thumbnails over
// the Matrix content repository API (authenticated /_matrix/client/v1/media/*
// and the deprecated /_matrix/media/{v3,r0}/*).
//
// It must not: decide who may see media beyond the Authenticate hook it is
// given (rooms, events and access rules belong to the client API); fetch
// media from other homeservers other than through the Remote it is given
// (SetRemote); write error bodies by hand (every error goes through
// apierr); or handle CORS, which the caller wraps around the router.
package media

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"

	"github.com/go-chi/chi/v5"
	"github.com/parley-im/parley/apierr"
	"github.com/parley-im/parley/ratelimit"
)

// defaultMaxUpload applies when Config.MaxUploadBytes is zero.
const defaultMaxUpload int64 = 50 << 20

// Config says where and how the repository stores media.
type Config struct {
	// Dir is the root for everything the repository writes. File bytes live
	// at <Dir>/content/<sha[0:2]>/<sha[2:4]>/<sha256hex> so identical uploads
	// share one file; metadata lives at <Dir>/meta/<mediaID>.json.
	Dir string
	// ServerName is this homeserver's name: the authority of the mxc:// URIs
	// it hands out, and the only server whose media it serves.
	ServerName string
	// MaxUploadBytes caps one upload; zero means 50 MiB.
	MaxUploadBytes int64
	// UploadLimiter limits each user's uploads, checked where every upload
	// passes (upload.go) before a byte is stored; nil means unlimited.
	// UploadExempt users are never limited.
	UploadLimiter *ratelimit.Limiter
	UploadExempt  map[string]bool
	// Thumbnails bounds thumbnail generation (see ThumbnailLimits).
	Thumbnails ThumbnailLimits
	// Logger receives internal faults, which clients only see as a bare
	// 500 M_UNKNOWN. Nil means slog.Default().
	Logger *slog.Logger
}

// Repo is the media repository. It is safe for concurrent use.
type Repo struct {
	store      *store
	serverName string
	maxUpload  int64
	log        *slog.Logger
	// thumbLimits are the thumbnail limits with defaults filled in.
	thumbLimits ThumbnailLimits
	// decodes runs thumbnail generations; it has its own lock.
	decodes *decodeQueue
	// access is set once by Mount, before any request is served.
	access Access

	// uploads and exempt are Config.UploadLimiter and UploadExempt.
	uploads *ratelimit.Limiter
	exempt  map[string]bool

	// remote and fetches are set once by SetRemote (remote.go), before
	// Mount; nil without federation.
	remote  Remote
	fetches *remoteFetches
	// serverAccess is set once by MountFederation (federation.go).
	serverAccess ServerAccess
}

// Authenticate is supplied by the client API: it checks the access token and
// returns the user ID, or an *apierr.Error (M_MISSING_TOKEN/M_UNKNOWN_TOKEN).
type Authenticate func(r *http.Request) (userID string, err error)

// Access is supplied by the client API: it decides whether userID ("" on the
// unauthenticated legacy routes) may fetch a media item uploaded by
// uploader, and returns an *apierr.Error (404, so that existence does not
// leak) when not. Nil allows everyone.
type Access func(ctx context.Context, userID, mediaID, uploader string) error

// New opens (creating if needed) the repository rooted at cfg.Dir.
func New(cfg Config) (*Repo, error) {
	if cfg.Dir == "" {
		return nil, errors.New("media: Config.Dir is empty")
	}
	if cfg.ServerName == "" {
		return nil, errors.New("media: Config.ServerName is empty")
	}
	if cfg.MaxUploadBytes < 0 {
		return nil, fmt.Errorf("media: Config.MaxUploadBytes is negative (%d)", cfg.MaxUploadBytes)
	}
	if err := cfg.Thumbnails.validate(); err != nil {
		return nil, err
	}
	limit := cfg.MaxUploadBytes
	if limit == 0 {
		limit = defaultMaxUpload
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.Default()
	}
	root, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("media: resolving %q: %w", cfg.Dir, err)
	}
	st := &store{root: root}
	for _, d := range []string{st.contentRoot(), st.metaRoot(), st.tmpRoot(), st.thumbRoot()} {
		if err := os.MkdirAll(d, 0o750); err != nil {
			return nil, fmt.Errorf("media: creating %s: %w", d, err)
		}
	}
	removed, err := st.removePartials()
	if err != nil {
		return nil, fmt.Errorf("media: %w", err)
	}
	if removed > 0 {
		logger.Info("media: removed partial files left by an earlier run", "count", removed)
	}
	repo := &Repo{
		store:      st,
		serverName: cfg.ServerName,
		maxUpload:  limit,
		log:        logger,
		uploads:    cfg.UploadLimiter,
		exempt:     cfg.UploadExempt,
	}
	repo.thumbLimits = cfg.Thumbnails.withDefaults()
	repo.decodes = newDecodeQueue(repo.thumbLimits.Concurrency, repo.thumbLimits.MaxPending, repo.thumbLimits.Deadline)
	return repo, nil
}

// Mount registers the media routes on r. Routes are registered with their
// full paths (no sub-router) so the caller can mount other /_matrix/client/v1
// handlers on the same router without chi prefix conflicts.
func (m *Repo) Mount(r chi.Router, auth Authenticate, access Access) {
	m.access = access
	authed := func(h authedHandler) http.HandlerFunc { return m.withAuth(auth, h) }
	open := func(h authedHandler) http.HandlerFunc {
		return withMediaHeaders(func(w http.ResponseWriter, r *http.Request) { h(w, r, "") })
	}

	for _, v := range []string{"v3", "r0"} {
		r.Post("/_matrix/media/"+v+"/upload", authed(m.handleUpload))
		// Deprecated since v1.11 and still served without a token. The spec
		// suggests "freezing" them for media uploaded after some date; that
		// would need a cut-off in Config and is not done yet.
		r.Get("/_matrix/media/"+v+"/download/{serverName}/{mediaId}", open(m.handleDownload))
		r.Get("/_matrix/media/"+v+"/download/{serverName}/{mediaId}/{fileName}", open(m.handleDownload))
		r.Get("/_matrix/media/"+v+"/thumbnail/{serverName}/{mediaId}", open(m.handleThumbnail))
	}
	r.Get("/_matrix/media/v3/config", authed(m.handleConfig))
	r.Get("/_matrix/client/v1/media/config", authed(m.handleConfig))
	r.Get("/_matrix/client/v1/media/download/{serverName}/{mediaId}", authed(m.handleDownload))
	r.Get("/_matrix/client/v1/media/download/{serverName}/{mediaId}/{fileName}", authed(m.handleDownload))
	r.Get("/_matrix/client/v1/media/thumbnail/{serverName}/{mediaId}", authed(m.handleThumbnail))
}

// authedHandler is a handler that runs only after Authenticate succeeded.
type authedHandler func(w http.ResponseWriter, r *http.Request, userID string)

// withAuth runs auth first so that an unauthenticated caller learns nothing,
// not even whether a media ID exists.
func (m *Repo) withAuth(auth Authenticate, h authedHandler) http.HandlerFunc {
	return withMediaHeaders(func(w http.ResponseWriter, r *http.Request) {
		userID, err := auth(r)
		if err != nil {
			m.fail(w, r, err)
			return
		}
		h(w, r, userID)
	})
}

// handleConfig answers GET .../media/config.
func (m *Repo) handleConfig(w http.ResponseWriter, _ *http.Request, _ string) {
	apierr.WriteJSON(w, http.StatusOK, map[string]int64{"m.upload.size": m.maxUpload})
}

// fail writes err as a Matrix error. Errors that carry no *apierr.Error are
// internal faults: the client gets a bare 500 and the detail goes to the log.
func (m *Repo) fail(w http.ResponseWriter, r *http.Request, err error) {
	var ae *apierr.Error
	if !errors.As(err, &ae) && r.Context().Err() == nil {
		m.log.ErrorContext(r.Context(), "media request failed",
			"method", r.Method, "path", r.URL.Path, "err", err)
	}
	apierr.Write(w, err)
}
