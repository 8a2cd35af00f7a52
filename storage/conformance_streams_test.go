package storage_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/parley-im/parley/storage"
)

// The stream half of the conformance suite: receipts, account data,
// to-device, presence and device lists. Every case gets a fresh store on each engine; fixtures
// go through WriteTx exactly as the rooms writer writes them, with
// positions assigned here, increasing.

// streamCase is one conformance case.
type streamCase struct {
	name string
	run  func(t *testing.T, ctx context.Context, s *storage.Store)
}

func runStreamCases(t *testing.T, cases []streamCase) {
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			forEachEngine(t, func(t *testing.T, s *storage.Store) { c.run(t, context.Background(), s) })
		})
	}
}

func TestConformanceStreams(t *testing.T) {
	runStreamCases(t, []streamCase{
		{"receipts", confReceipts},
		{"account data", confAccountData},
		{"to-device", confToDevice},
		{"presence", confPresence},
		{"device list changes", confDeviceLists},
		{"user notices", confUserNotices},
		{"current state", confCurrentState},
	})
}

// commitTx runs f in one write transaction and commits it.
func commitTx(t *testing.T, s *storage.Store, f func(ctx context.Context, tx *storage.WriteTx) error) {
	t.Helper()
	ctx := context.Background()
	tx, err := s.BeginWrite(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := f(ctx, tx); err != nil {
		tx.Rollback()
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

// evAt is an event at pos; its ID is "$e<pos>".
func evAt(pos int64, room, typ string, stateKey *string, sender string) storage.Event {
	return storage.Event{Pos: pos, EventID: fmt.Sprintf("$e%d", pos), RoomID: room, Type: typ, StateKey: stateKey,
		Sender: sender, Depth: pos, OriginTS: 1000 + pos, Client: []byte(`{"content":{}}`)}
}

func memberEv(pos int64, room, user, membership string) storage.Event {
	e := evAt(pos, room, "m.room.member", sk(user), user)
	e.Membership = membership
	e.Client = []byte(`{"content":{"membership":"` + membership + `"}}`)
	return e
}

func msgEv(pos int64, room, sender string, notify bool) storage.Event {
	e := evAt(pos, room, "m.room.message", nil, sender)
	e.Notify = notify
	return e
}

// insertEvents creates the rooms named and appends evs in one batch.
func insertEvents(t *testing.T, s *storage.Store, newRooms []string, evs ...storage.Event) {
	t.Helper()
	commitTx(t, s, func(ctx context.Context, tx *storage.WriteTx) error {
		for _, r := range newRooms {
			if err := tx.InsertRoom(ctx, storage.Room{RoomID: r, Version: "11", Creator: "@v:x", CreatedTS: 1}); err != nil {
				return err
			}
		}
		for i := range evs {
			if err := tx.InsertEvent(ctx, &evs[i], []byte(`{}`)); err != nil {
				return err
			}
		}
		return nil
	})
}

// seedRooms builds positions 1-8: in !a:x, @v and @p are joined, @i is
// invited and @l joined then left; in !b:x only @q is joined.
func seedRooms(t *testing.T, s *storage.Store) {
	t.Helper()
	insertEvents(t, s, []string{"!a:x", "!b:x"},
		evAt(1, "!a:x", "m.room.create", sk(""), "@v:x"),
		memberEv(2, "!a:x", "@v:x", "join"),
		memberEv(3, "!a:x", "@p:x", "join"),
		memberEv(4, "!a:x", "@i:x", "invite"),
		memberEv(5, "!a:x", "@l:x", "join"),
		memberEv(6, "!a:x", "@l:x", "leave"),
		evAt(7, "!b:x", "m.room.create", sk(""), "@q:x"),
		memberEv(8, "!b:x", "@q:x", "join"),
	)
}

func rcpt(r storage.Receipt) string {
	return fmt.Sprintf("%s %s %s thread=%q %s@%d pos=%d", r.RoomID, r.UserID, r.Type, r.ThreadID, r.EventID, r.EventPos, r.Pos)
}

func confReceipts(t *testing.T, ctx context.Context, s *storage.Store) {
	seedRooms(t, s)
	insertEvents(t, s, nil, msgEv(9, "!a:x", "@p:x", true), msgEv(10, "!a:x", "@p:x", true))
	put := []storage.Receipt{
		{RoomID: "!a:x", UserID: "@p:x", Type: "m.read", EventID: "$e9", EventPos: 9, TS: 1, Pos: 11},
		{RoomID: "!a:x", UserID: "@p:x", Type: "m.read", EventID: "$e10", EventPos: 10, TS: 2, Pos: 12}, // replaces pos 11
		{RoomID: "!a:x", UserID: "@p:x", Type: "m.read.private", EventID: "$e10", EventPos: 10, TS: 3, Pos: 13},
		{RoomID: "!a:x", UserID: "@v:x", Type: "m.read.private", EventID: "$e10", EventPos: 10, TS: 4, Pos: 14},
		{RoomID: "!b:x", UserID: "@q:x", Type: "m.read", EventID: "$e8", EventPos: 8, TS: 5, Pos: 15},
		{RoomID: "!a:x", UserID: "@p:x", Type: "m.read", ThreadID: "$e9", EventID: "$e9", EventPos: 9, TS: 6, Pos: 16},
	}
	commitTx(t, s, func(ctx context.Context, tx *storage.WriteTx) error {
		for _, r := range put {
			if err := tx.PutReceipt(ctx, r); err != nil {
				return err
			}
		}
		return nil
	})
	p := func(i int) string { return rcpt(put[i]) }
	cases := []struct {
		name        string
		viewer      string
		rooms       []string
		since, upto int64
		want        []string
	}{
		{"newer receipt replaced the older, others' private hidden", "@v:x", []string{"!a:x"}, 0, 20, []string{p(1), p(3), p(5)}},
		{"own private receipts shown", "@p:x", []string{"!a:x"}, 0, 20, []string{p(1), p(2), p(5)}},
		{"only positions in (since, upto]", "@v:x", []string{"!a:x"}, 12, 14, []string{p(3)}},
		{"replaced position is gone", "@v:x", []string{"!a:x"}, 0, 11, nil},
		{"only the rooms asked", "@v:x", []string{"!a:x", "!b:x"}, 14, 15, []string{p(4)}},
		{"no rooms", "@v:x", nil, 0, 20, nil},
	}
	for _, c := range cases {
		got, err := s.ReceiptsSince(ctx, c.viewer, c.rooms, c.since, c.upto)
		if err != nil {
			t.Fatal(err)
		}
		var gotS []string
		for _, r := range got {
			gotS = append(gotS, rcpt(r))
		}
		if !slices.Equal(gotS, c.want) {
			t.Errorf("%s: ReceiptsSince(%s, %v, %d, %d) = %q, want %q", c.name, c.viewer, c.rooms, c.since, c.upto, gotS, c.want)
		}
	}
	// ReceiptPos reads the main-timeline receipt inside a batch.
	tx, err := s.BeginWrite(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	for _, c := range []struct {
		user, typ, thread string
		want              int64
	}{{"@p:x", "m.read", "", 10}, {"@p:x", "m.read.private", "", 10}, {"@v:x", "m.read", "", 0},
		{"@p:x", "m.read", "$e9", 9}, {"@p:x", "m.read", "main", 0}} {
		if got, err := tx.ReceiptPos(ctx, "!a:x", c.user, c.typ, c.thread); err != nil || got != c.want {
			t.Errorf("ReceiptPos(%s, %s, %q) = %d, %v, want %d", c.user, c.typ, c.thread, got, err, c.want)
		}
	}
}

func confAccountData(t *testing.T, ctx context.Context, s *storage.Store) {
	puts := []struct {
		user, room, typ, content string
		pos                      int64
	}{
		{"@v:x", "", "m.direct", `{"v":1}`, 1},
		{"@v:x", "!a:x", "m.tag", `{"tags":{}}`, 2},
		{"@v:x", "", "org.example", `{"e":1}`, 3},
		{"@p:x", "", "m.direct", `{"p":1}`, 4},
		{"@v:x", "", "m.direct", `{"v":2}`, 5}, // upsert: new content, new position
	}
	commitTx(t, s, func(ctx context.Context, tx *storage.WriteTx) error {
		for _, p := range puts {
			if err := tx.PutAccountData(ctx, p.user, p.room, p.typ, p.content, p.pos); err != nil {
				return err
			}
		}
		return nil
	})
	gets := []struct {
		user, room, typ string
		want            string
		err             error
	}{
		{"@v:x", "", "m.direct", `{"v":2}`, nil},
		{"@p:x", "", "m.direct", `{"p":1}`, nil},
		{"@v:x", "!a:x", "m.tag", `{"tags":{}}`, nil},
		{"@v:x", "", "m.tag", "", storage.ErrNotFound},     // room data is not global data
		{"@v:x", "!b:x", "m.tag", "", storage.ErrNotFound}, // nor another room's
		{"@q:x", "", "m.direct", "", storage.ErrNotFound},  // nor another user's
	}
	for _, g := range gets {
		got, err := s.GetAccountData(ctx, g.user, g.room, g.typ)
		if !errors.Is(err, g.err) || got != g.want {
			t.Errorf("GetAccountData(%s, %q, %s) = %q, %v, want %q, %v", g.user, g.room, g.typ, got, err, g.want, g.err)
		}
	}
	ranges := []struct {
		user        string
		since, upto int64
		want        []string
	}{
		{"@v:x", 0, 10, []string{"!a:x/m.tag@2", "/org.example@3", "/m.direct@5"}},
		{"@v:x", 2, 3, []string{"/org.example@3"}},
		{"@v:x", 0, 4, []string{"!a:x/m.tag@2", "/org.example@3"}}, // the replaced m.direct@1 is gone
		{"@v:x", 5, 10, nil},
		{"@p:x", 0, 10, []string{"/m.direct@4"}},
	}
	for _, r := range ranges {
		got, err := s.AccountDataSince(ctx, r.user, r.since, r.upto)
		if err != nil {
			t.Fatal(err)
		}
		var gotS []string
		for _, a := range got {
			gotS = append(gotS, fmt.Sprintf("%s/%s@%d", a.RoomID, a.Type, a.Pos))
		}
		if !slices.Equal(gotS, r.want) {
			t.Errorf("AccountDataSince(%s, %d, %d) = %q, want %q", r.user, r.since, r.upto, gotS, r.want)
		}
	}
}

func toDevicePositions(t *testing.T, s *storage.Store, user, device string, acked, upto int64, limit int) []int64 {
	t.Helper()
	msgs, err := s.ToDeviceFor(context.Background(), user, device, acked, upto, limit)
	if err != nil {
		t.Fatal(err)
	}
	var out []int64
	for _, m := range msgs {
		if m.UserID != user || m.DeviceID != device {
			t.Errorf("ToDeviceFor(%s, %s) returned a message for %s/%s", user, device, m.UserID, m.DeviceID)
		}
		out = append(out, m.Pos)
	}
	return out
}

func insertToDevice(t *testing.T, s *storage.Store, msgs ...storage.ToDevice) {
	t.Helper()
	commitTx(t, s, func(ctx context.Context, tx *storage.WriteTx) error {
		for _, m := range msgs {
			if err := tx.InsertToDevice(ctx, m); err != nil {
				return err
			}
		}
		return nil
	})
}

func confToDevice(t *testing.T, ctx context.Context, s *storage.Store) {
	var msgs []storage.ToDevice
	for pos := int64(1); pos <= 5; pos++ {
		msgs = append(msgs, storage.ToDevice{Pos: pos, UserID: "@v:x", DeviceID: "D1", Sender: "@p:x", Type: "m.test", Content: fmt.Sprintf(`{"n":%d}`, pos)})
	}
	msgs = append(msgs,
		storage.ToDevice{Pos: 6, UserID: "@v:x", DeviceID: "D2", Sender: "@p:x", Type: "m.test", Content: `{}`},
		storage.ToDevice{Pos: 7, UserID: "@p:x", DeviceID: "D1", Sender: "@v:x", Type: "m.test", Content: `{}`},
		storage.ToDevice{Pos: 9, UserID: "@v:x", DeviceID: "D1", Sender: "@p:x", Type: "m.test", Content: `{"n":9}`},
	)
	insertToDevice(t, s, msgs...)

	first, err := s.ToDeviceFor(ctx, "@v:x", "D1", 0, 8, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(first) != 1 || first[0] != msgs[0] {
		t.Errorf("ToDeviceFor(limit 1) = %+v, want [%+v]", first, msgs[0])
	}
	steps := []struct {
		name        string
		user, dev   string
		acked, upto int64
		limit       int
		want        []int64
	}{
		{"everything up to upto", "@v:x", "D1", 0, 8, 10, []int64{1, 2, 3, 4, 5}},
		{"limit respected", "@v:x", "D1", 0, 8, 2, []int64{1, 2}},
		{"after acked; acknowledged ones deleted", "@v:x", "D1", 2, 8, 2, []int64{3, 4}},
		{"deleted ones never come back", "@v:x", "D1", 0, 8, 10, []int64{3, 4, 5}},
		{"upto admits the later message", "@v:x", "D1", 4, 9, 10, []int64{5, 9}},
		{"acknowledging everything empties the queue", "@v:x", "D1", 9, 9, 10, nil},
		{"still empty with an older ack", "@v:x", "D1", 0, 9, 10, nil},
		{"other device untouched", "@v:x", "D2", 0, 9, 10, []int64{6}},
		{"other user's device of the same ID untouched", "@p:x", "D1", 0, 9, 10, []int64{7}},
	}
	for _, st := range steps {
		if got := toDevicePositions(t, s, st.user, st.dev, st.acked, st.upto, st.limit); !slices.Equal(got, st.want) {
			t.Errorf("%s: ToDeviceFor(%s, %s, acked %d, upto %d, limit %d) = %v, want %v", st.name, st.user, st.dev, st.acked, st.upto, st.limit, got, st.want)
		}
	}

	t.Run("acknowledged backlog larger than twice the limit", func(t *testing.T) {
		var backlog []storage.ToDevice
		for pos := int64(101); pos <= 111; pos++ {
			backlog = append(backlog, storage.ToDevice{Pos: pos, UserID: "@w:x", DeviceID: "D", Sender: "@p:x", Type: "m.test", Content: `{}`})
		}
		insertToDevice(t, s, backlog...)
		if got := toDevicePositions(t, s, "@w:x", "D", 110, 111, 2); !slices.Equal(got, []int64{111}) {
			t.Errorf("ToDeviceFor(acked 110, upto 111, limit 2) = %v, want [111]", got)
		}
	})
}

func confPresence(t *testing.T, ctx context.Context, s *storage.Store) {
	seedRooms(t, s)
	commitTx(t, s, func(ctx context.Context, tx *storage.WriteTx) error {
		for i, u := range []string{"@v:x", "@p:x", "@q:x", "@i:x", "@l:x", "@z:x"} {
			if err := tx.PutPresence(ctx, storage.Presence{UserID: u, State: "online", LastActiveTS: 100, Pos: int64(10 + i)}); err != nil {
				return err
			}
		}
		// Upsert: @v's row moves to position 16.
		return tx.PutPresence(ctx, storage.Presence{UserID: "@v:x", State: "unavailable", StatusMsg: "lunch", LastActiveTS: 200, Pos: 16})
	})
	want := storage.Presence{UserID: "@v:x", State: "unavailable", StatusMsg: "lunch", LastActiveTS: 200, Pos: 16}
	if got, err := s.GetPresence(ctx, "@v:x"); err != nil || got != want {
		t.Errorf("GetPresence(@v) = %+v, %v, want %+v", got, err, want)
	}
	if _, err := s.GetPresence(ctx, "@nobody:x"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("GetPresence(unknown) = %v, want ErrNotFound", err)
	}
	cases := []struct {
		viewer      string
		since, upto int64
		also        []string
		want        []string
	}{
		{"@v:x", 0, 20, nil, []string{"@p:x@11", "@v:x@16"}},                                      // a joined peer and oneself; not invitees, leavers, strangers
		{"@v:x", 0, 20, []string{"@q:x", "@nobody:x"}, []string{"@p:x@11", "@q:x@12", "@v:x@16"}}, // friends too
		{"@v:x", 11, 20, nil, []string{"@v:x@16"}},
		{"@v:x", 0, 15, nil, []string{"@p:x@11"}},
		{"@p:x", 0, 20, nil, []string{"@p:x@11", "@v:x@16"}},
		{"@q:x", 0, 20, nil, []string{"@q:x@12"}},
		{"@i:x", 0, 20, nil, []string{"@i:x@13"}}, // an invite shares no joined room
		{"@l:x", 0, 20, nil, []string{"@l:x@14"}}, // nor does a room one left
	}
	for _, c := range cases {
		got, err := s.PresenceSince(ctx, c.viewer, c.since, c.upto, c.also)
		if err != nil {
			t.Fatal(err)
		}
		var gotS []string
		for _, p := range got {
			gotS = append(gotS, fmt.Sprintf("%s@%d", p.UserID, p.Pos))
		}
		if !slices.Equal(gotS, c.want) {
			t.Errorf("PresenceSince(%s, %d, %d) = %q, want %q", c.viewer, c.since, c.upto, gotS, c.want)
		}
	}
}

func confDeviceLists(t *testing.T, ctx context.Context, s *storage.Store) {
	seedRooms(t, s)
	commitTx(t, s, func(ctx context.Context, tx *storage.WriteTx) error {
		for i, u := range []string{"@v:x", "@p:x", "@q:x", "@i:x", "@l:x", "@p:x"} {
			if err := tx.InsertDeviceListChange(ctx, u, int64(10+i)); err != nil {
				return err
			}
		}
		return nil
	})
	cases := []struct {
		viewer      string
		since, upto int64
		want        []string
	}{
		{"@v:x", 0, 20, []string{"@p:x", "@v:x"}}, // @p changed twice, listed once
		{"@v:x", 11, 20, []string{"@p:x"}},
		{"@v:x", 0, 10, []string{"@v:x"}},
		{"@v:x", 15, 20, nil},
		{"@q:x", 0, 20, []string{"@q:x"}},
		{"@i:x", 0, 20, []string{"@i:x"}},
		{"@l:x", 0, 20, []string{"@l:x"}},
	}
	for _, c := range cases {
		got, err := s.DeviceListChangesSince(ctx, c.viewer, c.since, c.upto)
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(got)
		if !slices.Equal(got, c.want) {
			t.Errorf("DeviceListChangesSince(%s, %d, %d) = %q, want %q", c.viewer, c.since, c.upto, got, c.want)
		}
	}
}

func confUserNotices(t *testing.T, ctx context.Context, s *storage.Store) {
	commitTx(t, s, func(ctx context.Context, tx *storage.WriteTx) error {
		for i, n := range []storage.UserNotice{
			{Pos: 1, UserID: "@v:x", Type: "io.parley.friend_request", Content: `{"n":1}`, TS: 5},
			{Pos: 2, UserID: "@p:x", Type: "io.parley.follow", Content: `{"n":2}`, TS: 6},
			{Pos: 3, UserID: "@v:x", Type: "io.parley.friendship", Content: `{"n":3}`, TS: 7},
			{Pos: 4, UserID: "@v:x", Type: "io.parley.follow", Content: `{"n":4}`, TS: 8},
		} {
			if err := tx.InsertUserNotice(ctx, n); err != nil {
				return fmt.Errorf("notice %d: %w", i, err)
			}
		}
		return nil
	})
	cases := []struct {
		user               string
		since, upto, limit int
		want               []string
	}{
		{"@v:x", 0, 10, 100, []string{`1 io.parley.friend_request {"n":1} 5`, `3 io.parley.friendship {"n":3} 7`, `4 io.parley.follow {"n":4} 8`}},
		{"@v:x", 1, 3, 100, []string{`3 io.parley.friendship {"n":3} 7`}},
		{"@v:x", 0, 10, 2, []string{`1 io.parley.friend_request {"n":1} 5`, `3 io.parley.friendship {"n":3} 7`}},
		{"@p:x", 0, 10, 100, []string{`2 io.parley.follow {"n":2} 6`}},
		{"@q:x", 0, 10, 100, nil},
	}
	for _, c := range cases {
		got, err := s.UserNoticesSince(ctx, c.user, int64(c.since), int64(c.upto), c.limit)
		if err != nil {
			t.Fatal(err)
		}
		var gotS []string
		for _, n := range got {
			gotS = append(gotS, fmt.Sprintf("%d %s %s %d", n.Pos, n.Type, n.Content, n.TS))
		}
		if !slices.Equal(gotS, c.want) {
			t.Errorf("UserNoticesSince(%s, %d, %d, %d) = %q, want %q", c.user, c.since, c.upto, c.limit, gotS, c.want)
		}
	}
}

func confCurrentState(t *testing.T, ctx context.Context, s *storage.Store) {
	seedRooms(t, s)
	ids := func(evs []storage.Event) []string {
		var out []string
		for _, e := range evs {
			out = append(out, e.EventID)
		}
		return out
	}
	cases := []struct {
		name   string
		rooms  []string
		member string // "" = CurrentStateOf
		want   []string
	}{
		{"whole state of both rooms", []string{"!a:x", "!b:x"}, "", []string{"$e1", "$e2", "$e3", "$e4", "$e6", "$e7", "$e8"}},
		{"one room", []string{"!b:x"}, "", []string{"$e7", "$e8"}},
		{"no rooms", nil, "", nil},
		{"lazy: only the viewer's member event", []string{"!a:x", "!b:x"}, "@p:x", []string{"$e1", "$e3", "$e7"}},
		{"lazy: a viewer with no member event", []string{"!a:x"}, "@nobody:x", []string{"$e1"}},
	}
	for _, c := range cases {
		var got []storage.Event
		var err error
		if c.member == "" {
			got, err = s.CurrentStateOf(ctx, c.rooms)
		} else {
			got, err = s.CurrentStateWithoutMembers(ctx, c.rooms, c.member)
		}
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(ids(got), c.want) {
			t.Errorf("%s: %q, want %q", c.name, ids(got), c.want)
		}
	}
}
