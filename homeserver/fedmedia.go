package homeserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strings"

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
	part, err := contentPart(resp)
	if err != nil {
		return "", "", nil, fmt.Errorf("media %s/%s: %w", server, mediaID, err)
	}
	name := ""
	if _, params, err := mime.ParseMediaType(part.Header.Get("Content-Disposition")); err == nil {
		name = params["filename"]
	}
	ok = true
	return part.Header.Get("Content-Type"), name, readCloser{part, resp.Body}, nil
}

// maxMediaMetadata bounds the JSON metadata part.
const maxMediaMetadata = 64 << 10

// contentPart reads a multipart/mixed federation media answer up to its
// content part.
func contentPart(resp *http.Response) (*multipart.Part, error) {
	mt, params, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/mixed" || params["boundary"] == "" {
		return nil, fmt.Errorf("answer is not multipart/mixed (%q)", resp.Header.Get("Content-Type"))
	}
	mr := multipart.NewReader(resp.Body, params["boundary"])
	meta, err := mr.NextPart()
	if err != nil {
		return nil, fmt.Errorf("metadata part: %w", err)
	}
	if !strings.HasPrefix(meta.Header.Get("Content-Type"), "application/json") {
		return nil, fmt.Errorf("metadata part is %q, not JSON", meta.Header.Get("Content-Type"))
	}
	if n, _ := io.Copy(io.Discard, io.LimitReader(meta, maxMediaMetadata+1)); n > maxMediaMetadata {
		return nil, errors.New("metadata part too large")
	}
	part, err := mr.NextPart()
	if err != nil {
		return nil, fmt.Errorf("content part: %w", err)
	}
	if part.Header.Get("Location") != "" {
		return nil, errors.New("redirects to another location are not followed")
	}
	return part, nil
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
