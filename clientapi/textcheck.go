package clientapi

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/parley-im/parley/apierr"
	"github.com/parley-im/parley/storage/storetext"
)

// refuseUnstorableText answers 400 M_INVALID_PARAM, before any handler
// runs, to a request whose path or query decodes to text Parley cannot
// store (U+0000 or invalid UTF-8; see storetext). Every path parameter
// (room, event and user IDs, event types, state keys, txnIds, device and
// key IDs) and query parameter is such a string, so one check here covers
// every route, the media routes included; JSON bodies are checked in
// readJSON. Without it PostgreSQL answered 500 where SQLite said yes.
func refuseUnstorableText(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := storetext.Check(r.URL.Path); err != nil {
			refuseText(w, "The request path is not storable text: "+err.Error())
			return
		}
		if err := checkQuery(r.URL.RawQuery); err != nil {
			refuseText(w, "A query parameter is not storable text: "+err.Error())
			return
		}
		next.ServeHTTP(w, r)
	})
}

// checkQuery checks a raw query's decoded keys and values. A query with no
// escapes is checked as it is, without parsing: the common case on /sync.
func checkQuery(raw string) error {
	if raw == "" {
		return nil
	}
	if !strings.ContainsRune(raw, '%') {
		return storetext.Check(raw)
	}
	for part := range strings.SplitSeq(raw, "&") {
		k, v, _ := strings.Cut(part, "=")
		for _, s := range [2]string{k, v} {
			dec, err := url.QueryUnescape(s)
			if err != nil {
				continue // the handler reports a malformed escape its own way
			}
			if err := storetext.Check(dec); err != nil {
				return err
			}
		}
	}
	return nil
}

func refuseText(w http.ResponseWriter, msg string) {
	apierr.Write(w, apierr.InvalidParam(msg))
}

// txnIDRule is the error text for a refused transaction ID (pdu.ValidTxnID).
const txnIDRule = "Transaction IDs are 1 to 255 bytes of UTF-8 without control characters"
