package synapse_test

import (
	"bytes"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/parley-im/parley/homeserver/hstest"
)

// TestSynapseTypingAndReceipts: in a room both servers are in, typing and
// read receipts go both ways as EDUs and show in the other side's /sync.
func TestSynapseTypingAndReceipts(t *testing.T) {
	syn := needSynapse(t)
	p := startParley(t, hstestSQLite)
	alice := p.Register(t, "alice")
	bob := syn.Register(t, uniq("bob"))
	room := alice.CreateRoom(map[string]any{"preset": "public_chat"})
	if st, res := joinVia(bob, room, p.FedName); st != 200 {
		t.Fatalf("Synapse join = %d %s", st, res.Raw)
	}
	waitMembership(t, alice, room, bob.UserID, "join")

	for _, d := range []struct {
		name     string
		from, to *hstest.Client
	}{
		{"Parley to Synapse", alice, bob},
		{"Synapse to Parley", bob, alice},
	} {
		t.Run(d.name, func(t *testing.T) {
			from, to := d.from.WithT(t), d.to.WithT(t)
			roomPath := "/_matrix/client/v3/rooms/" + hstest.Esc(room)
			from.MustDo("PUT", roomPath+"/typing/"+hstest.Esc(from.UserID), map[string]any{"typing": true, "timeout": 30000})
			syncUntil(t, to, "", to.UserID+" sees "+from.UserID+" typing", func(s gjson.Result) bool {
				for _, ev := range hstest.Room(s, "join", room).Get("ephemeral.events").Array() {
					if ev.Get("type").String() == "m.typing" {
						for _, u := range ev.Get("content.user_ids").Array() {
							if u.String() == from.UserID {
								return true
							}
						}
					}
				}
				return false
			})

			body := uniq("read me")
			ev := to.Send(room, body, body)
			hstest.Eventually(t, from.UserID+" sees "+body, func() bool { return sees(from, room, body) })
			from.MustDo("POST", roomPath+"/receipt/m.read/"+hstest.Esc(ev), map[string]any{})
			syncUntil(t, to, "", to.UserID+" sees "+from.UserID+"'s receipt", func(s gjson.Result) bool {
				for _, e := range hstest.Room(s, "join", room).Get("ephemeral.events").Array() {
					if e.Get("type").String() == "m.receipt" &&
						e.Get("content."+gjEsc(ev)+".m\\.read."+gjEsc(from.UserID)).Exists() {
						return true
					}
				}
				return false
			})
		})
	}
}

// TestSynapseRemoteData: each side's client API serves the other server's
// users and media: a profile through query/profile, and an upload through
// the authenticated media download (federation media/download).
func TestSynapseRemoteData(t *testing.T) {
	syn := needSynapse(t)
	p := startParley(t, hstestSQLite)
	alice := p.Register(t, "alice")
	bob := syn.Register(t, uniq("bob"))
	for _, c := range []*hstest.Client{alice, bob} {
		c.MustDo("PUT", "/_matrix/client/v3/profile/"+hstest.Esc(c.UserID)+"/displayname", map[string]any{"displayname": "name of " + c.UserID})
	}
	for _, d := range []struct {
		name        string
		asker, them *hstest.Client
		themServer  string
	}{
		{"Parley asks Synapse", alice, bob, syn.Name},
		{"Synapse asks Parley", bob, alice, p.FedName},
	} {
		t.Run(d.name, func(t *testing.T) {
			asker, them := d.asker.WithT(t), d.them.WithT(t)
			res := asker.MustDo("GET", "/_matrix/client/v3/profile/"+hstest.Esc(them.UserID), nil)
			if got, want := res.Get("displayname").String(), "name of "+them.UserID; got != want {
				t.Errorf("profile of %s = %s, want displayname %q", them.UserID, res.Raw, want)
			}

			content := []byte("media from " + them.UserID + " " + uniq("x"))
			mxc := upload(t, them, content)
			server, mediaID := splitMXC(t, mxc)
			if server != d.themServer {
				t.Fatalf("%s is on %s, want %s", mxc, server, d.themServer)
			}
			got := download(t, asker, server, mediaID)
			if !bytes.Equal(got, content) {
				t.Errorf("%s downloads %s = %q, want %q", asker.UserID, mxc, got, content)
			}
		})
	}
}

// upload stores content in c's server's media repository; it returns the
// content URI.
func upload(t *testing.T, c *hstest.Client, content []byte) string {
	t.Helper()
	req, _ := http.NewRequest("POST", c.Base+"/_matrix/media/v3/upload?filename=x.txt", bytes.NewReader(content))
	req.Header.Set("Authorization", "Bearer "+c.Token)
	req.Header.Set("Content-Type", "text/plain")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 {
		t.Fatalf("upload to %s = %d %s", c.Base, res.StatusCode, raw)
	}
	return gjson.GetBytes(raw, "content_uri").String()
}

// download fetches media through c's server's authenticated route.
func download(t *testing.T, c *hstest.Client, server, mediaID string) []byte {
	t.Helper()
	req, _ := http.NewRequest("GET", c.Base+"/_matrix/client/v1/media/download/"+hstest.Esc(server)+"/"+hstest.Esc(mediaID), nil)
	req.Header.Set("Authorization", "Bearer "+c.Token)
	res, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 {
		t.Fatalf("download %s/%s from %s = %d %s", server, mediaID, c.Base, res.StatusCode, raw)
	}
	return raw
}

func splitMXC(t *testing.T, mxc string) (server, mediaID string) {
	t.Helper()
	const prefix = "mxc://"
	if len(mxc) <= len(prefix) || mxc[:len(prefix)] != prefix {
		t.Fatalf("content URI %q", mxc)
	}
	rest := mxc[len(prefix):]
	for i := len(rest) - 1; i >= 0; i-- {
		if rest[i] == '/' {
			return rest[:i], rest[i+1:]
		}
	}
	t.Fatalf("content URI %q", mxc)
	return "", ""
}
