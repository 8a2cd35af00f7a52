package todevice

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"testing"
)

// fakeRemote records each server's share.
type fakeRemote struct {
	got map[string]RemoteMessage
	err error
}

func (f *fakeRemote) SendRemoteToDevice(_ context.Context, server string, m RemoteMessage) error {
	if f.err != nil {
		return f.err
	}
	f.got[server] = m
	return nil
}

// TestSendRemote: other servers' users get one message per server, with
// the message ID from device and txnId; a malformed user ID is dropped; a
// Remote failure fails the request before anything local is stored.
func TestSendRemote(t *testing.T) {
	content := json.RawMessage(`{"k":1}`)
	req := Request{Sender: "@a:here", SenderDevice: "DEV", TxnID: "t1", Type: "m.room.encrypted",
		Messages: map[string]map[string]json.RawMessage{
			"@b:here": {"B1": content}, "@c:one.example": {"*": content}, "@d:one.example": {"D1": content},
			"@e:two.example:8448": {"E1": content}, "@bad": {"X": content}, "@f:bad host": {"X": content},
		}}
	w, r := &fakeWriter{}, &fakeRemote{got: map[string]RemoteMessage{}}
	s := New(Config{ServerName: "here", Writer: w, Devices: fakeDevices{"@b:here": {"B1"}}, Remote: r})
	if err := s.Send(context.Background(), req); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if got, want := slices.Sorted(maps.Keys(r.got)), []string{"one.example", "two.example:8448"}; !slices.Equal(got, want) {
		t.Errorf("servers = %v, want %v", got, want)
	}
	if m := r.got["one.example"]; m.MessageID != "DEV/t1" || m.Sender != "@a:here" || len(m.Messages) != 2 {
		t.Errorf("one.example got %+v, want both users, message ID DEV/t1", m)
	}
	if len(w.got) != 1 || w.got[0].UserID != "@b:here" {
		t.Errorf("local messages = %+v, want bob's", w.got)
	}

	w2 := &fakeWriter{}
	s = New(Config{ServerName: "here", Writer: w2, Devices: fakeDevices{"@b:here": {"B1"}}, Remote: &fakeRemote{err: errors.New("queue full")}})
	if err := s.Send(context.Background(), req); err == nil || len(w2.got) != 0 {
		t.Errorf("Send with a failing Remote = %v, stored %d; want an error and nothing stored", err, len(w2.got))
	}
}
