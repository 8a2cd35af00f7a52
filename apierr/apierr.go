// Package apierr is the one place where Parley's HTTP APIs turn an error into
// the Matrix wire form: a JSON body with errcode and error, and the HTTP status
// that goes with it. Handlers return errors; they never write error JSON by hand.
package apierr

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
)

// Error is a Matrix error as it goes on the wire.
type Error struct {
	Status       int    // HTTP status
	Code         string // Matrix errcode, e.g. M_FORBIDDEN
	Message      string // human-readable text
	RetryAfterMs int64  // set for M_LIMIT_EXCEEDED; zero means absent
	// Extra fields merged into the body (for example UIA's flows/session, or
	// M_RESOURCE_LIMIT_EXCEEDED's admin_contact). Nil means none.
	Extra map[string]any
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// New builds an Error.
func New(status int, code, msg string) *Error {
	return &Error{Status: status, Code: code, Message: msg}
}

// Constructors for the errors the client-server API uses most. Each carries the
// status the spec gives for it.
func NotJSON(msg string) *Error      { return New(http.StatusBadRequest, "M_NOT_JSON", msg) }
func BadJSON(msg string) *Error      { return New(http.StatusBadRequest, "M_BAD_JSON", msg) }
func InvalidParam(msg string) *Error { return New(http.StatusBadRequest, "M_INVALID_PARAM", msg) }
func MissingParam(msg string) *Error { return New(http.StatusBadRequest, "M_MISSING_PARAM", msg) }
func MissingToken(msg string) *Error { return New(http.StatusUnauthorized, "M_MISSING_TOKEN", msg) }
func UnknownToken(msg string) *Error { return New(http.StatusUnauthorized, "M_UNKNOWN_TOKEN", msg) }
func Forbidden(msg string) *Error    { return New(http.StatusForbidden, "M_FORBIDDEN", msg) }
func NotFound(msg string) *Error     { return New(http.StatusNotFound, "M_NOT_FOUND", msg) }
func TooLarge(msg string) *Error     { return New(http.StatusRequestEntityTooLarge, "M_TOO_LARGE", msg) }
func Unrecognized(msg string) *Error { return New(http.StatusNotFound, "M_UNRECOGNIZED", msg) }
func Unknown(msg string) *Error      { return New(http.StatusInternalServerError, "M_UNKNOWN", msg) }

// LimitExceeded is 429 M_LIMIT_EXCEEDED with the retry delay in milliseconds.
func LimitExceeded(retryAfterMs int64) *Error {
	return &Error{Status: http.StatusTooManyRequests, Code: "M_LIMIT_EXCEEDED", Message: "Too many requests", RetryAfterMs: retryAfterMs}
}

// Write sends err as a Matrix error. An error that is not an *Error (anywhere in
// its chain) is an internal fault: the client gets 500 M_UNKNOWN and no detail.
func Write(w http.ResponseWriter, err error) {
	var e *Error
	if !errors.As(err, &e) {
		e = Unknown("Internal server error")
	}
	body := make(map[string]any, 3+len(e.Extra))
	for k, v := range e.Extra {
		body[k] = v
	}
	if e.Code != "" { // a first user-interactive-auth challenge carries no errcode
		body["errcode"] = e.Code
		body["error"] = e.Message
	}
	if e.RetryAfterMs > 0 {
		body["retry_after_ms"] = e.RetryAfterMs
		w.Header().Set("Retry-After", strconv.FormatInt((e.RetryAfterMs+999)/1000, 10))
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(e.Status)
	_ = json.NewEncoder(w).Encode(body)
}

// WriteJSON sends v as a JSON body with the given status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if raw, ok := v.(json.RawMessage); ok {
		_, _ = w.Write(raw)
		return
	}
	_ = json.NewEncoder(w).Encode(v)
}
