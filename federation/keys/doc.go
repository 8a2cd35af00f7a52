// Package keys owns federation identity and trust: this server's signing
// keys as other servers see them (/_matrix/key/v2/server, with retired keys
// in old_verify_keys), the notary endpoint (/_matrix/key/v2/query), and a
// cache of other servers' verify keys, fetched directly or through a notary
// and kept in the store until they expire.
//
// The wire types (ServerKeyResponse, the query request and response) and the
// JSON signature checks come from mautrix-go's federation package; this
// package decides what to trust and for how long. It never speaks HTTP
// itself as a client: a Fetcher (federation/transport's client) does.
//
// Trust model: a key response is believed when it carries a valid signature
// by each key it lists (the origin's self-signature). Through a notary it
// must also carry a valid signature of the notary, whose own key is fetched
// directly from the notary, never through another notary.
package keys
