package storage_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/parley-im/parley/homeserver/hstest"
	"github.com/parley-im/parley/storage"
)

// Conformance of the reads a sync is built from: membership changes, room
// summaries, unread counts, state in a range, lazy-loaded members,
// membership histories, and the position the writer restarts from.
func TestConformanceSync(t *testing.T) {
	runStreamCases(t, []streamCase{
		{"membership changes", confMembershipChanges},
		{"room summaries", confRoomSummaries},
		{"unread counts with mentions", confUnreadCounts},
		{"state events in ranges", confStateEventsIn},
		{"member events", confMemberEvents},
		{"membership histories", confMembershipHistories},
		{"max position over all streams", confMaxPosition},
	})
}

func membershipStrings(ms []storage.Membership) []string {
	var out []string
	for _, m := range ms {
		out = append(out, fmt.Sprintf("%s %s@%d forgotten=%v", m.RoomID, m.Membership, m.Pos, m.Forgotten))
	}
	return out
}

func confMembershipChanges(t *testing.T, ctx context.Context, s *storage.Store) {
	seedRooms(t, s)
	invite := memberEv(11, "!b:x", "@v:x", "invite")
	invite.Sender = "@q:x"
	insertEvents(t, s, []string{"!c:x"},
		evAt(9, "!c:x", "m.room.create", sk(""), "@v:x"),
		memberEv(10, "!c:x", "@v:x", "join"),
		invite,                           // pos 11
		msgEv(12, "!c:x", "@v:x", false), // not a membership change
		memberEv(13, "!c:x", "@v:x", "leave"),
	)
	cases := []struct {
		since, upto int64
		want        []string
	}{
		{0, 20, []string{"!a:x join@2 forgotten=false", "!b:x invite@11 forgotten=false", "!c:x leave@13 forgotten=false"}},
		{2, 11, []string{"!b:x invite@11 forgotten=false"}},
		{0, 10, []string{"!a:x join@2 forgotten=false"}}, // !c's latest change is after upto
		{13, 20, nil},
	}
	for _, c := range cases {
		got, err := s.MembershipChanges(ctx, "@v:x", c.since, c.upto)
		if err != nil {
			t.Fatal(err)
		}
		if gotS := membershipStrings(got); !slices.Equal(gotS, c.want) {
			t.Errorf("MembershipChanges(@v, %d, %d) = %q, want %q", c.since, c.upto, gotS, c.want)
		}
	}
	if err := s.SetForgotten(ctx, "!c:x", "@v:x"); err != nil {
		t.Fatal(err)
	}
	if err := s.SetForgotten(ctx, "!nowhere:x", "@v:x"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("SetForgotten(unknown room) = %v, want ErrNotFound", err)
	}
	got, err := s.MembershipChanges(ctx, "@v:x", 12, 20)
	if err != nil {
		t.Fatal(err)
	}
	if gotS := membershipStrings(got); !slices.Equal(gotS, []string{"!c:x leave@13 forgotten=true"}) {
		t.Errorf("after forget = %q, want the leave marked forgotten", gotS)
	}
	// Joining again un-forgets the room.
	insertEvents(t, s, nil, memberEv(14, "!c:x", "@v:x", "join"))
	got, err = s.MembershipChanges(ctx, "@v:x", 13, 20)
	if err != nil {
		t.Fatal(err)
	}
	if gotS := membershipStrings(got); !slices.Equal(gotS, []string{"!c:x join@14 forgotten=false"}) {
		t.Errorf("after rejoin = %q, want a join that is not forgotten", gotS)
	}
}

func confRoomSummaries(t *testing.T, ctx context.Context, s *storage.Store) {
	evs := []storage.Event{evAt(1, "!s:x", "m.room.create", sk(""), "@v:x"), memberEv(2, "!s:x", "@v:x", "join")}
	for i := 1; i <= 6; i++ {
		evs = append(evs, memberEv(int64(2+i), "!s:x", fmt.Sprintf("@u%d:x", i), "join"))
	}
	evs = append(evs, memberEv(9, "!s:x", "@inv:x", "invite"), memberEv(10, "!s:x", "@gone:x", "join"), memberEv(11, "!s:x", "@gone:x", "leave"),
		evAt(12, "!t:x", "m.room.create", sk(""), "@v:x"), memberEv(13, "!t:x", "@v:x", "join"), memberEv(14, "!t:x", "@inv:x", "invite"))
	insertEvents(t, s, []string{"!s:x", "!t:x"}, evs...)
	cases := []struct {
		viewer string
		room   string
		want   storage.Summary
	}{
		{"@v:x", "!s:x", storage.Summary{Joined: 7, Invited: 1, Heroes: []string{"@u1:x", "@u2:x", "@u3:x", "@u4:x", "@u5:x"}}},
		{"@u1:x", "!s:x", storage.Summary{Joined: 7, Invited: 1, Heroes: []string{"@v:x", "@u2:x", "@u3:x", "@u4:x", "@u5:x"}}},
		{"@v:x", "!t:x", storage.Summary{Joined: 1, Invited: 1, Heroes: []string{"@inv:x"}}},
		{"@v:x", "!unknown:x", storage.Summary{}},
	}
	for _, c := range cases {
		got, err := s.RoomSummaries(ctx, c.viewer, []string{c.room})
		if err != nil {
			t.Fatal(err)
		}
		sum := got[c.room]
		if sum == nil || sum.Joined != c.want.Joined || sum.Invited != c.want.Invited || !slices.Equal(sum.Heroes, c.want.Heroes) {
			t.Errorf("RoomSummaries(%s)[%s] = %+v, want %+v", c.viewer, c.room, sum, c.want)
		}
	}
	if got, err := s.RoomSummaries(ctx, "@v:x", nil); err != nil || len(got) != 0 {
		t.Errorf("RoomSummaries(no rooms) = %v, %v, want empty", got, err)
	}
}

