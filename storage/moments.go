package storage

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/parley-im/parley/moments"
)

// MomentStore implements moments.Store on the main database (schema 047).
type MomentStore struct{ s *Store }

// Moments returns the moments store.
func (s *Store) Moments() *MomentStore { return &MomentStore{s} }

var _ moments.Store = (*MomentStore)(nil)

// nextSeq takes the next value of the moments counter inside tx; the row
// lock serialises writers, which keeps the order of seq and commits alike.
func nextSeq(ctx context.Context, tx *sql.Tx) (int64, error) {
	var seq int64
	err := tx.QueryRowContext(ctx, `UPDATE moments_counter SET seq = seq + 1 WHERE id = 1 RETURNING seq`).Scan(&seq)
	if err != nil {
		return 0, fmt.Errorf("moments counter: %w", err)
	}
	return seq, nil
}

type momentContent struct {
	Text   string   `json:"text,omitempty"`
	Images []string `json:"images,omitempty"`
}

// inboxBatch is the rows one INSERT writes to moments_inbox (two
// parameters each: well under both engines' parameter limits).
const inboxBatch = 500

// AddPost stores a post: one row, plus one moments_inbox row per user in
// inbox (write fan-out), in one transaction.
func (m *MomentStore) AddPost(ctx context.Context, p moments.Post, inbox []string) (moments.Post, error) {
	body, _ := json.Marshal(momentContent{p.Text, p.Images}) // strings only: cannot fail
	users, _ := json.Marshal(orEmpty(p.Users))
	pushed := 0
	if inbox != nil {
		pushed, p.Pushed = 1, true
	}
	err := m.s.inTx(ctx, func(tx *sql.Tx) error {
		seq, err := nextSeq(ctx, tx)
		if err != nil {
			return err
		}
		p.Seq = seq
		if _, err := tx.ExecContext(ctx, `INSERT INTO moments_posts (seq, post_id, author, content, visibility, users, ts, pushed) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
			p.Seq, p.PostID, p.Author, string(body), string(p.Visibility), string(users), p.TS, pushed); err != nil {
			return fmt.Errorf("add moment: %w", err)
		}
		for len(inbox) > 0 {
			n := min(len(inbox), inboxBatch)
			var q strings.Builder
			q.WriteString(`INSERT INTO moments_inbox (user_id, seq) VALUES `)
			args := make([]any, 0, n+1)
			args = append(args, p.Seq)
			for i, u := range inbox[:n] {
				if i > 0 {
					q.WriteByte(',')
				}
				fmt.Fprintf(&q, "($%d, $1)", i+2)
				args = append(args, u)
			}
			if _, err := tx.ExecContext(ctx, q.String(), args...); err != nil {
				return fmt.Errorf("add moment inbox rows: %w", err)
			}
			inbox = inbox[n:]
		}
		return nil
	})
	return p, err
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

const momentCols = `seq, post_id, author, content, visibility, users, ts, pushed`

func scanMoment(sc interface{ Scan(...any) error }, p *moments.Post) error {
	var body, vis, users string
	var pushed int
	if err := sc.Scan(&p.Seq, &p.PostID, &p.Author, &body, &vis, &users, &p.TS, &pushed); err != nil {
		return err
	}
	var c momentContent
	if err := json.Unmarshal([]byte(body), &c); err != nil {
		return fmt.Errorf("moment %s content: %w", p.PostID, err)
	}
	if err := json.Unmarshal([]byte(users), &p.Users); err != nil {
		return fmt.Errorf("moment %s users: %w", p.PostID, err)
	}
	if len(p.Users) == 0 {
		p.Users = nil
	}
	p.Text, p.Images, p.Visibility, p.Pushed = c.Text, c.Images, moments.Visibility(vis), pushed != 0
	return nil
}

// GetPost reads one post, or moments.ErrNotFound.
func (m *MomentStore) GetPost(ctx context.Context, postID string) (moments.Post, error) {
	var p moments.Post
	err := scanMoment(m.s.read.QueryRowContext(ctx, `SELECT `+momentCols+` FROM moments_posts WHERE post_id = $1`, postID), &p)
	if errors.Is(err, sql.ErrNoRows) {
		return p, moments.ErrNotFound
	}
	if err != nil {
		return p, fmt.Errorf("get moment %s: %w", postID, err)
	}
	return p, nil
}

// DeletePost removes a post and everything hanging on it, at once.
func (m *MomentStore) DeletePost(ctx context.Context, postID string) error {
	return m.s.inTx(ctx, func(tx *sql.Tx) error {
		var seq int64
		err := tx.QueryRowContext(ctx, `SELECT seq FROM moments_posts WHERE post_id = $1`, postID).Scan(&seq)
		if errors.Is(err, sql.ErrNoRows) {
			return moments.ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("delete moment %s: %w", postID, err)
		}
		for _, q := range []struct {
			sql string
			arg any
		}{
			{`DELETE FROM moments_inbox WHERE seq = $1`, seq},
			{`DELETE FROM moments_likes WHERE post_id = $1`, postID},
			{`DELETE FROM moments_comments WHERE post_id = $1`, postID},
			{`DELETE FROM moments_notifications WHERE post_id = $1`, postID},
			{`DELETE FROM moments_posts WHERE seq = $1`, seq},
		} {
			if _, err := tx.ExecContext(ctx, q.sql, q.arg); err != nil {
				return fmt.Errorf("delete moment %s: %w", postID, err)
			}
		}
		return nil
	})
}

// noUpper is the "before" of a first page.
const noUpper = int64(1<<62 - 1)

func (m *MomentStore) queryMoments(ctx context.Context, what, q string, args ...any) ([]moments.Post, error) {
	rows, err := m.s.read.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer rows.Close()
	var out []moments.Post
	for rows.Next() {
		var p moments.Post
		if err := scanMoment(rows, &p); err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// PostsBy lists authors' posts in (after, before), newest first: one
// query on the posts' primary key, filtered by author (read fan-out).
func (m *MomentStore) PostsBy(ctx context.Context, authors []string, after, before int64, limit int, pulledOnly bool) ([]moments.Post, error) {
	if len(authors) == 0 {
		return nil, nil
	}
	if before <= 0 {
		before = noUpper
	}
	in, list := m.authorsIn(4, authors)
	pulled := ""
	if pulledOnly {
		pulled = " AND pushed = 0"
	}
	// The inner query reads only the (author, seq) index: the rows of the
	// page are fetched once it is chosen.
	return m.queryMoments(ctx, "moments by authors", `SELECT `+momentCols+` FROM moments_posts WHERE seq IN (
		SELECT seq FROM moments_posts WHERE seq > $1 AND seq < $2 AND author `+in+pulled+` ORDER BY seq DESC LIMIT $3)
		ORDER BY seq DESC`, after, before, limit, list)
}

// authorsIn is an IN condition over up to thousands of user IDs as one
// parameter $n: a text array on PostgreSQL, a JSON array on SQLite. A
// parameter per ID cost SQLite 370 ms for 5,000 friends (it looks each
// named parameter up by name), against a few ms for one JSON array.
func (m *MomentStore) authorsIn(n int, ids []string) (string, any) {
	if m.s.postgres {
		return fmt.Sprintf("= ANY($%d::text[])", n), ids
	}
	b, _ := json.Marshal(ids) // strings only: cannot fail
	return fmt.Sprintf("IN (SELECT value FROM json_each($%d))", n), string(b)
}

// InboxPosts lists the posts in user's feed inbox (write fan-out).
func (m *MomentStore) InboxPosts(ctx context.Context, user string, after, before int64, limit int) ([]moments.Post, error) {
	if before <= 0 {
		before = noUpper
	}
	return m.queryMoments(ctx, "moments inbox", `SELECT p.seq, p.post_id, p.author, p.content, p.visibility, p.users, p.ts, p.pushed
		FROM moments_inbox i JOIN moments_posts p ON p.seq = i.seq
		WHERE i.user_id = $1 AND i.seq > $2 AND i.seq < $3 ORDER BY i.seq DESC LIMIT $4`, user, after, before, limit)
}

// Reactions lists the posts' likes and comments: two queries.
func (m *MomentStore) Reactions(ctx context.Context, postIDs []string) ([]moments.Like, []moments.Comment, error) {
	if len(postIDs) == 0 {
		return nil, nil, nil
	}
	args := make([]any, len(postIDs))
	for i, id := range postIDs {
		args[i] = id
	}
	in := placeholders(1, len(postIDs))
	rows, err := m.s.read.QueryContext(ctx, `SELECT post_id, user_id, ts FROM moments_likes WHERE post_id IN (`+in+`) ORDER BY ts, user_id`, args...)
	if err != nil {
		return nil, nil, fmt.Errorf("moment likes: %w", err)
	}
	var likes []moments.Like
	for rows.Next() {
		var l moments.Like
		if err := rows.Scan(&l.PostID, &l.UserID, &l.TS); err != nil {
			rows.Close()
			return nil, nil, fmt.Errorf("moment likes: %w", err)
		}
		likes = append(likes, l)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("moment likes: %w", err)
	}
	rows, err = m.s.read.QueryContext(ctx, `SELECT `+momentCommentCols+` FROM moments_comments WHERE post_id IN (`+in+`) ORDER BY seq`, args...)
	if err != nil {
		return nil, nil, fmt.Errorf("moment comments: %w", err)
	}
	defer rows.Close()
	var comments []moments.Comment
	for rows.Next() {
		var c moments.Comment
		if err := scanMomentComment(rows, &c); err != nil {
			return nil, nil, fmt.Errorf("moment comments: %w", err)
		}
		comments = append(comments, c)
	}
	return likes, comments, rows.Err()
}

const momentCommentCols = `seq, comment_id, post_id, author, body, reply_to, reply_to_user, ts`

func scanMomentComment(sc interface{ Scan(...any) error }, c *moments.Comment) error {
	return sc.Scan(&c.Seq, &c.CommentID, &c.PostID, &c.Author, &c.Text, &c.ReplyTo, &c.ReplyToUser, &c.TS)
}

func insertNotification(ctx context.Context, tx *sql.Tx, n moments.Notification) error {
	seq, err := nextSeq(ctx, tx)
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO moments_notifications (seq, user_id, kind, post_id, from_user, comment_id, body, ts) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		seq, n.UserID, n.Kind, n.PostID, n.From, n.CommentID, n.Text, n.TS)
	if err != nil {
		return fmt.Errorf("add moments notification: %w", err)
	}
	return nil
}

// AddLike stores a like if the post exists and the user has not liked it.
func (m *MomentStore) AddLike(ctx context.Context, l moments.Like, n *moments.Notification) (bool, error) {
	var added bool
	err := m.s.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO moments_likes (post_id, user_id, ts)
			SELECT $1, $2, CAST($3 AS BIGINT) WHERE EXISTS (SELECT 1 FROM moments_posts WHERE post_id = $1)
			ON CONFLICT (post_id, user_id) DO NOTHING`, l.PostID, l.UserID, l.TS)
		if err != nil {
			return fmt.Errorf("like moment %s: %w", l.PostID, err)
		}
		if k, _ := res.RowsAffected(); k == 0 {
			var one int
			err := tx.QueryRowContext(ctx, `SELECT 1 FROM moments_posts WHERE post_id = $1`, l.PostID).Scan(&one)
			if errors.Is(err, sql.ErrNoRows) {
				return moments.ErrNotFound
			}
			return err // nil: liked already
		}
		added = true
		if n != nil {
			return insertNotification(ctx, tx, *n)
		}
		return nil
	})
	return added, err
}

