package clientapi

import (
	"net/http"
	"testing"
)

func TestHashSharePerAddress(t *testing.T) {
	a := &API{}
	req := func(remote, xff string) *http.Request {
		r := &http.Request{RemoteAddr: remote, Header: http.Header{}}
		if xff != "" {
			r.Header.Set("X-Forwarded-For", xff)
		}
		return r
	}
	far := req("203.0.113.1:5000", "")
	var dones []func()
	for i := range maxHashesPerAddress {
		done, err := a.takeHashShare(far)
		if err != nil {
			t.Fatalf("share %d: %v, want granted", i+1, err)
		}
		dones = append(dones, done)
	}
	if _, err := a.takeHashShare(far); err == nil {
		t.Fatal("a share over the per-address cap was granted, want 429")
	}
	if done, err := a.takeHashShare(req("203.0.113.2:5000", "")); err != nil {
		t.Errorf("another address: %v, want granted", err)
	} else {
		done()
	}
	// The same address behind a local proxy shares the count.
	if _, err := a.takeHashShare(req("127.0.0.1:1", "203.0.113.1")); err == nil {
		t.Error("the same address through X-Forwarded-For was granted, want 429")
	}
	for range 10 { // local tools (loopback, no X-Forwarded-For) are not counted
		if _, err := a.takeHashShare(req("127.0.0.1:1", "")); err != nil {
			t.Fatalf("loopback without X-Forwarded-For: %v, want granted", err)
		}
	}
	dones[0]()
	if done, err := a.takeHashShare(far); err != nil {
		t.Errorf("after one share ended: %v, want granted", err)
	} else {
		done()
	}
	dones[1]()
	if n := len(a.hashShares.n); n != 0 {
		t.Errorf("addresses tracked after all shares ended = %d, want 0", n)
	}
}