func confUnreadCounts(t *testing.T, ctx context.Context, s *storage.Store) {
	seedRooms(t, s)
	roomMention := msgEv(11, "!a:x", "@p:x", true)
	roomMention.RoomMention = true
	commitTx(t, s, func(ctx context.Context, tx *storage.WriteTx) error {
		for _, e := range []storage.Event{
			msgEv(9, "!a:x", "@p:x", true),   // notifies
			msgEv(10, "!a:x", "@p:x", false), // mentions @v only: still a notification, and a highlight
			roomMention,                      // @room: notification and highlight for everyone
			msgEv(12, "!a:x", "@v:x", true),  // own message: never counted
			msgEv(13, "!a:x", "@p:x", false), // silent
			msgEv(14, "!a:x", "@p:x", true),  // mentions someone else: a notification only
			msgEv(15, "!b:x", "@q:x", true),  // another room
		} {
			if err := tx.InsertEvent(ctx, &e, []byte(`{}`)); err != nil {
				return err
			}
		}
		if err := tx.InsertMentions(ctx, "!a:x", 10, []string{"@v:x"}); err != nil {
			return err
		}
		return tx.InsertMentions(ctx, "!a:x", 14, []string{"@q:x", "@q:x"}) // duplicates are ignored
	})
	check := func(t *testing.T, what, user string, upto int64, want map[string]storage.Unread) {
		t.Helper()
		got, err := s.UnreadCounts(ctx, user, []string{"!a:x", "!b:x"}, upto)
		if err != nil {
			t.Fatal(err)
		}
		for _, room := range []string{"!a:x", "!b:x"} {
			if got[room] != want[room] {
				t.Errorf("%s: UnreadCounts(%s, upto %d)[%s] = %+v, want %+v", what, user, upto, room, got[room], want[room])
			}
		}
	}
	check(t, "all", "@v:x", 20, map[string]storage.Unread{"!a:x": {Notifications: 4, Highlights: 2}, "!b:x": {Notifications: 1}})
	check(t, "up to the @room", "@v:x", 11, map[string]storage.Unread{"!a:x": {Notifications: 3, Highlights: 2}})
	check(t, "the sender's own view", "@p:x", 20, map[string]storage.Unread{"!a:x": {Notifications: 1}, "!b:x": {Notifications: 1}})
	check(t, "the other mention", "@q:x", 14, map[string]storage.Unread{"!a:x": {Notifications: 4, Highlights: 2}})

	putReceipt := func(typ string, eventPos, pos int64) {
		commitTx(t, s, func(ctx context.Context, tx *storage.WriteTx) error {
			return tx.PutReceipt(ctx, storage.Receipt{RoomID: "!a:x", UserID: "@v:x", Type: typ, EventID: fmt.Sprintf("$e%d", eventPos), EventPos: eventPos, TS: 1, Pos: pos})
		})
	}
	putReceipt("m.read", 10, 16)
	check(t, "after m.read of the mention", "@v:x", 20, map[string]storage.Unread{"!a:x": {Notifications: 2, Highlights: 1}, "!b:x": {Notifications: 1}})
	putReceipt("m.read.private", 11, 17)
	check(t, "after a later private receipt", "@v:x", 20, map[string]storage.Unread{"!a:x": {Notifications: 1}, "!b:x": {Notifications: 1}})

	t.Run("redacted mention", func(t *testing.T) {
		insertEvents(t, s, nil, msgEv(18, "!a:x", "@p:x", false))
		commitTx(t, s, func(ctx context.Context, tx *storage.WriteTx) error {
			return tx.InsertMentions(ctx, "!a:x", 18, []string{"@v:x"})
		})
		check(t, "with a new mention", "@v:x", 20, map[string]storage.Unread{"!a:x": {Notifications: 2, Highlights: 1}, "!b:x": {Notifications: 1}})
		commitTx(t, s, func(ctx context.Context, tx *storage.WriteTx) error {
			return tx.Redact(ctx, "$e18", []byte(`{}`), []byte(`{"content":{}}`), "$e19", []byte(`{}`))
		})
		check(t, "after its redaction", "@v:x", 20, map[string]storage.Unread{"!a:x": {Notifications: 1}, "!b:x": {Notifications: 1}})
	})
}

