package clientapi

// One mapping from the domain packages' typed errors to Matrix errors.
// Each domain package wraps its sentinels with a human-readable reason
// ("sentinel: reason"); the reason becomes the Matrix error message.

import (
	"errors"
	"net/http"
	"strings"

	"github.com/parley-im/parley/admin"
	"github.com/parley-im/parley/apierr"
	"github.com/parley-im/parley/devices"
	"github.com/parley-im/parley/directory"
	"github.com/parley-im/parley/e2ekeys"
	"github.com/parley-im/parley/federation/outbound"
	"github.com/parley-im/parley/profiles"
	"github.com/parley-im/parley/push"
	"github.com/parley-im/parley/pushrules"
	"github.com/parley-im/parley/reports"
)

// domainErrors lists, per sentinel, the Matrix error it becomes.
var domainErrors = []struct {
	sentinel error
	matrix   func(msg string) *apierr.Error
}{
	{pushrules.ErrInvalidParam, apierr.InvalidParam},
	{pushrules.ErrMissingParam, apierr.MissingParam},
	{pushrules.ErrBadJSON, apierr.BadJSON},
	{pushrules.ErrNotFound, apierr.NotFound},
	{pushrules.ErrAnchorNotFound, unknown400},

	{profiles.ErrNotFound, apierr.NotFound},
	{profiles.ErrForbidden, apierr.Forbidden},
	{profiles.ErrInvalidParam, apierr.InvalidParam},
	{profiles.ErrUnavailable, func(msg string) *apierr.Error { return apierr.New(http.StatusBadGateway, "M_UNKNOWN", msg) }},

	{devices.ErrNotFound, apierr.NotFound},
	{devices.ErrInvalidParam, apierr.InvalidParam},

	{e2ekeys.ErrInvalidParam, apierr.InvalidParam},
	{e2ekeys.ErrMissingParam, apierr.MissingParam},
	{e2ekeys.ErrBadJSON, apierr.BadJSON},

	{directory.ErrNotFound, apierr.NotFound},
	{directory.ErrForbidden, apierr.Forbidden},
	{directory.ErrInvalidParam, apierr.InvalidParam},
	{directory.ErrMissingParam, apierr.MissingParam},
	{directory.ErrAliasExists, func(msg string) *apierr.Error { return apierr.New(http.StatusConflict, "M_UNKNOWN", msg) }},

	{admin.ErrNotFound, apierr.NotFound},
	{admin.ErrInvalidParam, apierr.InvalidParam},
	{admin.ErrMissingParam, apierr.MissingParam},
	{admin.ErrUserInUse, func(msg string) *apierr.Error { return apierr.New(http.StatusBadRequest, "M_USER_IN_USE", msg) }},
	{admin.ErrExists, func(msg string) *apierr.Error { return apierr.New(http.StatusConflict, "M_UNKNOWN", msg) }},
	{reports.ErrNotFound, apierr.NotFound},
	{reports.ErrInvalidParam, apierr.InvalidParam},

	{push.ErrInvalidParam, apierr.InvalidParam},
	{push.ErrMissingParam, apierr.MissingParam},
	{push.ErrBadJSON, apierr.BadJSON},
	{push.ErrTooMany, func(msg string) *apierr.Error { return apierr.New(http.StatusBadRequest, "M_LIMIT_EXCEEDED", msg) }},

	// A destination server with the most durable EDUs waiting (a
	// sendToDevice to its users while it is down): nothing was queued,
	// and the queue drains once it answers again. 429 with
	// retry_after_ms is what matrix-nio and matrix-js-sdk retry on; a 500
	// would be dropped as a server fault.
	{outbound.ErrQueueFull, queueFull},
}

// queueFullRetryMs is the delay a client is told to wait when a
// destination's queue is full: long enough not to hammer a server that is
// down, short enough that a message waits little once it is back.
const queueFullRetryMs = 10_000

func queueFull(msg string) *apierr.Error {
	e := apierr.LimitExceeded(queueFullRetryMs)
	e.Message = "Too many messages are waiting for the recipients' server; retry later (" + msg + ")"
	return e
}

func unknown400(msg string) *apierr.Error { return apierr.New(http.StatusBadRequest, "M_UNKNOWN", msg) }

// domainError maps an error of a domain package to its Matrix error, or
// returns nil if err is none of them.
func domainError(err error) *apierr.Error {
	for _, d := range domainErrors {
		if errors.Is(err, d.sentinel) {
			// The reason follows the sentinel's text, even under
			// further wraps.
			msg := err.Error()
			if _, r, ok := strings.Cut(msg, d.sentinel.Error()+": "); ok {
				msg = r
			}
			return d.matrix(msg)
		}
	}
	return nil
}
