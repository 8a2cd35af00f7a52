package clientapi

import (
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/parley-im/parley/devices"
	"github.com/parley-im/parley/directory"
	"github.com/parley-im/parley/e2ekeys"
	"github.com/parley-im/parley/profiles"
	"github.com/parley-im/parley/pushrules"
)

func TestDomainError(t *testing.T) {
	for _, c := range []struct {
		err    error
		status int
		code   string
	}{
		{fmt.Errorf("%w: no", pushrules.ErrInvalidParam), http.StatusBadRequest, "M_INVALID_PARAM"},
		{fmt.Errorf("%w: no", pushrules.ErrMissingParam), http.StatusBadRequest, "M_MISSING_PARAM"},
		{fmt.Errorf("%w: no", pushrules.ErrBadJSON), http.StatusBadRequest, "M_BAD_JSON"},
		{fmt.Errorf("%w: no", pushrules.ErrNotFound), http.StatusNotFound, "M_NOT_FOUND"},
		{fmt.Errorf("%w: no", pushrules.ErrAnchorNotFound), http.StatusBadRequest, "M_UNKNOWN"},
		{fmt.Errorf("%w: Profile not found", profiles.ErrNotFound), http.StatusNotFound, "M_NOT_FOUND"},
		{fmt.Errorf("%w: no", profiles.ErrForbidden), http.StatusForbidden, "M_FORBIDDEN"},
		{fmt.Errorf("%w: no", profiles.ErrInvalidParam), http.StatusBadRequest, "M_INVALID_PARAM"},
		{fmt.Errorf("%w: Unknown device", devices.ErrNotFound), http.StatusNotFound, "M_NOT_FOUND"},
		{fmt.Errorf("%w: no", devices.ErrInvalidParam), http.StatusBadRequest, "M_INVALID_PARAM"},
		{fmt.Errorf("%w: no", e2ekeys.ErrInvalidParam), http.StatusBadRequest, "M_INVALID_PARAM"},
		{fmt.Errorf("%w: no", e2ekeys.ErrMissingParam), http.StatusBadRequest, "M_MISSING_PARAM"},
		{fmt.Errorf("%w: no", e2ekeys.ErrBadJSON), http.StatusBadRequest, "M_BAD_JSON"},
		{fmt.Errorf("%w: no", directory.ErrNotFound), http.StatusNotFound, "M_NOT_FOUND"},
		{fmt.Errorf("%w: no", directory.ErrForbidden), http.StatusForbidden, "M_FORBIDDEN"},
		{fmt.Errorf("%w: no", directory.ErrInvalidParam), http.StatusBadRequest, "M_INVALID_PARAM"},
		{fmt.Errorf("%w: no", directory.ErrMissingParam), http.StatusBadRequest, "M_MISSING_PARAM"},
		{fmt.Errorf("%w: no", directory.ErrAliasExists), http.StatusConflict, "M_UNKNOWN"},
	} {
		got := domainError(fmt.Errorf("wrapped again: %w", c.err))
		if got == nil || got.Status != c.status || got.Code != c.code {
			t.Errorf("domainError(%v) = %+v, want %d %s", c.err, got, c.status, c.code)
		}
	}
	// The reason, not the sentinel, is the message.
	if got := domainError(fmt.Errorf("remove: %w", fmt.Errorf("%w: Unknown device", devices.ErrNotFound))); got.Message != "Unknown device" {
		t.Errorf("message = %q, want %q", got.Message, "Unknown device")
	}
	if got := domainError(errors.New("database down")); got != nil {
		t.Errorf("domainError(other) = %+v, want nil", got)
	}
}