func confStateEventsIn(t *testing.T, ctx context.Context, s *storage.Store) {
	seedRooms(t, s)
	insertEvents(t, s, nil,
		evAt(9, "!a:x", "m.room.name", sk(""), "@v:x"),
		msgEv(10, "!a:x", "@v:x", true),
		evAt(11, "!a:x", "m.room.topic", sk(""), "@v:x"),
		evAt(12, "!a:x", "m.room.name", sk(""), "@v:x"),
		evAt(13, "!b:x", "m.room.topic", sk(""), "@q:x"),
	)
	cases := []struct {
		bounds []storage.RoomBound
		want   []string
	}{
		{[]storage.RoomBound{{RoomID: "!a:x", Since: 8, Upto: 12}}, []string{"$e9", "$e11", "$e12"}},
		{[]storage.RoomBound{{RoomID: "!a:x", Since: 9, Upto: 11}}, []string{"$e11"}},
		{[]storage.RoomBound{{RoomID: "!a:x", Since: 0, Upto: 3}, {RoomID: "!b:x", Since: 0, Upto: 20}}, []string{"$e1", "$e2", "$e3", "$e7", "$e8", "$e13"}},
		{[]storage.RoomBound{{RoomID: "!a:x", Since: 12, Upto: 20}}, nil},
		{nil, nil},
	}
	for _, c := range cases {
		got, err := s.StateEventsIn(ctx, c.bounds)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(ids(got), c.want) {
			t.Errorf("StateEventsIn(%+v) = %v, want %v", c.bounds, ids(got), c.want)
		}
	}
}

func confMemberEvents(t *testing.T, ctx context.Context, s *storage.Store) {
	seedRooms(t, s)
	cases := []struct {
		pairs []storage.RoomUser
		want  []string
	}{
		{[]storage.RoomUser{{RoomID: "!a:x", UserID: "@p:x"}, {RoomID: "!b:x", UserID: "@q:x"}, {RoomID: "!a:x", UserID: "@l:x"}}, []string{"$e3", "$e6", "$e8"}},
		{[]storage.RoomUser{{RoomID: "!a:x", UserID: "@q:x"}, {RoomID: "!b:x", UserID: "@v:x"}}, nil}, // not members there
		{nil, nil},
	}
	for _, c := range cases {
		got, err := s.MemberEvents(ctx, c.pairs)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(ids(got), c.want) {
			t.Errorf("MemberEvents(%v) = %v, want %v", c.pairs, ids(got), c.want)
		}
	}
}

func confMembershipHistories(t *testing.T, ctx context.Context, s *storage.Store) {
	seedRooms(t, s)
	insertEvents(t, s, nil,
		evAt(9, "!a:x", "m.room.history_visibility", sk(""), "@v:x"),
		memberEv(10, "!a:x", "@l:x", "join"),
		evAt(11, "!a:x", "m.room.history_visibility", sk(""), "@v:x"),
		evAt(12, "!b:x", "m.room.history_visibility", sk(""), "@q:x"),
	)
	members, vis, err := s.MembershipHistories(ctx, "@l:x", []string{"!a:x", "!b:x"})
	if err != nil {
		t.Fatal(err)
	}
	wantMembers := map[string][]string{"!a:x": {"$e5", "$e6", "$e10"}}
	wantVis := map[string][]string{"!a:x": {"$e9", "$e11"}, "!b:x": {"$e12"}}
	for _, room := range []string{"!a:x", "!b:x"} {
		if !slices.Equal(ids(members[room]), wantMembers[room]) {
			t.Errorf("members[%s] = %v, want %v", room, ids(members[room]), wantMembers[room])
		}
		if !slices.Equal(ids(vis[room]), wantVis[room]) {
			t.Errorf("visibility[%s] = %v, want %v", room, ids(vis[room]), wantVis[room])
		}
		// The batched form agrees with the single-room one.
		m1, v1, err := s.MembershipHistory(ctx, room, "@l:x")
		if err != nil || !slices.Equal(ids(m1), ids(members[room])) || !slices.Equal(ids(v1), ids(vis[room])) {
			t.Errorf("MembershipHistory(%s) = %v %v %v, want the batched %v %v", room, ids(m1), ids(v1), err, ids(members[room]), ids(vis[room]))
		}
	}
	members, vis, err = s.MembershipHistories(ctx, "@l:x", nil)
	if err != nil || members == nil || vis == nil || len(members)+len(vis) != 0 {
		t.Errorf("MembershipHistories(no rooms) = %v, %v, %v, want two empty maps", members, vis, err)
	}
}

