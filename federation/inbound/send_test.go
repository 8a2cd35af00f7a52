package inbound_test

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/parley-im/parley/federation/inbound"
	checks "github.com/parley-im/parley/rooms/inbound"
	"github.com/parley-im/parley/rooms/inbound/remotetest"
	"github.com/parley-im/parley/rooms/pdu"
)

// TestSendPerPDUResults: a transaction of good and bad PDUs is answered
// 200 with a result per PDU; the bad ones fail alone.
func TestSendPerPDUResults(t *testing.T) {
	e := newEnv(t, nil)
	tr := e.newRoom()
	good := tr.fork.SendMessage(bob, "hello")

	// A PDU with the (optional, pre-v11 style) top-level "origin" key.
	withOrigin := remote.Forge(t, "11", map[string]any{
		"type": "m.room.message", "room_id": tr.room.ID, "sender": bob, "origin": remote.Name,
		"content": map[string]any{"msgtype": "m.text", "body": "with origin"}, "depth": good.Depth + 1,
		"prev_events": []string{good.ID}, "auth_events": tr.fork.Build(pdu.Proto{Sender: bob, Type: "m.room.message", Content: json.RawMessage(`{}`)}).AuthEvents,
		"origin_server_ts": 1_800_000_000_000,
	})
	originEv, err := pdu.Parse(withOrigin, "11")
	if err != nil {
		t.Fatalf("Parse(forged with origin) = %v", err)
	}
	tr.fork.Apply(originEv)

	// Signed with a key that is not remote's: dropped at check 2.
	seed := make([]byte, ed25519.SeedSize)
	stranger := &remotetest.Server{Name: remote.Name, Key: &pdu.SigningKey{ServerName: remote.Name, KeyID: remote.Key.KeyID, Private: ed25519.NewKeyFromSeed(seed)}}
	forgedRoom := remotetest.NewRoom(t, "11", stranger)
	forgedRoom.ID = tr.room.ID
	badSig := (&remotetest.Fork{Room: forgedRoom, State: tr.fork.State, Prev: tr.fork.Prev, Depth: tr.fork.Depth}).BuildMessage(bob, "forged")

	// Carol is not in the room: rejected by the auth rules.
	carolRoom := tr.fork.Clone()
	rejected := carolRoom.BuildMessage(carol, "not a member")

	// An unknown room's PDU is ignored (no result), as Synapse does.
	elsewhere := remotetest.NewRoom(t, "11", remote)
	unknown := elsewhere.Create(alice, `{"room_version":"11"}`)

	got := e.results(remote.Name, "t1", good, originEv, badSig, rejected, elsewhere.ByID[unknown.Prev[0]])
	want := map[string]string{good.ID: "", originEv.ID: "", badSig.ID: "signature", rejected.ID: "rejected"}
	if len(got) != len(want) {
		t.Errorf("results = %v, want %d entries", got, len(want))
	}
	for id, frag := range want {
		r, ok := got[id]
		switch {
		case !ok:
			t.Errorf("result for %s missing", id)
		case frag == "" && r.Error != "":
			t.Errorf("result for %s = %q, want success", id, r.Error)
		case frag != "" && !strings.Contains(r.Error, frag):
			t.Errorf("result for %s = %q, want an error with %q", id, r.Error, frag)
		}
	}
	if k := tr.store.Kind(good.ID); k != checks.Accepted {
		t.Errorf("good event stored as %v, want accepted", k)
	}
	if k := tr.store.Kind(originEv.ID); k != checks.Accepted {
		t.Errorf("event with origin stored as %v, want accepted", k)
	}
	if k := tr.store.Kind(badSig.ID); k != 0 {
		t.Errorf("badly signed event stored as %v, want not stored", k)
	}
}

