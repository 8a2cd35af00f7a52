package observe

import (
	"net/url"
	"strconv"
	"strings"
)

// longPollParams reads the two /sync parameters Wrap needs (timeout and
// since) from a raw query as url.ParseQuery and Values.Get would: the
// first well-formed value of a key wins, and pairs with a semicolon or a
// bad escape are skipped. It builds no map: every woken long-poll passes
// here, and r.URL.Query() was a visible part of a delivery's CPU.
func longPollParams(raw string) (timeoutMS int64, timeoutOK bool, since string) {
	var timeout string
	var seenTimeout, seenSince bool
	for raw != "" && !(seenTimeout && seenSince) {
		var pair string
		pair, raw, _ = strings.Cut(raw, "&")
		if pair == "" || strings.Contains(pair, ";") {
			continue
		}
		k, v, _ := strings.Cut(pair, "=")
		k, err := url.QueryUnescape(k) // allocates only when escaped
		if err != nil {
			continue
		}
		var dst *string
		var seen *bool
		switch k {
		case "timeout":
			dst, seen = &timeout, &seenTimeout
		case "since":
			dst, seen = &since, &seenSince
		default:
			continue
		}
		if *seen {
			continue
		}
		if v, err = url.QueryUnescape(v); err != nil {
			continue
		}
		*dst, *seen = v, true
	}
	ms, err := strconv.ParseInt(timeout, 10, 64)
	return ms, err == nil, since
}
