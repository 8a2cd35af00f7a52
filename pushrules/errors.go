package pushrules

import (
	"errors"
	"fmt"
	"strings"
)

// The errors a push-rule edit can fail with. Each is wrapped with %w and a
// human-readable reason; the client API maps each to one Matrix error.
var (
	// ErrInvalidParam: a value is well-formed JSON but not allowed (an
	// unknown kind or action, a reserved rule ID, too many rules).
	ErrInvalidParam = errors.New("invalid push rule parameter")
	// ErrMissingParam: a required field is absent.
	ErrMissingParam = errors.New("missing push rule parameter")
	// ErrBadJSON: a field has the wrong shape.
	ErrBadJSON = errors.New("malformed push rule")
	// ErrNotFound: no rule of that kind and ID.
	ErrNotFound = errors.New("push rule not found")
	// ErrAnchorNotFound: the before/after rule of a PUT does not exist.
	ErrAnchorNotFound = errors.New("before/after rule not found")
)

// fail wraps sentinel with a reason.
func fail(sentinel error, reason string) error {
	return fmt.Errorf("%w: %s", sentinel, reason)
}

// Reason is the human-readable part of an error from this package: what
// follows the sentinel's own text, or the whole message if none matches.
func Reason(err error) string {
	msg := err.Error()
	for _, s := range []error{ErrInvalidParam, ErrMissingParam, ErrBadJSON, ErrNotFound, ErrAnchorNotFound} {
		if errors.Is(err, s) {
			if r, ok := strings.CutPrefix(msg, s.Error()+": "); ok {
				return r
			}
		}
	}
	return msg
}
