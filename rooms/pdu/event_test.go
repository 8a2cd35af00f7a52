package pdu

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestBuildParseRoundTrip(t *testing.T) {
	for _, v := range []string{"10", "11"} {
		p := message()
		p.StateKey = nil
		ev := mustBuild(t, p, v)
		if !ValidEventID(ev.ID) {
			t.Errorf("Build(v%s).ID = %q, want a v4 event ID", v, ev.ID)
		}
		got, err := Parse(ev.Raw, v)
		if err != nil {
			t.Fatalf("Parse(v%s) = %v, want nil", v, err)
		}
		if got.ID != ev.ID || !bytes.Equal(got.Raw, ev.Raw) || string(got.Content) != string(ev.Content) ||
			got.Type != ev.Type || got.Sender != ev.Sender || got.RoomID != ev.RoomID || got.Depth != ev.Depth ||
			got.OriginServerTS != ev.OriginServerTS || len(got.PrevEvents) != 1 || len(got.AuthEvents) != 3 || got.IsState() {
			t.Errorf("Parse(Build(v%s)) = %+v, want %+v", v, got, ev)
		}
		if err := got.VerifySignature(v, "example.org", "ed25519:test", testKey("example.org").Public()); err != nil {
			t.Errorf("VerifySignature(v%s) = %v, want nil", v, err)
		}
		// What a remote server adds in transit must not change anything.
		withExtras := edit(t, ev.Raw, func(m map[string]json.RawMessage) {
			m["unsigned"] = json.RawMessage(`{"age":1234}`)
			m["event_id"] = quote(ev.ID)
		})
		again, err := Parse(withExtras, v)
		if err != nil || again.ID != ev.ID || !bytes.Equal(again.Raw, ev.Raw) {
			t.Errorf("Parse(with unsigned and event_id) = %v, %v, want same event", again, err)
		}
	}
}

func TestBuildStateEventAndIDsDifferByVersion(t *testing.T) {
	p := message()
	p.Type, p.StateKey, p.Content = "m.room.topic", strPtr(""), json.RawMessage(`{"topic":"t"}`)
	v10, v11 := mustBuild(t, p, "10"), mustBuild(t, p, "11")
	if !v10.IsState() || v10.StateKeyOr("x") != "" || message().StateKey != nil {
		t.Errorf("state event: IsState = %v, StateKeyOr = %q, want true and \"\"", v10.IsState(), v10.StateKeyOr("x"))
	}
	if !bytes.Equal(v10.Raw, v11.Raw) || v10.ID != v11.ID {
		// Same redacted form for m.room.topic in both versions.
		t.Errorf("m.room.topic IDs differ between v10 (%s) and v11 (%s)", v10.ID, v11.ID)
	}
	msg := mustBuild(t, message(), "11")
	if msg.StateKeyOr("def") != "def" {
		t.Errorf("StateKeyOr on a message = %q, want def", msg.StateKeyOr("def"))
	}
}

func TestBuildRedaction(t *testing.T) {
	target := fakeID("target")
	p := message()
	p.Type, p.Redacts, p.Content = "m.room.redaction", target, json.RawMessage(`{"reason":"spam"}`)

	v10 := mustBuild(t, p, "10")
	if v10.Redacts != target || strings.Contains(string(v10.Content), "redacts") {
		t.Errorf("v10 redaction: Redacts = %q, Content = %s, want top-level only", v10.Redacts, v10.Content)
	}
	v11 := mustBuild(t, p, "11")
	wantContent := `{"reason":"spam","redacts":"` + target + `"}`
	if v11.Redacts != target || string(v11.Content) != wantContent || !bytes.Contains(v11.Raw, []byte(`"redacts":"`+target+`","room_id"`)) {
		t.Errorf("v11 redaction: Redacts = %q, Content = %s, Raw = %s, want content and top-level copy", v11.Redacts, v11.Content, v11.Raw)
	}
	for _, v := range []string{"10", "11"} {
		ev := map[string]*Event{"10": v10, "11": v11}[v]
		got, err := Parse(ev.Raw, v)
		if err != nil || got.Redacts != target {
			t.Errorf("Parse(v%s redaction).Redacts = %q, %v, want %s", v, got.Redacts, err, target)
		}
		red := got.Redact(v)
		if wantKept := v == "11"; (red.Redacts == target) != wantKept {
			t.Errorf("v%s redacted redaction keeps redacts = %v, want %v", v, red.Redacts == target, wantKept)
		}
	}
	// v11 accepts redacts given only in content.
	p.Redacts, p.Content = "", json.RawMessage(`{"redacts":"`+target+`"}`)
	if ev := mustBuild(t, p, "11"); ev.Redacts != target {
		t.Errorf("v11 redaction from content: Redacts = %q, want %s", ev.Redacts, target)
	}
}

