package clientapi

import (
	"math"
	"strconv"
	"strings"

	"github.com/parley-im/parley/apierr"
	"github.com/parley-im/parley/inbox"
	"github.com/parley-im/parley/storage"
)

// pageToken is a /messages or /context pagination token. Tokens this server
// issues for pagination are topological, "d<depth>_<pos>": the boundary
// just after that point in (depth, stream) order. Stream tokens ("t<pos>"
// from /sync's prev_batch and from servers before topological order, or a
// whole sync token "s...") keep working: they bound stream positions.
type pageToken struct {
	topo  bool
	point storage.TopoPoint // when topo
	pos   int64             // when not topo
	// epoch is a sync token's store epoch ("~<epoch>"), empty for other
	// tokens; pageParam (tokenepoch.go) treats a stale one as no token.
	epoch string
}

func parsePageToken(s string) (pageToken, error) {
	if strings.HasPrefix(s, "d") {
		d, p, ok := strings.Cut(s[1:], "_")
		depth, err1 := strconv.ParseInt(d, 10, 64)
		pos, err2 := strconv.ParseInt(p, 10, 64)
		if !ok || err1 != nil || err2 != nil || depth < 0 {
			return pageToken{}, apierr.InvalidParam("Invalid pagination token")
		}
		return pageToken{topo: true, point: storage.TopoPoint{Depth: depth, Pos: pos}}, nil
	}
	t, err := inbox.ParseToken(s)
	if err != nil {
		return pageToken{}, apierr.InvalidParam("Invalid pagination token")
	}
	return pageToken{pos: t.Pos, epoch: t.Epoch}, nil
}

// streamPos is the stream position a token stands for, for reads that go by
// position (/members?at=).
func (t pageToken) streamPos() int64 {
	if t.topo {
		return t.point.Pos
	}
	return t.pos
}

func topoToken(p storage.TopoPoint) string {
	return "d" + strconv.FormatInt(p.Depth, 10) + "_" + strconv.FormatInt(p.Pos, 10)
}

// applyFrom sets q's starting point from a token.
func (t pageToken) applyFrom(q *storage.TopoQuery) {
	switch {
	case t.topo:
		q.From = t.point
	case q.Backwards:
		q.From, q.MaxPos = storage.TopoMax, min(q.MaxPos, t.pos)
	default:
		q.From, q.MinPos = storage.TopoMin, max(q.MinPos, t.pos)
	}
}

// applyTo sets q's far bound from a token.
func (t pageToken) applyTo(q *storage.TopoQuery) {
	switch {
	case t.topo:
		q.To = t.point
	case q.Backwards:
		q.MinPos = max(q.MinPos, t.pos)
	default:
		q.MaxPos = min(q.MaxPos, t.pos)
	}
}

func newTopoQuery(roomID string, backwards bool, limit int) storage.TopoQuery {
	q := storage.TopoQuery{RoomID: roomID, Backwards: backwards, MinPos: math.MinInt64, MaxPos: math.MaxInt64, Limit: limit}
	if backwards {
		q.From, q.To = storage.TopoMax, storage.TopoMin
	} else {
		q.From, q.To = storage.TopoMin, storage.TopoMax
	}
	return q
}
