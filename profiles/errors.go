package profiles

import (
	"errors"
	"fmt"
)

// The errors the service fails with. Each is wrapped with %w and a
// human-readable reason; the client API maps each to one Matrix error, and
// federation will map them to its own.
var (
	// ErrNotFound: no such local, active user, or the field is unset.
	ErrNotFound = errors.New("profile not found")
	// ErrForbidden: the caller may not make this change.
	ErrForbidden = errors.New("profile change forbidden")
	// ErrInvalidParam: a key or value that is well-formed but not allowed.
	ErrInvalidParam = errors.New("invalid profile parameter")
)

// fail wraps sentinel with a reason.
func fail(sentinel error, reason string) error {
	return fmt.Errorf("%w: %s", sentinel, reason)
}
