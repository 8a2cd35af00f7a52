package inbound

import (
	"context"

	"github.com/parley-im/parley/rooms/pdu"
)

// VerifySignatures runs check 2 alone on a parsed event: every server that
// must sign ev has a valid ed25519 signature under a key keys knows. It is
// for events that arrive outside a transaction, such as the state and auth
// chain of a send_join answer, which are checked before their room exists
// here. The errors are those of Check (ErrDropped, ErrKeyUnavailable).
func VerifySignatures(ctx context.Context, keys Keys, version string, ev *pdu.Event) error {
	return (&Pipeline{keys: keys}).verifySignatures(ctx, version, ev)
}
