package push

import (
	"errors"
	"fmt"
)

// The errors a pusher change can fail with. Each is wrapped with %w and a
// human-readable reason; the client API maps each to one Matrix error.
var (
	// ErrInvalidParam: a value is not allowed (an unknown kind, a URL
	// that is not a push gateway's).
	ErrInvalidParam = errors.New("invalid pusher parameter")
	// ErrMissingParam: a required field is absent.
	ErrMissingParam = errors.New("missing pusher parameter")
	// ErrBadJSON: a field has the wrong shape.
	ErrBadJSON = errors.New("malformed pusher")
	// ErrTooMany: the user has Config.MaxPushersPerUser pushers already.
	ErrTooMany = errors.New("too many pushers")
)

func fail(sentinel error, reason string) error { return fmt.Errorf("%w: %s", sentinel, reason) }
