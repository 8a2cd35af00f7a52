package clientapi

import (
	"net/http"
	"strconv"

	"github.com/parley-im/parley/apierr"
)

// pageParams reads a Parley list's paging: "from" (the next_batch of the
// previous page, a positive sequence) and "limit" (20 by default, at most
// 100). Moments and channels (posts and comments) page the same way.
func pageParams(r *http.Request) (before int64, limit int, err error) {
	if f := r.URL.Query().Get("from"); f != "" {
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil || n <= 0 {
			return 0, 0, apierr.InvalidParam("Invalid from token")
		}
		before = n
	}
	limit = 20
	if l := r.URL.Query().Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n <= 0 {
			return 0, 0, apierr.InvalidParam("Invalid limit")
		}
		limit = min(n, 100)
	}
	return before, limit, nil
}
