package graph

import (
	"encoding/base64"
	"errors"
	"math"
	"strconv"
	"strings"
)

// ErrInvalidPage: Page.From is not a token the same kind of list handed out.
// It is the client's mistake (M_INVALID_PARAM), not the store's.
var ErrInvalidPage = errors.New("graph: invalid page token")

const (
	defaultLimit = 100
	maxLimit     = 1000
)

// pageLimit applies Page.Limit's documented range: 0 means 100, and the
// store never returns more than 1000 at once whatever it is asked.
func pageLimit(n int) int {
	switch {
	case n <= 0:
		return defaultLimit
	case n > maxLimit:
		return maxLimit
	}
	return n
}

// Tokens are base64 of a kind letter and the sort key of the last item
// returned, so a backend resumes with "key > last" on its index. The kind
// letter makes a token from one kind of list fail on another.
const (
	userToken    = "u"
	requestToken = "r"
)

func encodeToken(kind, key string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(kind + key))
}

func decodeToken(kind, token string) (string, error) {
	raw, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || !strings.HasPrefix(string(raw), kind) {
		return "", ErrInvalidPage
	}
	return string(raw[len(kind):]), nil
}

// afterUser returns the user ID a user list resumes after ("" for the start).
func afterUser(p Page) (string, error) {
	if p.From == "" {
		return "", nil
	}
	return decodeToken(userToken, p.From)
}

// afterRequest returns the (ts, id) a request list resumes after; the
// start is (math.MinInt64, "").
func afterRequest(p Page) (int64, string, error) {
	if p.From == "" {
		return math.MinInt64, "", nil
	}
	key, err := decodeToken(requestToken, p.From)
	if err != nil {
		return 0, "", err
	}
	tsText, id, ok := strings.Cut(key, ":")
	ts, err := strconv.ParseInt(tsText, 10, 64)
	if !ok || err != nil {
		return 0, "", ErrInvalidPage
	}
	return ts, id, nil
}

// trimUsers cuts a list fetched with limit+1 rows to limit and returns the
// next token, "" when the list has ended.
func trimUsers(ids []string, limit int) ([]string, string) {
	if len(ids) <= limit {
		return ids, ""
	}
	ids = ids[:limit]
	return ids, encodeToken(userToken, ids[limit-1])
}

// trimRequests is trimUsers for request lists.
func trimRequests(reqs []Request, limit int) ([]Request, string) {
	if len(reqs) <= limit {
		return reqs, ""
	}
	reqs = reqs[:limit]
	last := reqs[limit-1]
	return reqs, encodeToken(requestToken, strconv.FormatInt(last.TS, 10)+":"+last.ID)
}
