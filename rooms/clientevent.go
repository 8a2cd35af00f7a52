package rooms

import (
	"strconv"

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
		dst = strconv.AppendQuote(dst, e.TxnID)
	}
	if e.Type == "m.room.member" && e.Membership != "" {
		dst = append(dst, `,"membership":`...)
		dst = strconv.AppendQuote(dst, e.Membership)
	}
	return append(dst, "}}"...)
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