// TestSendDuplicateTxn: a retried transaction ID gets the first answer
// and is not processed again; the same ID from another origin is another
// transaction.
func TestSendDuplicateTxn(t *testing.T) {
	e := newEnv(t, nil)
	tr := e.newRoom()
	m := tr.fork.SendMessage(bob, "once")
	raws := []json.RawMessage{m.Raw}
	status1, body1 := e.send(remote.Name, "dup", raws, nil)
	persists := e.rooms.persists()
	status2, body2 := e.send(remote.Name, "dup", raws, nil)
	if status1 != http.StatusOK || status2 != http.StatusOK || string(body1) != string(body2) {
		t.Errorf("send twice = %d %s, %d %s; want 200 and the same answer", status1, body1, status2, body2)
	}
	if got := e.rooms.persists(); got != persists {
		t.Errorf("persists after the retry = %d, want %d (not processed again)", got, persists)
	}
	// Concurrent retries of one transaction all get its one answer.
	m2 := tr.fork.SendMessage(bob, "twice")
	var wg sync.WaitGroup
	bodies := make([]string, 4)
	for i := range bodies {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, b := e.send(remote.Name, "dup2", []json.RawMessage{m2.Raw}, nil)
			bodies[i] = string(b)
		}()
	}
	wg.Wait()
	for _, b := range bodies {
		if b != bodies[0] || !strings.Contains(b, m2.ID) {
			t.Errorf("concurrent retry answers = %q, want all %q", bodies, bodies[0])
			break
		}
	}
	if got, want := e.rooms.persists(), persists+1; got != want {
		t.Errorf("persists after concurrent retries = %d, want %d", got, want)
	}
	// The same transaction ID from another origin is processed.
	m3 := tr.fork.SendMessage(bob, "thrice")
	if got := e.results(other.Name, "dup", m3); got[m3.ID].Error != "" {
		t.Errorf("same txn ID from another origin: result %v, want success", got)
	}
}

// TestSendOrderAcrossRooms: each room's chain of events in one
// transaction is accepted in order while rooms run in parallel (no
// fetcher: an event handled before its prev event would fail).
func TestSendOrderAcrossRooms(t *testing.T) {
	e := newEnv(t, func(c *inbound.Config) { c.Limit.MaxRooms = 3 })
	const nRooms, perRoom = 5, 9
	var all []*pdu.Event
	rooms := make([]*testRoom, nRooms)
	for i := range rooms {
		rooms[i] = e.newRoom()
	}
	// Interleave the rooms' events in the transaction.
	for j := 0; j < perRoom; j++ {
		for _, tr := range rooms {
			all = append(all, tr.fork.SendMessage(bob, fmt.Sprintf("m%d", j)))
		}
	}
	got := e.results(remote.Name, "order", all...)
	for _, ev := range all {
		if r := got[ev.ID]; r.Error != "" {
			t.Errorf("event %s: %q, want success", ev.ID, r.Error)
		}
	}
	for i, tr := range rooms {
		if ext := tr.store.Extremities(); len(ext) != 1 || ext[0] != tr.fork.Prev[0] {
			t.Errorf("room %d extremities = %v, want the last event %s", i, ext, tr.fork.Prev[0])
		}
	}
	// Two origins sending into one room at once are serialised.
	tr := rooms[0]
	ea := []*pdu.Event{tr.fork.SendMessage(bob, "a1"), tr.fork.SendMessage(bob, "a2")}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); e.results(remote.Name, "A", ea...) }()
	go func() { defer wg.Done(); e.results(other.Name, "B", ea[0]) }()
	wg.Wait()
	if k := tr.store.Kind(ea[1].ID); k != checks.Accepted {
		t.Errorf("a2 stored as %v, want accepted", k)
	}
}

// TestSendMissingPrevEvents: a PDU whose prev events the server lacks
// gets them through get_missing_events from the sender, over HTTP with
// mautrix-go's federation client; they are accepted oldest first, then
// the PDU.
func TestSendMissingPrevEvents(t *testing.T) {
	forEachVersion(t, func(t *testing.T, version string) {
		p := newPeer(t)
		e := newEnv(t, func(c *inbound.Config) { c.Fetcher = p.fetcher() })
		tr := e.newRoomV(version)
		m1 := tr.fork.SendMessage(bob, "m1")
		m2 := tr.fork.SendMessage(bob, "m2")
		m3 := tr.fork.SendMessage(alice, "m3")
		p.serve(tr.room)

		got := e.results(remote.Name, "gap", m3)
		if r := got[m3.ID]; r.Error != "" {
			t.Fatalf("m3 result = %q, want success", r.Error)
		}
		for _, ev := range []*pdu.Event{m1, m2, m3} {
			if k := tr.store.Kind(ev.ID); k != checks.Accepted {
				t.Errorf("%s stored as %v, want accepted", ev.Content, k)
			}
		}
		if n := p.count("get_missing_events"); n != 1 {
			t.Errorf("get_missing_events calls = %d, want 1", n)
		}
		if ext := tr.store.Extremities(); len(ext) != 1 || ext[0] != m3.ID {
			t.Errorf("extremities = %v, want [%s]", ext, m3.ID)
		}
	})
}