func TestBuildRejects(t *testing.T) {
	tests := []struct {
		name string
		fn   func(p *Proto)
		key  *SigningKey
	}{
		{"unsupported version", nil, nil},
		{"empty type", func(p *Proto) { p.Type = "" }, nil},
		{"type too long", func(p *Proto) { p.Type = long(256) }, nil},
		{"state key too long", func(p *Proto) { p.StateKey = strPtr(long(256)) }, nil},
		{"bad sender", func(p *Proto) { p.Sender = "alice" }, nil},
		{"sender too long", func(p *Proto) { p.Sender = "@" + long(250) + ":example.org" }, nil},
		{"sender on other server", func(p *Proto) { p.Sender = "@alice:other.org" }, nil},
		{"bad room", func(p *Proto) { p.RoomID = "room" }, nil},
		{"negative depth", func(p *Proto) { p.Depth = -1 }, nil},
		{"depth beyond 2^53", func(p *Proto) { p.Depth = 1 << 53 }, nil},
		{"timestamp beyond 2^53", func(p *Proto) { p.OriginServerTS = -(1 << 53) }, nil},
		{"bad prev event", func(p *Proto) { p.PrevEvents = []string{"$abc:example.org"} }, nil},
		{"bad auth event", func(p *Proto) { p.AuthEvents = []string{""} }, nil},
		{"content array", func(p *Proto) { p.Content = json.RawMessage(`[]`) }, nil},
		{"content invalid", func(p *Proto) { p.Content = json.RawMessage(`{"a":`) }, nil},
		{"content missing", func(p *Proto) { p.Content = nil }, nil},
		{"content float", func(p *Proto) { p.Content = json.RawMessage(`{"a":1.5}`) }, nil},
		{"content int too big", func(p *Proto) { p.Content = json.RawMessage(`{"a":9007199254740992}`) }, nil},
		{"content int too small", func(p *Proto) { p.Content = json.RawMessage(`{"a":[-9007199254740992]}`) }, nil},
		{"too large", func(p *Proto) { p.Content = json.RawMessage(`{"body":"` + long(65536) + `"}`) }, nil},
		{"redacts on message", func(p *Proto) { p.Redacts = fakeID("x") }, nil},
		{"redaction without redacts", func(p *Proto) { p.Type = "m.room.redaction" }, nil},
		{"redaction with bad redacts", func(p *Proto) { p.Type, p.Redacts = "m.room.redaction", "nope" }, nil},
		{"nil key", func(p *Proto) {}, &SigningKey{}},
		{"bad key id", func(p *Proto) {}, &SigningKey{ServerName: "example.org", KeyID: "rsa:1", Private: testKey("example.org").Private}},
	}
	for _, tt := range tests {
		p, v := message(), "11"
		if tt.fn == nil {
			v = "9"
		} else {
			tt.fn(&p)
		}
		key := tt.key
		if key == nil {
			key = testKey("example.org")
		}
		if ev, err := Build(p, v, key); !errors.Is(err, ErrInvalid) {
			t.Errorf("Build(%s) = %v, %v, want ErrInvalid", tt.name, ev, err)
		}
	}
	p := message()
	p.Type, p.Redacts, p.Content = "m.room.redaction", fakeID("a"), json.RawMessage(`{"redacts":"`+fakeID("b")+`"}`)
	if _, err := Build(p, "11", testKey("example.org")); !errors.Is(err, ErrInvalid) {
		t.Errorf("Build(v11 redaction with conflicting redacts) = %v, want ErrInvalid", err)
	}
}

func TestBuildLimitsInclusive(t *testing.T) {
	p := message()
	p.Type, p.StateKey = long(255), strPtr(long(255))
	p.Content = json.RawMessage(`{"max":9007199254740991,"min":-9007199254740991}`)
	ev := mustBuild(t, p, "11")
	if _, err := Parse(ev.Raw, "11"); err != nil {
		t.Errorf("Parse(255-byte type and state key, extreme integers) = %v, want nil", err)
	}
	// Grow the body until the PDU is exactly at the limit.
	p = message()
	base := mustBuild(t, p, "11")
	pad := maxPDUBytes - len(base.Raw) + len(`{"msgtype":"m.text","body":"Hello, world! Ünïcödé ✓"}`) - len(`{"body":""}`)
	p.Content = json.RawMessage(`{"body":"` + long(pad) + `"}`)
	ev = mustBuild(t, p, "11")
	if len(ev.Raw) != maxPDUBytes {
		t.Fatalf("padded event is %d bytes, want %d", len(ev.Raw), maxPDUBytes)
	}
	if _, err := Parse(ev.Raw, "11"); err != nil {
		t.Errorf("Parse(65536-byte event) = %v, want nil", err)
	}
	p.Content = json.RawMessage(`{"body":"` + long(pad+1) + `"}`)
	if _, err := Build(p, "11", testKey("example.org")); !errors.Is(err, ErrInvalid) {
		t.Errorf("Build(65537-byte event) = %v, want ErrInvalid", err)
	}
}
