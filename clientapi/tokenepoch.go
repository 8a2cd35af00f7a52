package clientapi

import (
	"github.com/parley-im/parley/apierr"
	"github.com/parley-im/parley/inbox"
)

// A token issued in another store epoch (one a client kept from before a
// restore) holds positions that mean nothing now. Every route treats it as
// /sync does, as if the client had sent none: /sync answers with a fresh
// initial sync, /keys/changes reports every change, /messages pages from
// the room's end (or start). One parser (inbox.ParseToken) and one check
// (inbox.Syncer.StaleToken) serve them all.

// syncToken reads a sync token. current is false for a token of another
// epoch, which the caller treats as absent.
func (a *API) syncToken(s string) (t inbox.Token, current bool, err error) {
	t, err = inbox.ParseToken(s)
	if err != nil {
		return inbox.Token{}, false, err
	}
	if a.staleEpoch(t.Epoch) {
		return inbox.Token{}, false, nil
	}
	return t, true, nil
}

// pageParam reads an optional pagination token (/messages' from and to,
// /members' at). ok is false when s is empty or a token of another epoch:
// both mean "no token".
func (a *API) pageParam(s string) (tok pageToken, ok bool, err error) {
	if s == "" {
		return pageToken{}, false, nil
	}
	if tok, err = parsePageToken(s); err != nil {
		return pageToken{}, false, err
	}
	if a.staleEpoch(tok.epoch) {
		return pageToken{}, false, nil
	}
	return tok, true, nil
}

// staleEpoch reports whether a token's epoch is another store epoch's.
func (a *API) staleEpoch(epoch string) bool {
	return epoch != "" && a.syncer != nil && a.syncer.StaleToken(inbox.Token{Epoch: epoch})
}

// errBadToken is the answer to a token that does not parse.
func errBadToken(name string) error { return apierr.InvalidParam("Invalid " + name + " token") }
