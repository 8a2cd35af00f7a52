package storage

import (
	"context"
	"fmt"
	"strings"

	"github.com/parley-im/parley/rooms/dag"
)

// maxCurrentKeys bounds the keys of one CurrentStateKeys query; the auth
// rules read at most six.
const maxCurrentKeys = 50

// CurrentStateKeys returns the event IDs a room's current state holds under
// keys (keys it does not hold are absent). It reads only those rows: the
// inbound checks ask for an event's few auth keys, and reading the whole
// state for them cost O(members) per event in a big room.
func (s *Store) CurrentStateKeys(ctx context.Context, roomID string, keys []dag.StateTuple) (dag.StateMap, error) {
	out := make(dag.StateMap, len(keys))
	for len(keys) > 0 {
		part := keys[:min(len(keys), maxCurrentKeys)]
		keys = keys[len(part):]
		var q strings.Builder
		q.WriteString(`SELECT type, state_key, event_id FROM current_state WHERE room_id = $1 AND (`)
		args := make([]any, 0, 1+2*len(part))
		args = append(args, roomID)
		for i, k := range part {
			if i > 0 {
				q.WriteString(" OR ")
			}
			fmt.Fprintf(&q, "(type = $%d AND state_key = $%d)", len(args)+1, len(args)+2)
			args = append(args, k.Type, k.StateKey)
		}
		q.WriteString(")")
		rows, err := s.read.QueryContext(ctx, q.String(), args...)
		if err != nil {
			return nil, fmt.Errorf("current state keys of %s: %w", roomID, err)
		}
		for rows.Next() {
			var k dag.StateTuple
			var id string
			if err := rows.Scan(&k.Type, &k.StateKey, &id); err != nil {
				rows.Close()
				return nil, fmt.Errorf("current state keys of %s: %w", roomID, err)
			}
			out[k] = id
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("current state keys of %s: %w", roomID, err)
		}
	}
	return out, nil
}