// TestSendMissingAuthAndPrev: carol of another server joined on a branch
// the server never saw; her message needs her join as a prev and as an
// auth event. Both come from the sender (get_missing_events brings the
// join, which needs nothing else), and the message is accepted.
func TestSendMissingAuthAndPrev(t *testing.T) {
	forEachVersion(t, func(t *testing.T, version string) {
		p := newPeer(t)
		e := newEnv(t, func(c *inbound.Config) { c.Fetcher = p.fetcher() })
		tr := e.newRoomV(version)
		join := tr.fork.SendState(carol, "m.room.member", carol, `{"membership":"join"}`)
		msg := tr.fork.SendMessage(carol, "hi from other")
		p.serve(tr.room)
		got := e.results(other.Name, "carol", msg)
		if r := got[msg.ID]; r.Error != "" {
			t.Fatalf("result = %q, want success", r.Error)
		}
		if k := tr.store.Kind(join.ID); k != checks.Accepted {
			t.Errorf("join stored as %v, want accepted", k)
		}
	})
}

// TestSendMissingAuthOnly: an event whose prev events are held but whose
// auth events are not gets its auth chain through event_auth, stored as
// outliers, and is then checked (here rejected: the state before it has
// no such member).
func TestSendMissingAuthOnly(t *testing.T) {
	forEachVersion(t, func(t *testing.T, version string) {
		p := newPeer(t)
		e := newEnv(t, func(c *inbound.Config) { c.Fetcher = p.fetcher() })
		tr := e.newRoomV(version)
		side := tr.fork.Clone()
		join := side.SendState(carol, "m.room.member", carol, `{"membership":"join"}`)
		// carol's message on the main fork, citing her join only in auth.
		msg := tr.fork.Build(pdu.Proto{Sender: carol, Type: "m.room.message", Content: json.RawMessage(`{"body":"x","msgtype":"m.text"}`),
			AuthEvents: side.Build(pdu.Proto{Sender: carol, Type: "m.room.message", Content: json.RawMessage(`{}`)}).AuthEvents})
		p.serve(tr.room)
		got := e.results(other.Name, "auth", msg)
		if r := got[msg.ID]; !strings.Contains(r.Error, "rejected") {
			t.Errorf("result = %q, want rejected (after fetching its auth events)", r.Error)
		}
		if n := p.count("event_auth"); n != 1 {
			t.Errorf("event_auth calls = %d, want 1", n)
		}
		if k := tr.store.Kind(join.ID); k != checks.Outlier {
			t.Errorf("carol's join stored as %v, want outlier", k)
		}
	})
}

// TestSendGapTooBig: when get_missing_events does not reach what the
// server holds, the state at the missing prev event is fetched with
// state_ids; with no GapFiller the PDU gets an error saying so, and the
// other PDUs of the transaction are unaffected.
func TestSendGapTooBig(t *testing.T) {
	p := newPeer(t)
	e := newEnv(t, func(c *inbound.Config) {
		c.Fetcher = p.fetcher()
		c.Limit.MissingEvents = 10
	})
	tr := e.newRoom()
	other := e.newRoom()
	ok := other.fork.SendMessage(bob, "fine")
	var last *pdu.Event
	for i := range 25 {
		if i == 24 {
			p.setStateBefore(tr.fork.Prev[0], nil)
		}
		last = tr.fork.SendMessage(bob, fmt.Sprintf("m%d", i))
	}
	beforeLast := tr.room.ByID[last.PrevEvents[0]]
	p.setStateBefore(beforeLast.ID, tr.fork.State)
	p.serve(tr.room)
	got := e.results(remote.Name, "big", last, ok)
	if r := got[last.ID]; !strings.Contains(r.Error, "cannot yet take state") {
		t.Errorf("result = %q, want the gap error", r.Error)
	}
	if r := got[ok.ID]; r.Error != "" {
		t.Errorf("other room's event: %q, want success", r.Error)
	}
	if n := p.count("state_ids"); n != 1 {
		t.Errorf("state_ids calls = %d, want 1", n)
	}
	if n := p.count("get_missing_events"); n != 1 {
		t.Errorf("get_missing_events calls = %d, want 1", n)
	}
}

