package rooms

import (
	"strconv"
	"unicode/utf8"

	"github.com/parley-im/parley/storage"
)

// Viewer identifies who reads an event: the transaction ID of a send is
// shown only to the device that sent it.
type Viewer struct {
	UserID   string
	DeviceID string
}

// AppendClientEvent appends e in client-server form, with "unsigned" filled
// for this viewer at time nowMs. The stored client JSON is shared; only the
// unsigned object is built per request.
func AppendClientEvent(dst []byte, e *storage.Event, nowMs int64, v Viewer) []byte {
	c := e.Client
	if len(c) < 2 {
		return append(dst, "{}"...)
	}
	dst = append(dst, c[:len(c)-1]...)
	dst = append(dst, `,"unsigned":{"age":`...)
	age := nowMs - e.OriginTS
	if age < 0 {
		age = 0
	}
	dst = strconv.AppendInt(dst, age, 10)
	if len(e.Unsigned) > 2 {
		dst = append(dst, ',')
		dst = append(dst, e.Unsigned[1:len(e.Unsigned)-1]...)
	}
	if e.TxnID != "" && e.Sender == v.UserID && e.TxnDevice == v.DeviceID {
		dst = append(dst, `,"transaction_id":`...)
		dst = appendJSONString(dst, e.TxnID)
	}
	if e.Type == "m.room.member" && e.Membership != "" {
		dst = append(dst, `,"membership":`...)
		dst = appendJSONString(dst, e.Membership)
	}
	return append(dst, "}}"...)
}

// appendJSONString appends s as a JSON string. It is the one string writer
// of client events: Go's strconv quoting, used before, wrote \a and \xff,
// which are not JSON, so a txnId like "%07" made the sender's /sync
// unparseable. Invalid UTF-8 becomes U+FFFD, as encoding/json does; the
// characters JSON requires escaped are escaped, and so are U+2028 and
// U+2029, which break JavaScript that evaluates JSON.
func appendJSONString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hex[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// ClientEvents renders events as a JSON array.
func ClientEvents(events []storage.Event, nowMs int64, v Viewer) []byte {
	buf := make([]byte, 0, 512*len(events)+2)
	buf = append(buf, '[')
	for i := range events {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = AppendClientEvent(buf, &events[i], nowMs, v)
	}
	return append(buf, ']')
}
