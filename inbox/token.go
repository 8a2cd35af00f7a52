package inbox

import (
	"fmt"
	"strconv"
	"strings"
)

// Token is a sync position: the stream position all persisted streams share,
// and the typing serial (typing is never persisted). Written "s<pos>_<typing>",
// then ".<channel position>" when non-zero, then "m<moments position>" when
// non-zero, then "~<epoch>" when the syncer
// stamps its store's epoch.
type Token struct {
	Pos    int64
	Typing int64
	// ToDevice is how far to-device messages were delivered, when a sync
	// stopped short of Pos because the device had more queued than one
	// response carries. Zero means "as far as Pos".
	ToDevice int64
	// Chan is the channel stream's position (inbox/channels.go), written
	// after a dot when non-zero.
	Chan int64
	// Moments is the moments feed's position (inbox/moments.go), written
	// after an "m" when non-zero.
	Moments int64
	// Epoch is the store epoch the token was issued in (storage.Store.Epoch;
	// restoring a backup renews it): a position from another epoch means
	// nothing in this one. Empty for tokens written before epochs, which
	// count as the current epoch.
	Epoch string
}

// notCarried as a token's Chan or Moments says the sync that holds the token
// does not show that stream (sliding sync), so the stream's news is none of
// its business. It is never written: String writes only positive parts, and
// ParseToken refuses negative ones.
const notCarried = -1

// maxEpochLen bounds the epoch part of a token; stores write 12 hex digits.
const maxEpochLen = 32

func (t Token) String() string { return string(t.appendTo(make([]byte, 0, 24))) }

// appendTo appends t as String writes it (it needs no JSON escaping).
func (t Token) appendTo(dst []byte) []byte {
	dst = strconv.AppendInt(append(dst, 's'), t.Pos, 10)
	dst = strconv.AppendInt(append(dst, '_'), t.Typing, 10)
	if t.ToDevice > 0 && t.ToDevice < t.Pos {
		dst = strconv.AppendInt(append(dst, '_'), t.ToDevice, 10)
	}
	if t.Chan > 0 {
		dst = strconv.AppendInt(append(dst, '.'), t.Chan, 10)
	}
	if t.Moments > 0 {
		dst = strconv.AppendInt(append(dst, 'm'), t.Moments, 10)
	}
	if t.Epoch != "" {
		dst = append(append(dst, '~'), t.Epoch...)
	}
	return dst
}

// toDeviceAcked is the to-device position the holder of t has received.
func (t Token) toDeviceAcked() int64 {
	if t.ToDevice > 0 && t.ToDevice < t.Pos {
		return t.ToDevice
	}
	return t.Pos
}

// ParseToken reads a sync token. It accepts room pagination tokens too
// ("t<pos>"), which carry no typing serial.
func ParseToken(s string) (Token, error) {
	if len(s) < 2 || (s[0] != 's' && s[0] != 't') {
		return Token{}, fmt.Errorf("bad token %q", s)
	}
	rest := s[1:]
	var t Token
	if b, epoch, ok := strings.Cut(rest, "~"); ok {
		if !validEpoch(epoch) {
			return Token{}, fmt.Errorf("bad token %q", s)
		}
		rest, t.Epoch = b, epoch
	}
	if b, m, ok := strings.Cut(rest, "m"); ok {
		v, err := strconv.ParseInt(m, 10, 64)
		if err != nil || v < 0 {
			return Token{}, fmt.Errorf("bad token %q", s)
		}
		rest, t.Moments = b, v
	}
	body, chanPart, hasChan := strings.Cut(rest, ".")
	if hasChan {
		c, err := strconv.ParseInt(chanPart, 10, 64)
		if err != nil || c < 0 {
			return Token{}, fmt.Errorf("bad token %q", s)
		}
		t.Chan = c
	}
	posPart, typingPart, hasTyping := strings.Cut(body, "_")
	p, err := strconv.ParseInt(posPart, 10, 64)
	if err != nil || p < 0 {
		return Token{}, fmt.Errorf("bad token %q", s)
	}
	t.Pos = p
	if hasTyping {
		typingPart, tdPart, hasTD := strings.Cut(typingPart, "_")
		ty, err := strconv.ParseInt(typingPart, 10, 64)
		if err != nil || ty < 0 {
			return Token{}, fmt.Errorf("bad token %q", s)
		}
		t.Typing = ty
		if hasTD {
			td, err := strconv.ParseInt(tdPart, 10, 64)
			if err != nil || td < 0 {
				return Token{}, fmt.Errorf("bad token %q", s)
			}
			t.ToDevice = td
		}
	}
	return t, nil
}

// validEpoch reports whether e is 1 to maxEpochLen ASCII letters and digits.
func validEpoch(e string) bool {
	if e == "" || len(e) > maxEpochLen {
		return false
	}
	for i := 0; i < len(e); i++ {
		c := e[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return false
		}
	}
	return true
}

// RoomToken is a pagination token: a boundary between positions. Paging
// backwards from "t<n>" returns positions <= n; forwards returns > n.
func RoomToken(pos int64) string { return "t" + strconv.FormatInt(pos, 10) }

// appendRoomToken appends RoomToken(pos) without making the string.
func appendRoomToken(dst []byte, pos int64) []byte {
	return strconv.AppendInt(append(dst, 't'), pos, 10)
}