// TestSendServerACL: PDUs and typing from a server the room's ACL denies
// are refused for that room; other servers are unaffected.
func TestSendServerACL(t *testing.T) {
	e := newEnv(t, nil)
	tr := e.newRoom(evil)
	e.hold(tr.fork.SendState(eve, "m.room.member", eve, `{"membership":"join"}`))
	e.hold(tr.fork.SendState(alice, "m.room.server_acl", "", `{"allow":["*"],"deny":["evil.example"]}`))
	msg := tr.fork.Clone().BuildMessage(eve, "let me in")
	if r := e.results(evil.Name+":8448", "acl", msg)[msg.ID]; !strings.Contains(r.Error, "server ACL") {
		t.Errorf("denied origin's PDU: %q, want an ACL error", r.Error)
	}
	if k := tr.store.Kind(msg.ID); k != 0 {
		t.Errorf("denied PDU stored as %v", k)
	}
	typing := func(user string) inbound.EDU {
		c, _ := json.Marshal(map[string]any{"room_id": tr.room.ID, "user_id": user, "typing": true})
		return inbound.EDU{Type: "m.typing", Content: c}
	}
	e.send(evil.Name, "acl-edu", nil, []inbound.EDU{typing(eve)})
	e.send(remote.Name, "ok-edu", nil, []inbound.EDU{typing(bob)})
	want := []string{tr.room.ID + " " + bob + " true"}
	if fmt.Sprint(e.sinks.typing) != fmt.Sprint(want) {
		t.Errorf("typing dispatched = %v, want %v", e.sinks.typing, want)
	}
	okMsg := tr.fork.BuildMessage(bob, "still fine")
	if r := e.results(remote.Name, "acl-ok", okMsg)[okMsg.ID]; r.Error != "" {
		t.Errorf("allowed origin's PDU: %q, want success", r.Error)
	}
}

// TestSendLimits: requests over the limits are refused as a whole, with
// the Matrix error and status, and change nothing.
func TestSendLimits(t *testing.T) {
	e := newEnv(t, func(c *inbound.Config) { c.Limit.MaxBodyBytes = 64 << 10 })
	tr := e.newRoom()
	m := tr.fork.BuildMessage(bob, "x")
	many := func(n int) []json.RawMessage {
		out := make([]json.RawMessage, n)
		for i := range out {
			out[i] = m.Raw
		}
		return out
	}
	edus := func(n int) []inbound.EDU {
		out := make([]inbound.EDU, n)
		for i := range out {
			out[i] = inbound.EDU{Type: "m.unknown", Content: json.RawMessage(`{}`)}
		}
		return out
	}
	big := `{"pdus":[],"edus":[{"edu_type":"m.x","content":{"pad":"` + strings.Repeat("a", 70<<10) + `"}}]}`
	tests := []struct {
		name, origin, body string
		status             int
		code               string
	}{
		{"no origin", "", `{"pdus":[]}`, 401, "M_UNAUTHORIZED"},
		{"not json", remote.Name, `{"pdus":`, 400, "M_NOT_JSON"},
		{"not an object", remote.Name, `[]`, 400, "M_NOT_JSON"},
		{"pdus not a list", remote.Name, `{"pdus":{}}`, 400, "M_BAD_JSON"},
		{"too many pdus", remote.Name, mustJSON(t, map[string]any{"pdus": many(51)}), 400, "M_BAD_JSON"},
		{"too many edus", remote.Name, mustJSON(t, map[string]any{"pdus": many(0), "edus": edus(101)}), 400, "M_BAD_JSON"},
		{"body too large", remote.Name, big, 413, "M_TOO_LARGE"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := e.sendRaw(tt.origin, fmt.Sprintf("lim%d", i), []byte(tt.body))
			var got struct{ Errcode string }
			_ = json.Unmarshal(body, &got)
			if status != tt.status || got.Errcode != tt.code {
				t.Errorf("send = %d %s, want %d %s", status, body, tt.status, tt.code)
			}
		})
	}
	if k := tr.store.Kind(m.ID); k != 0 {
		t.Errorf("event of a refused transaction stored as %v", k)
	}
	// A refused transaction may be sent again, and then succeeds.
	if status, body := e.send(remote.Name, "lim4", many(1), nil); status != 200 || !strings.Contains(string(body), m.ID) {
		t.Errorf("resend of a refused transaction = %d %s, want 200 with its result", status, body)
	}
}

func mustJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestSendRateLimit: an origin over its transaction rate gets 429
// M_LIMIT_EXCEEDED with retry_after_ms; other origins do not.
func TestSendRateLimit(t *testing.T) {
	e := newEnv(t, func(c *inbound.Config) { c.Limit.OriginRate, c.Limit.OriginBurst = 0.001, 2 })
	for i, want := range []int{200, 200, 429} {
		status, body := e.send(remote.Name, fmt.Sprintf("r%d", i), nil, nil)
		if status != want {
			t.Errorf("txn %d = %d %s, want %d", i, status, body, want)
		}
		if want == 429 && (!strings.Contains(string(body), "M_LIMIT_EXCEEDED") || !strings.Contains(string(body), "retry_after_ms")) {
			t.Errorf("txn %d body = %s, want M_LIMIT_EXCEEDED with retry_after_ms", i, body)
		}
	}
	if status, _ := e.send(other.Name, "r0", nil, nil); status != 200 {
		t.Errorf("other origin = %d, want 200", status)
	}
	// The answered transaction's retry is served from the cache even
	// over the limit: its first answer may have been lost.
	if status, _ := e.send(remote.Name, "r0", nil, nil); status != 200 {
		t.Errorf("retry of an answered txn over the limit = %d, want 200", status)
	}
}

// TestSendConcurrentFromOneOrigin: while one transaction from an origin
// is being processed, another from the same origin gets 429; one from
// another origin goes through.
func TestSendConcurrentFromOneOrigin(t *testing.T) {
	e := newEnv(t, nil)
	tr := e.newRoom()
	held := make(chan struct{})
	release := make(chan struct{})
	var once sync.Once
	tr.store.BeforePersist = func(int, *checks.Verdict) {
		once.Do(func() {
			close(held)
			<-release
		})
	}
	m := tr.fork.SendMessage(bob, "slow")
	done := make(chan map[string]inbound.PDUResult)
	go func() { done <- e.results(remote.Name, "slow", m) }()
	<-held
	status, body := e.send(remote.Name, "second", nil, nil)
	if status != http.StatusTooManyRequests || !strings.Contains(string(body), "M_LIMIT_EXCEEDED") {
		t.Errorf("second concurrent txn = %d %s, want 429 M_LIMIT_EXCEEDED", status, body)
	}
	if status, _ := e.send(other.Name, "elsewhere", nil, nil); status != 200 {
		t.Errorf("another origin's txn = %d, want 200", status)
	}
	close(release)
	if got := <-done; got[m.ID].Error != "" {
		t.Errorf("slow txn result = %v, want success", got)
	}
	// Once it is done, the origin may send again; the refused ID is not
	// remembered as answered.
	if status, body := e.send(remote.Name, "second", nil, nil); status != 200 {
		t.Errorf("after: %d %s, want 200", status, body)
	}
}

