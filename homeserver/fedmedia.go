package homeserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/federation"

	"github.com/parley-im/parley/apierr"
	"github.com/parley-im/parley/media"
	"github.com/parley-im/parley/storage"
)

var _ media.Remote = fedRemote{}

// Download implements media.Remote with GET federation/v1/media/download.
// The answer must be multipart/mixed with the bytes inline: a Location
// redirect is refused, since following it would leave the guarded client.
// mautrix-go's Client.DownloadMedia is not used: it returns no error when
// the request fails (see docs/federation.md).
func (f fedRemote) Download(ctx context.Context, server, mediaID string) (string, string, io.ReadCloser, error) {
	_, resp, err := f.c.Client.MakeFullRequest(ctx, federation.RequestParams{ServerName: server, Method: http.MethodGet,
		Path: federation.URLPath{"v1", "media", "download", mediaID}, Authenticate: true, DontReadBody: true})
	if errors.Is(err, mautrix.MNotFound) {
		return "", "", nil, fmt.Errorf("%w: %s/%s", media.ErrRemoteNotFound, server, mediaID)
	}
	if err != nil {
		return "", "", nil, err
	}
	ok := false
	defer func() {
		if !ok {
			resp.Body.Close()
		}
	}()
	ct, name, part, err := media.ParseFederationMedia(resp.Header.Get("Content-Type"), resp.Body)
	if err != nil {
		return "", "", nil, fmt.Errorf("media %s/%s: %w", server, mediaID, err)
	}
	ok = true
	return ct, name, readCloser{part, resp.Body}, nil
}

// readCloser reads the part and closes the response body.
type readCloser struct {
	io.Reader
	c io.Closer
}

func (r readCloser) Close() error { return r.c.Close() }

// mediaRefs is what serverMediaAccess reads (*storage.Store).
type mediaRefs interface {
	MediaRefs(ctx context.Context, mediaID string) ([]storage.MediaRef, error)
	ServerInRoom(ctx context.Context, roomID, server string) (bool, error)
}

// serverMediaAccess is media.ServerAccess: another server may fetch media
// that no message carries (avatars, fresh uploads), and media carried in a
// room where it has a joined user. This mirrors the client API's rule
// (clientapi/media_access.go) for a server: media posted in a room goes
// only where the room goes. A refusal looks like a missing item.
func serverMediaAccess(store mediaRefs) media.ServerAccess {
	return func(ctx context.Context, server, mediaID, _ string) error {
		refs, err := store.MediaRefs(ctx, mediaID)
		if err != nil {
			return err
		}
		if len(refs) == 0 {
			return nil
		}
		for _, ref := range refs {
			in, err := store.ServerInRoom(ctx, ref.RoomID, server)
			if err != nil {
				return err
			}
			if in {
				return nil
			}
		}
		return apierr.NotFound("Media not found")
	}
}