// RemoveLike drops a like and the notification it made.
func (m *MomentStore) RemoveLike(ctx context.Context, postID, userID string) (bool, error) {
	var removed bool
	err := m.s.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM moments_likes WHERE post_id = $1 AND user_id = $2`, postID, userID)
		if err != nil {
			return fmt.Errorf("unlike moment %s: %w", postID, err)
		}
		k, _ := res.RowsAffected()
		removed = k > 0
		_, err = tx.ExecContext(ctx, `DELETE FROM moments_notifications WHERE post_id = $1 AND from_user = $2 AND kind = $3`, postID, userID, moments.KindLike)
		if err != nil {
			return fmt.Errorf("unlike moment %s: %w", postID, err)
		}
		return nil
	})
	return removed, err
}

// AddComment stores a comment if its post still exists, with its
// notifications, in one transaction.
func (m *MomentStore) AddComment(ctx context.Context, c moments.Comment, ns []moments.Notification) (moments.Comment, error) {
	err := m.s.inTx(ctx, func(tx *sql.Tx) error {
		seq, err := nextSeq(ctx, tx)
		if err != nil {
			return err
		}
		c.Seq = seq
		res, err := tx.ExecContext(ctx, `INSERT INTO moments_comments (seq, comment_id, post_id, author, body, reply_to, reply_to_user, ts)
			SELECT CAST($1 AS BIGINT), $2, $3, $4, $5, $6, $7, CAST($8 AS BIGINT) WHERE EXISTS (SELECT 1 FROM moments_posts WHERE post_id = $3)`,
			c.Seq, c.CommentID, c.PostID, c.Author, c.Text, c.ReplyTo, c.ReplyToUser, c.TS)
		if err != nil {
			return fmt.Errorf("comment on moment %s: %w", c.PostID, err)
		}
		if k, _ := res.RowsAffected(); k == 0 {
			return moments.ErrNotFound
		}
		for _, n := range ns {
			if err := insertNotification(ctx, tx, n); err != nil {
				return err
			}
		}
		return nil
	})
	return c, err
}

// GetComment reads a comment, or moments.ErrNotFound.
func (m *MomentStore) GetComment(ctx context.Context, commentID string) (moments.Comment, error) {
	var c moments.Comment
	err := scanMomentComment(m.s.read.QueryRowContext(ctx, `SELECT `+momentCommentCols+` FROM moments_comments WHERE comment_id = $1`, commentID), &c)
	if errors.Is(err, sql.ErrNoRows) {
		return c, moments.ErrNotFound
	}
	if err != nil {
		return c, fmt.Errorf("get moment comment %s: %w", commentID, err)
	}
	return c, nil
}

// DeleteComment drops a comment and the notifications it made.
func (m *MomentStore) DeleteComment(ctx context.Context, commentID string) error {
	return m.s.inTx(ctx, func(tx *sql.Tx) error {
		for _, q := range []string{
			`DELETE FROM moments_notifications WHERE comment_id = $1`,
			`DELETE FROM moments_comments WHERE comment_id = $1`,
		} {
			if _, err := tx.ExecContext(ctx, q, commentID); err != nil {
				return fmt.Errorf("delete moment comment %s: %w", commentID, err)
			}
		}
		return nil
	})
}

// Notifications lists user's notifications below before, newest first.
func (m *MomentStore) Notifications(ctx context.Context, user string, before int64, limit int) ([]moments.Notification, error) {
	if before <= 0 {
		before = noUpper
	}
	rows, err := m.s.read.QueryContext(ctx, `SELECT seq, user_id, kind, post_id, from_user, comment_id, body, ts FROM moments_notifications
		WHERE user_id = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3`, user, before, limit)
	if err != nil {
		return nil, fmt.Errorf("moments notifications of %s: %w", user, err)
	}
	defer rows.Close()
	out := []moments.Notification{}
	for rows.Next() {
		var n moments.Notification
		if err := rows.Scan(&n.Seq, &n.UserID, &n.Kind, &n.PostID, &n.From, &n.CommentID, &n.Text, &n.TS); err != nil {
			return nil, fmt.Errorf("moments notifications of %s: %w", user, err)
		}
		out = append(out, n)
	}
	return out, rows.Err()
}

// CountNotifications counts user's notifications after a sequence.
func (m *MomentStore) CountNotifications(ctx context.Context, user string, after int64) (int, error) {
	var n int
	err := m.s.read.QueryRowContext(ctx, `SELECT COUNT(*) FROM moments_notifications WHERE user_id = $1 AND seq > $2`, user, after).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count moments notifications of %s: %w", user, err)
	}
	return n, nil
}

// Reads returns user's read markers.
func (m *MomentStore) Reads(ctx context.Context, user string) (int64, int64, error) {
	var feed, notes int64
	err := m.s.read.QueryRowContext(ctx, `SELECT feed_seq, notes_seq FROM moments_reads WHERE user_id = $1`, user).Scan(&feed, &notes)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, fmt.Errorf("moments reads of %s: %w", user, err)
	}
	return feed, notes, nil
}

// SetReads raises user's read markers; neither ever goes back.
func (m *MomentStore) SetReads(ctx context.Context, user string, feed, notes int64) error {
	_, err := m.s.write.ExecContext(ctx, `INSERT INTO moments_reads (user_id, feed_seq, notes_seq) VALUES ($1, $2, $3)
		ON CONFLICT (user_id) DO UPDATE SET
			feed_seq = CASE WHEN excluded.feed_seq > moments_reads.feed_seq THEN excluded.feed_seq ELSE moments_reads.feed_seq END,
			notes_seq = CASE WHEN excluded.notes_seq > moments_reads.notes_seq THEN excluded.notes_seq ELSE moments_reads.notes_seq END`,
		user, feed, notes)
	if err != nil {
		return fmt.Errorf("set moments reads of %s: %w", user, err)
	}
	return nil
}

// NewestSeq is the moments counter.
func (m *MomentStore) NewestSeq(ctx context.Context) (int64, error) {
	var seq int64
	if err := m.s.read.QueryRowContext(ctx, `SELECT seq FROM moments_counter WHERE id = 1`).Scan(&seq); err != nil {
		return 0, fmt.Errorf("moments counter: %w", err)
	}
	return seq, nil
}

// Size is the bytes the moments tables take with their indexes (PostgreSQL)
// or the whole database file (SQLite: pages × page size). Benchmarks use it
// for the storage a post costs.
func (m *MomentStore) Size(ctx context.Context) (int64, error) {
	var n int64
	var err error
	if m.s.postgres {
		err = m.s.read.QueryRowContext(ctx, `SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0) FROM pg_class c
			WHERE c.relkind = 'r' AND c.relname LIKE 'moments%'`).Scan(&n)
	} else {
		err = m.s.read.QueryRowContext(ctx, `SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()`).Scan(&n)
	}
	if err != nil {
		return 0, fmt.Errorf("moments size: %w", err)
	}
	return n, nil
}

// PullAuthors lists the authors of posts without inbox rows (the hybrid
// fan-out's big authors), read once at start.
func (m *MomentStore) PullAuthors(ctx context.Context) ([]string, error) {
	rows, err := m.s.read.QueryContext(ctx, `SELECT DISTINCT author FROM moments_posts WHERE pushed = 0`)
	if err != nil {
		return nil, fmt.Errorf("moments pull authors: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var a string
		if err := rows.Scan(&a); err != nil {
			return nil, fmt.Errorf("moments pull authors: %w", err)
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// Rows counts the rows of posts and feed inboxes; benchmarks use it for the
// rows a post writes.
func (m *MomentStore) Rows(ctx context.Context) (int64, error) {
	var n int64
	err := m.s.read.QueryRowContext(ctx, `SELECT (SELECT COUNT(*) FROM moments_posts) + (SELECT COUNT(*) FROM moments_inbox)`).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("moments rows: %w", err)
	}
	return n, nil
}