// TestSendBadNumbers: a PDU with a number outside canonical JSON's range
// is ignored alone (no event ID can be given to it, as in Synapse), and
// the PDUs beside it are taken.
func TestSendBadNumbers(t *testing.T) {
	e := newEnv(t, nil)
	tr := e.newRoom()
	auth := tr.fork.Build(pdu.Proto{Sender: bob, Type: "m.room.message", Content: json.RawMessage(`{}`)}).AuthEvents
	huge := remote.Forge(t, "11", map[string]any{
		"type": "m.room.message", "room_id": tr.room.ID, "sender": bob,
		"content": map[string]any{"msgtype": "m.text", "body": "big", "n": int64(1) << 53}, "depth": tr.fork.Depth + 1,
		"prev_events": tr.fork.Prev, "auth_events": auth, "origin_server_ts": 1_800_000_000_000,
	})
	if _, err := pdu.Parse(huge, "11"); !errors.Is(err, pdu.ErrInvalid) {
		t.Fatalf("Parse(2^53 in content) = %v, want ErrInvalid", err)
	}
	good := tr.fork.SendMessage(bob, "fine")
	status, body := e.send(remote.Name, "nums", []json.RawMessage{huge, good.Raw}, nil)
	var resp struct {
		PDUs map[string]inbound.PDUResult `json:"pdus"`
	}
	if err := json.Unmarshal(body, &resp); status != 200 || err != nil {
		t.Fatalf("send = %d %s, want 200", status, body)
	}
	if len(resp.PDUs) != 1 || resp.PDUs[good.ID].Error != "" {
		t.Errorf("results = %v, want only %s, taken", resp.PDUs, good.ID)
	}
	if got := len(tr.store.Extremities()); got != 1 || tr.store.Kind(good.ID) != checks.Accepted {
		t.Errorf("store: %d extremities, good event %v; want the good event accepted alone", got, tr.store.Kind(good.ID))
	}
}

// TestSendGapFilled: with a GapFiller, a gap beyond get_missing_events is
// filled with the state at the missing prev event: the state events the
// server lacks are fetched one by one and stored as outliers, the prev
// event is stored with that state, and the PDU is accepted.
func TestSendGapFilled(t *testing.T) {
	forEachVersion(t, func(t *testing.T, version string) {
		p := newPeer(t)
		gaps := &gapFiller{}
		e := newEnv(t, func(c *inbound.Config) {
			c.Fetcher = p.fetcher()
			c.Limit.MissingEvents = 10
			c.Gaps = gaps
		})
		gaps.rooms = e.rooms
		tr := e.newRoomV(version)
		var topic, last *pdu.Event
		for i := range 25 {
			if i == 3 {
				topic = tr.fork.SendState(alice, "m.room.topic", "", `{"topic":"changed in the gap"}`)
			}
			last = tr.fork.SendMessage(bob, fmt.Sprintf("m%d", i))
		}
		prev := tr.room.ByID[last.PrevEvents[0]]
		p.setStateBefore(prev.ID, tr.fork.State)
		p.serve(tr.room)
		got := e.results(remote.Name, "filled", last)
		if r := got[last.ID]; r.Error != "" {
			t.Fatalf("result = %q, want success", r.Error)
		}
		if k := tr.store.Kind(last.ID); k != checks.Accepted {
			t.Errorf("PDU stored as %v, want accepted", k)
		}
		if k := tr.store.Kind(topic.ID); k != checks.Outlier {
			t.Errorf("topic from the gap's state stored as %v, want outlier", k)
		}
		if n := p.count("event"); n != 2 {
			t.Errorf("event fetches = %d, want 2 (the topic and the prev event)", n)
		}
	})
}

// TestSendGapFilledWithState: when more state events are lacking than
// MaxFetchedEvents, the whole state comes in one /state, and only the
// prev event itself is fetched alone.
func TestSendGapFilledWithState(t *testing.T) {
	forEachVersion(t, func(t *testing.T, version string) {
		p := newPeer(t)
		gaps := &gapFiller{}
		e := newEnv(t, func(c *inbound.Config) {
			c.Fetcher = p.fetcher()
			c.Limit.MissingEvents = 10
			c.Limit.MaxFetchedEvents = 1
			c.Gaps = gaps
		})
		gaps.rooms = e.rooms
		tr := e.newRoomV(version)
		var topic, last *pdu.Event
		for i := range 25 {
			if i == 3 {
				topic = tr.fork.SendState(alice, "m.room.topic", "", `{"topic":"changed in the gap"}`)
				tr.fork.SendState(alice, "m.room.name", "", `{"name":"renamed in the gap"}`)
			}
			last = tr.fork.SendMessage(bob, fmt.Sprintf("m%d", i))
		}
		prev := tr.room.ByID[last.PrevEvents[0]]
		p.setStateBefore(prev.ID, tr.fork.State)
		p.serve(tr.room)
		got := e.results(remote.Name, "filled", last)
		if r := got[last.ID]; r.Error != "" {
			t.Fatalf("result = %q, want success", r.Error)
		}
		if k := tr.store.Kind(last.ID); k != checks.Accepted {
			t.Errorf("PDU stored as %v, want accepted", k)
		}
		if k := tr.store.Kind(topic.ID); k != checks.Outlier {
			t.Errorf("topic from the gap's state stored as %v, want outlier", k)
		}
		if n := p.count("event"); n != 1 {
			t.Errorf("event fetches = %d, want 1 (the prev event)", n)
		}
		if n := p.count("state"); n != 1 {
			t.Errorf("state fetches = %d, want 1", n)
		}
	})
}

