package homeserver_test

import (
	"bytes"
	"fmt"
	"image"
	"image/png"
	"strings"
	"testing"

	"github.com/parley-im/parley/config"
	"github.com/parley-im/parley/homeserver/hstest"
)

// mediaUpload stores data through the real upload route and returns the
// media ID of its mxc:// URI.
func mediaUpload(t *testing.T, c *hstest.Client, data string) (mxc, id string) {
	t.Helper()
	res := c.MustDo("POST", "/_matrix/media/v3/upload?filename=f.bin", []byte(data))
	mxc = res.Get("content_uri").String()
	return mxc, mxc[strings.LastIndexByte(mxc, '/')+1:]
}

func mediaStatus(c *hstest.Client, legacy bool, id string) int {
	path := "/_matrix/client/v1/media/download/localhost/" + id
	if legacy {
		path = "/_matrix/media/v3/download/localhost/" + id
	}
	st, _ := c.Do("GET", path, nil)
	return st
}

// Media that only an edit carries (m.new_content, or an edit's own
// top-level fields) in a private room is private like the edited message:
// neither a stranger nor the unauthenticated legacy route gets it.
func TestMediaInEditsIsPrivate(t *testing.T) {
	for _, store := range hstest.Stores(t) {
		t.Run(store.Name, func(t *testing.T) {
			srv := hstest.Start(t, hstest.Options{Store: store})
			alice := srv.Register(t, "alice")
			bob := srv.Register(t, "bob")
			carol := srv.Register(t, "carol")
			anon := srv.Anon(t)
			room := alice.CreateRoom(map[string]any{"preset": "private_chat", "invite": []string{bob.UserID}})
			bob.Join(room)
			orig := alice.Send(room, "orig", "a message to edit")

			tests := []struct {
				name    string
				content func(mxc string) map[string]any
			}{
				{"m.new_content.url", func(mxc string) map[string]any {
					return map[string]any{"url": nil, "m.new_content": map[string]any{"msgtype": "m.image", "body": "p", "url": mxc}}
				}},
				{"m.new_content.info.thumbnail_url", func(mxc string) map[string]any {
					return map[string]any{"m.new_content": map[string]any{"msgtype": "m.text", "body": "p", "info": map[string]any{"thumbnail_url": mxc}}}
				}},
				{"m.new_content.file.url", func(mxc string) map[string]any {
					return map[string]any{"m.new_content": map[string]any{"msgtype": "m.file", "body": "p", "file": map[string]any{"url": mxc}}}
				}},
				{"m.new_content.info.thumbnail_file.url", func(mxc string) map[string]any {
					return map[string]any{"m.new_content": map[string]any{"msgtype": "m.image", "body": "p", "info": map[string]any{"thumbnail_file": map[string]any{"url": mxc}}}}
				}},
				{"outer file.url of an edit", func(mxc string) map[string]any {
					return map[string]any{"file": map[string]any{"url": mxc}, "m.new_content": map[string]any{"msgtype": "m.text", "body": "p"}}
				}},
			}
			for i, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					mxc, id := mediaUpload(t, alice, fmt.Sprintf("secret bytes %d", i))
					content := tt.content(mxc)
					delete(content, "url")
					content["msgtype"] = "m.text"
					content["body"] = "* edited"
					content["m.relates_to"] = map[string]any{"rel_type": "m.replace", "event_id": orig}
					alice.MustDo("PUT", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/send/m.room.message/edit"+fmt.Sprint(i), content)

					for _, c := range []struct {
						who    string
						client *hstest.Client
						legacy bool
						want   int
					}{
						{"anonymous legacy route", anon, true, 404},
						{"stranger", carol, false, 404},
						{"stranger on the legacy route", carol, true, 404},
						{"member", bob, false, 200},
						{"uploader", alice, false, 200},
					} {
						if got := mediaStatus(c.client, c.legacy, id); got != c.want {
							t.Errorf("%s: download = %d, want %d", c.who, got, c.want)
						}
					}
				})
			}
		})
	}
}

// Leaving a room keeps access to the media of the history one could see;
// forgetting it gives that up, as it does for /messages.
func TestMediaOfForgottenRoom(t *testing.T) {
	for _, store := range hstest.Stores(t) {
		t.Run(store.Name, func(t *testing.T) {
			srv := hstest.Start(t, hstest.Options{Store: store})
			alice := srv.Register(t, "alice")
			bob := srv.Register(t, "bob")
			room := alice.CreateRoom(map[string]any{"preset": "private_chat", "invite": []string{bob.UserID}})
			bob.Join(room)
			mxc, id := mediaUpload(t, alice, "holiday photo")
			alice.MustDo("PUT", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/send/m.room.message/img",
				map[string]any{"msgtype": "m.file", "body": "f.bin", "url": mxc})

			steps := []struct {
				name string
				do   func()
				want int
			}{
				{"joined", func() {}, 200},
				{"left", func() { bob.MustDo("POST", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/leave", map[string]any{}) }, 200},
				{"left and forgot", func() { bob.MustDo("POST", "/_matrix/client/v3/rooms/"+hstest.Esc(room)+"/forget", map[string]any{}) }, 404},
			}
			for _, s := range steps {
				s.do()
				if got := mediaStatus(bob, false, id); got != s.want {
					t.Errorf("%s: bob's download = %d, want %d", s.name, got, s.want)
				}
			}
			if got := mediaStatus(alice, false, id); got != 200 {
				t.Errorf("uploader's download = %d, want 200", got)
			}
		})
	}
}

// The media.thumbnail_* keys reach the media repository: with a pixel cap
// of 100, a 20x20 image gets no thumbnail (413) but still downloads.
func TestThumbnailLimitsFromConfig(t *testing.T) {
	srv := hstest.Start(t, hstest.Options{Mutate: func(c *config.Config) { c.Media.ThumbnailMaxPixels = 100 }})
	alice := srv.Register(t, "alice")
	img := image.NewRGBA(image.Rect(0, 0, 20, 20))
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	_, id := mediaUpload(t, alice, buf.String())
	st, res := alice.Do("GET", "/_matrix/client/v1/media/thumbnail/localhost/"+id+"?width=32&height=32&method=crop", nil)
	if st != 413 || res.Get("errcode").String() != "M_TOO_LARGE" {
		t.Errorf("thumbnail over the configured pixel cap = %d %s, want 413 M_TOO_LARGE", st, res.Raw)
	}
	if got := mediaStatus(alice, false, id); got != 200 {
		t.Errorf("download = %d, want 200", got)
	}
}
