package storage

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"

	"github.com/parley-im/parley/channels"
)

// bulkRows is the rows one bulk INSERT carries: 500 rows of 3 parameters
// stay far below SQLite's 32766 and PostgreSQL's 65535 parameters.
const bulkRows = 500

// BulkFollow makes n follows at once, the i-th being follow(i), each read
// up to readSeq: the channel_reads rows and the SQL graph's follow edges,
// 500 rows a statement and one transaction per 100,000 rows. It is for
// benchmarks and load tools, which need a channel with a million followers
// in minutes rather than hours: it skips the rules channels.Service.Follow
// applies (blocks), tells no cache, and with the graph in Neo4j it makes no
// edge there. Existing follows are left as they are.
func (c *ChannelStore) BulkFollow(ctx context.Context, n int, follow func(i int) channels.Follow, readSeq int64) error {
	const perTx = 200 * bulkRows
	for start := 0; start < n; start += perTx {
		end := min(n, start+perTx)
		err := c.s.inTx(ctx, func(tx *sql.Tx) error {
			for b := start; b < end; b += bulkRows {
				if err := bulkInsert(ctx, tx, b, min(end, b+bulkRows), follow, readSeq); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("bulk follow: %w", err)
		}
	}
	return nil
}

func bulkInsert(ctx context.Context, tx *sql.Tx, from, to int, follow func(i int) channels.Follow, readSeq int64) error {
	var reads, edges strings.Builder
	reads.WriteString(`INSERT INTO channel_reads (user_id, channel_id, read_seq) VALUES `)
	edges.WriteString(`INSERT INTO graph_follows (follower, followee) VALUES `)
	rargs := make([]any, 0, 3*(to-from))
	eargs := make([]any, 0, 2*(to-from))
	for i := from; i < to; i++ {
		f := follow(i)
		if i > from {
			reads.WriteString(", ")
			edges.WriteString(", ")
		}
		r, e := len(rargs), len(eargs)
		reads.WriteString("($" + strconv.Itoa(r+1) + ", $" + strconv.Itoa(r+2) + ", $" + strconv.Itoa(r+3) + ")")
		edges.WriteString("($" + strconv.Itoa(e+1) + ", $" + strconv.Itoa(e+2) + ")")
		rargs = append(rargs, f.User, f.ChannelID, readSeq)
		eargs = append(eargs, f.User, f.ChannelID)
	}
	reads.WriteString(` ON CONFLICT DO NOTHING`)
	edges.WriteString(` ON CONFLICT DO NOTHING`)
	if _, err := tx.ExecContext(ctx, reads.String(), rargs...); err != nil {
		return err
	}
	_, err := tx.ExecContext(ctx, edges.String(), eargs...)
	return err
}