// TestSendBadTxnID: a transaction ID that cannot be kept as a key is
// refused with 400 M_INVALID_PARAM before any work.
func TestSendBadTxnID(t *testing.T) {
	e := newEnv(t, nil)
	for _, id := range []string{"nul\x00id", "bad\xffutf8", strings.Repeat("x", 256)} {
		status, body := e.sendRaw(remote.Name, id, []byte(`{"pdus":[]}`))
		if status != 400 || !strings.Contains(string(body), "M_INVALID_PARAM") {
			t.Errorf("send(txn %q) = %d %s, want 400 M_INVALID_PARAM", id, status, body)
		}
	}
	if status, _ := e.sendRaw(remote.Name, strings.Repeat("x", 255), []byte(`{"pdus":[]}`)); status != 200 {
		t.Errorf("send(255-byte txn ID) = %d, want 200", status)
	}
}

// forEachVersion runs fn as a subtest per room version the pipeline
// takes.
func forEachVersion(t *testing.T, fn func(t *testing.T, version string)) {
	for _, v := range []string{"10", "11", "12"} {
		t.Run("v"+v, func(t *testing.T) { fn(t, v) })
	}
}

// TestSendWithAndWithoutOrigin: PDUs are taken with and without the
// optional top-level "origin" key, in every room version.
func TestSendWithAndWithoutOrigin(t *testing.T) {
	forEachVersion(t, func(t *testing.T, version string) {
		e := newEnv(t, nil)
		tr := e.newRoomV(version)
		without := tr.fork.SendMessage(bob, "no origin")
		auth := tr.fork.Build(pdu.Proto{Sender: bob, Type: "m.room.message", Content: json.RawMessage(`{}`)}).AuthEvents
		raw := remote.Forge(t, version, map[string]any{
			"type": "m.room.message", "room_id": tr.room.ID, "sender": bob, "origin": remote.Name,
			"content": map[string]any{"msgtype": "m.text", "body": "with origin"}, "depth": without.Depth + 1,
			"prev_events": []string{without.ID}, "auth_events": auth, "origin_server_ts": 1_800_000_000_000,
		})
		with, err := pdu.Parse(raw, version)
		if err != nil {
			t.Fatalf("Parse(with origin) = %v", err)
		}
		got := e.results(remote.Name, "o", without, with)
		for _, ev := range []*pdu.Event{without, with} {
			if r, ok := got[ev.ID]; !ok || r.Error != "" || tr.store.Kind(ev.ID) != checks.Accepted {
				t.Errorf("%s: result %v (present %v), stored as %v; want taken and accepted", ev.Content, r, ok, tr.store.Kind(ev.ID))
			}
		}
	})
}

// TestSendFetchFails: when the sender cannot serve what a PDU lacks, the
// PDU gets an error naming what is missing, and nothing else changes.
func TestSendFetchFails(t *testing.T) {
	p := newPeer(t) // serves no events
	e := newEnv(t, func(c *inbound.Config) { c.Fetcher = p.fetcher() })
	tr := e.newRoom()
	tr.fork.SendMessage(bob, "never sent")
	orphan := tr.fork.SendMessage(bob, "orphan")
	got := e.results(remote.Name, "f", orphan)
	if r := got[orphan.ID]; !strings.Contains(r.Error, "state_ids") {
		t.Errorf("result = %q, want an error saying the state could not be fetched", r.Error)
	}
	if k := tr.store.Kind(orphan.ID); k != 0 {
		t.Errorf("orphan stored as %v, want not stored", k)
	}
	if n := p.count("get_missing_events"); n != 1 {
		t.Errorf("get_missing_events calls = %d, want 1", n)
	}
}
