package media

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/parley-im/parley/apierr"
	"github.com/parley-im/parley/rooms/pdu"
)

// validServerName guards the server part of a remote item's URL.
func validServerName(s string) bool { return pdu.ValidServerName(s) }

// Remote fetches another server's media (federation's media/download).
// A missing item wraps ErrRemoteNotFound; any other error means the server
// could not give it. The caller closes body.
type Remote interface {
	Download(ctx context.Context, server, mediaID string) (contentType, fileName string, body io.ReadCloser, err error)
}

// ErrRemoteNotFound: the other server says it has no such media.
var ErrRemoteNotFound = errors.New("remote media not found")

// remoteFetches guards the fetches in flight, so that many clients asking
// for the same remote item at once cause one download. Its map is guarded
// by mu.
type remoteFetches struct {
	mu       sync.Mutex
	inFlight map[string]*fetchCall // guarded by mu; key: server "/" mediaID
}

// fetchCall is one download in flight; md and err are set before done is
// closed and read only after.
type fetchCall struct {
	done chan struct{}
	md   *metadata
	err  error
}

// SetRemote lets the authenticated download and thumbnail routes serve
// other servers' media: fetched once through r, stored in the repository
// (content-addressed, like uploads) and served from there after. Call it
// before serving; without it other servers' media is not found.
func (m *Repo) SetRemote(r Remote) {
	m.remote = r
	m.fetches = &remoteFetches{inFlight: map[string]*fetchCall{}}
}

// remoteRoot holds the records of fetched remote media, apart from local
// ones so that no local media ID can name a remote record.
func (s *store) remoteRoot() string { return filepath.Join(s.root, "remote") }

// remoteMetaPath names a remote item's record by a hash of server and ID:
// server names and IDs together can be longer than a file name may be.
func (s *store) remoteMetaPath(server, mediaID string) string {
	h := sha256.Sum256([]byte(server + "/" + mediaID))
	return filepath.Join(s.remoteRoot(), hex.EncodeToString(h[:])+".json")
}

// readRemoteMeta loads a fetched item's record; errNoMedia when there is
// none.
func (s *store) readRemoteMeta(server, mediaID string) (*metadata, error) {
	raw, err := os.ReadFile(s.remoteMetaPath(server, mediaID))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, errNoMedia
	}
	if err != nil {
		return nil, fmt.Errorf("reading record of remote media %s/%s: %w", server, mediaID, err)
	}
	var md metadata
	if err := json.Unmarshal(raw, &md); err != nil {
		return nil, fmt.Errorf("decoding record of remote media %s/%s: %w", server, mediaID, err)
	}
	if !validSHA256(md.SHA256) || md.Origin != server || md.MediaID != mediaID {
		return nil, fmt.Errorf("record of remote media %s/%s is corrupt", server, mediaID)
	}
	return &md, nil
}

// remoteLookup returns the record of another server's item, fetching it
// first when it is not held. Only signed-in users get remote media: the
// legacy unauthenticated routes (userID "") do not make this server fetch.
func (m *Repo) remoteLookup(ctx context.Context, userID, server, mediaID string) (*metadata, error) {
	if m.remote == nil || userID == "" {
		return nil, apierr.NotFound("Media not found")
	}
	md, err := m.store.readRemoteMeta(server, mediaID)
	if !errors.Is(err, errNoMedia) {
		return md, err
	}
	key := server + "/" + mediaID
	f := m.fetches
	f.mu.Lock()
	call, running := f.inFlight[key]
	if !running {
		call = &fetchCall{done: make(chan struct{})}
		f.inFlight[key] = call
	}
	f.mu.Unlock()
	if !running {
		call.md, call.err = m.fetchRemote(ctx, server, mediaID)
		f.mu.Lock()
		delete(f.inFlight, key)
		f.mu.Unlock()
		close(call.done)
	}
	select {
	case <-call.done:
		return call.md, call.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// fetchRemote downloads an item, stores its bytes (at most the upload
// limit) and then its record, so a record never points at missing bytes.
func (m *Repo) fetchRemote(ctx context.Context, server, mediaID string) (*metadata, error) {
	contentType, name, body, err := m.remote.Download(ctx, server, mediaID)
	if errors.Is(err, ErrRemoteNotFound) {
		return nil, apierr.NotFound("Media not found")
	}
	if err != nil {
		return nil, apierr.New(502, "M_UNKNOWN", "Could not fetch the media from "+server)
	}
	defer body.Close()
	sha, size, err := m.store.putContent(ctx, body, m.maxUpload)
	if errors.Is(err, errTooLarge) {
		return nil, apierr.New(502, "M_TOO_LARGE", "The remote media is larger than this server takes")
	}
	if err != nil {
		if ctx.Err() == nil {
			m.log.WarnContext(ctx, "media: fetching remote media", "server", server, "media_id", mediaID, "err", err)
		}
		return nil, apierr.New(502, "M_UNKNOWN", "Could not fetch the media from "+server)
	}
	md := &metadata{MediaID: mediaID, Origin: server, SHA256: sha, ContentType: sanitizeContentType(contentType),
		UploadName: name, Size: size, CreatedTS: time.Now().UnixMilli()}
	raw, err := json.Marshal(md)
	if err != nil {
		return nil, err
	}
	if err := writeFileAtomic(m.store.remoteMetaPath(server, mediaID), raw, true); err != nil {
		return nil, err
	}
	return md, nil
}
