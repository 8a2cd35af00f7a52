package storage

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/tidwall/gjson"
)

// goSteps are migration steps SQL alone cannot take portably, run in the
// same transaction right after the schema file of their version.
var goSteps = map[int]func(ctx context.Context, tx *sql.Tx) error{
	16: upgradeEdges,
}

// upgradeEdges gives the events written before schema 16 their prev and
// auth edges (prev_ids, auth_ids), read from their stored PDUs, a page at a
// time. (Their state
// groups are not built: that history is linear, and reads of it still go
// by position; see StateAt.)
func upgradeEdges(ctx context.Context, tx *sql.Tx) error {
	const page = 1000
	after := int64(-1 << 62)
	for {
		rows, err := tx.QueryContext(ctx, `SELECT pos, event_id, pdu FROM events WHERE pos > $1 ORDER BY pos LIMIT $2`, after, page)
		if err != nil {
			return fmt.Errorf("upgrade edges: %w", err)
		}
		type row struct {
			id   string
			prev []string
			auth []string
		}
		var batch []row
		for rows.Next() {
			var id, pdu string
			if err := rows.Scan(&after, &id, &pdu); err != nil {
				rows.Close()
				return fmt.Errorf("upgrade edges: %w", err)
			}
			r := row{id: id}
			for _, v := range gjson.Get(pdu, "prev_events").Array() {
				r.prev = append(r.prev, v.String())
			}
			for _, v := range gjson.Get(pdu, "auth_events").Array() {
				r.auth = append(r.auth, v.String())
			}
			batch = append(batch, r)
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return fmt.Errorf("upgrade edges: %w", err)
		}
		for _, r := range batch {
			if _, err := tx.ExecContext(ctx, `UPDATE events SET prev_ids = $2, auth_ids = $3 WHERE event_id = $1`,
				r.id, strings.Join(r.prev, " "), strings.Join(r.auth, " ")); err != nil {
				return fmt.Errorf("upgrade edges: %w", err)
			}
		}
		if len(batch) < page {
			return nil
		}
	}
}