func confMaxPosition(t *testing.T, ctx context.Context, s *storage.Store) {
	steps := []struct {
		stream string
		write  func(ctx context.Context, tx *storage.WriteTx) error
		want   int64
	}{
		{"events", func(ctx context.Context, tx *storage.WriteTx) error {
			if err := tx.InsertRoom(ctx, storage.Room{RoomID: "!a:x", Version: "11", Creator: "@v:x", CreatedTS: 1}); err != nil {
				return err
			}
			e := evAt(3, "!a:x", "m.room.create", sk(""), "@v:x")
			return tx.InsertEvent(ctx, &e, []byte(`{}`))
		}, 3},
		{"receipts", func(ctx context.Context, tx *storage.WriteTx) error {
			return tx.PutReceipt(ctx, storage.Receipt{RoomID: "!a:x", UserID: "@v:x", Type: "m.read", EventID: "$e3", EventPos: 3, Pos: 5})
		}, 5},
		{"account data", func(ctx context.Context, tx *storage.WriteTx) error {
			return tx.PutAccountData(ctx, "@v:x", "", "m.direct", `{}`, 7)
		}, 7},
		{"to-device", func(ctx context.Context, tx *storage.WriteTx) error {
			return tx.InsertToDevice(ctx, storage.ToDevice{Pos: 9, UserID: "@v:x", DeviceID: "D", Sender: "@p:x", Type: "m.test", Content: `{}`})
		}, 9},
		{"presence", func(ctx context.Context, tx *storage.WriteTx) error {
			return tx.PutPresence(ctx, storage.Presence{UserID: "@v:x", State: "online", Pos: 11})
		}, 11},
		{"device lists", func(ctx context.Context, tx *storage.WriteTx) error {
			return tx.InsertDeviceListChange(ctx, "@v:x", 13)
		}, 13},
		{"events again", func(ctx context.Context, tx *storage.WriteTx) error {
			e := msgEv(14, "!a:x", "@v:x", true)
			return tx.InsertEvent(ctx, &e, []byte(`{}`))
		}, 14},
	}
	if got, err := s.MaxPosition(ctx); err != nil || got != 0 {
		t.Errorf("MaxPosition(empty) = %d, %v, want 0", got, err)
	}
	for _, st := range steps {
		commitTx(t, s, st.write)
		if got, err := s.MaxPosition(ctx); err != nil || got != st.want {
			t.Errorf("MaxPosition after %s = %d, %v, want %d", st.stream, got, err, st.want)
		}
	}

	t.Run("delivered to-device messages", func(t *testing.T) {
		insertToDevice(t, s, storage.ToDevice{Pos: 20, UserID: "@v:x", DeviceID: "D", Sender: "@p:x", Type: "m.test", Content: `{}`})
		if got := toDevicePositions(t, s, "@v:x", "D", 20, 20, 10); len(got) != 0 {
			t.Fatalf("ToDeviceFor(acked 20) = %v, want none", got)
		}
		if got, err := s.MaxPosition(ctx); err != nil || got < 20 {
			t.Errorf("MaxPosition after the delivered message at 20 was deleted = %d, %v, want at least 20", got, err)
		}
	})
}

// TestMigrationIdempotent: opening an already migrated database again runs
// no migration twice and keeps the data. It opens the same database more
// than once, so it cannot use forEachEngine's single store.
func TestMigrationIdempotent(t *testing.T) {
	ctx := context.Background()
	engines := []struct{ name, url, path string }{{name: "sqlite", path: filepath.Join(t.TempDir(), "p.db")}}
	if admin := os.Getenv("PARLEY_TEST_DATABASE_URL"); admin != "" {
		engines = append(engines, struct{ name, url, path string }{name: "postgres", url: hstest.NewPostgresDB(t, admin)})
	}
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			for round := 0; round < 3; round++ {
				s, err := storage.Open(ctx, e.url, e.path)
				if err != nil {
					t.Fatalf("open %d: %v", round, err)
				}
				user := fmt.Sprintf("@u%d:x", round)
				if err := s.CreateUser(ctx, storage.User{UserID: user, CreatedTS: 1}); err != nil {
					t.Errorf("open %d: CreateUser = %v", round, err)
				}
				for prev := 0; prev <= round; prev++ {
					if _, err := s.GetUser(ctx, fmt.Sprintf("@u%d:x", prev)); err != nil {
						t.Errorf("open %d: user of open %d = %v, want kept", round, prev, err)
					}
				}
				if err := s.Close(); err != nil {
					t.Errorf("close %d: %v", round, err)
				}
			}
		})
	}
}
