package devices_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/parley-im/parley/devices"
	"github.com/parley-im/parley/storage"
	"github.com/parley-im/parley/storage/storagetest"
)

// countLists counts device list changes per user.
type countLists map[string]int

func (c countLists) DeviceListChanged(_ context.Context, userID string) error {
	c[userID]++
	return nil
}

func TestValidate(t *testing.T) {
	for _, c := range []struct {
		id, name string
		ok       bool
	}{
		{"", "", true},
		{"PHONE", "My phone", true},
		{strings.Repeat("D", devices.MaxIDBytes), strings.Repeat("n", devices.MaxNameBytes), true},
		{strings.Repeat("D", devices.MaxIDBytes+1), "", false},
		{"", strings.Repeat("n", devices.MaxNameBytes+1), false},
		{"A\nB", "", false},
		{"A\x7fB", "", false},
		{"\xff", "", false},
		{"", "a\x00b", false},
		{"", "\xff", false},
		{"", "tab\tis fine in a name", true},
	} {
		err := devices.Validate(c.id, c.name)
		if (err == nil) != c.ok || (err != nil && !errors.Is(err, devices.ErrInvalidParam)) {
			t.Errorf("Validate(%.12q, %.12q) = %v, want ok=%v", c.id, c.name, err, c.ok)
		}
	}
}

func TestService(t *testing.T) {
	ctx := context.Background()
	storagetest.ForEachEngine(t, func(t *testing.T, st *storage.Store) {
		if err := st.CreateUser(ctx, storage.User{UserID: "@a:hs", CreatedTS: 1}); err != nil {
			t.Fatal(err)
		}
		for i, id := range []string{"D1", "D2", "D3"} {
			if err := st.CreateDevice(ctx, storage.Device{UserID: "@a:hs", DeviceID: id, TokenHash: "t" + id, CreatedTS: int64(i + 1)}); err != nil {
				t.Fatal(err)
			}
		}
		lists := countLists{}
		svc := devices.New(st, lists)
		ids := func() []string {
			devs, err := svc.List(ctx, "@a:hs")
			if err != nil {
				t.Fatal(err)
			}
			var out []string
			for _, d := range devs {
				out = append(out, d.DeviceID)
			}
			slices.Sort(out)
			return out
		}

		if _, err := svc.Get(ctx, "@a:hs", "NOPE"); !errors.Is(err, devices.ErrNotFound) {
			t.Errorf("Get(unknown) = %v, want ErrNotFound", err)
		}
		if err := svc.Rename(ctx, "@a:hs", "NOPE", "x"); !errors.Is(err, devices.ErrNotFound) {
			t.Errorf("Rename(unknown) = %v, want ErrNotFound", err)
		}
		if err := svc.Rename(ctx, "@a:hs", "D1", strings.Repeat("n", 300)); !errors.Is(err, devices.ErrInvalidParam) {
			t.Errorf("Rename(too long) = %v, want ErrInvalidParam", err)
		}
		if err := svc.Rename(ctx, "@a:hs", "D1", "Laptop"); err != nil {
			t.Fatal(err)
		}
		if d, err := svc.Get(ctx, "@a:hs", "D1"); err != nil || d.DisplayName != "Laptop" {
			t.Errorf("Get(D1) = %+v, %v, want Laptop", d, err)
		}
		if lists["@a:hs"] != 0 {
			t.Errorf("device list changes after a rename = %d, want 0", lists["@a:hs"])
		}

		// An empty list deletes nothing (the store reads nil as "all").
		var forgotten []string
		forget := func(id string) { forgotten = append(forgotten, id) }
		if err := svc.Delete(ctx, "@a:hs", []string{}, forget); err != nil {
			t.Fatal(err)
		}
		if got := ids(); !slices.Equal(got, []string{"D1", "D2", "D3"}) {
			t.Errorf("devices after Delete([]) = %v, want all three", got)
		}
		if err := svc.Delete(ctx, "@a:hs", []string{"D2", "UNKNOWN"}, forget); err != nil {
			t.Fatal(err)
		}
		if got := ids(); !slices.Equal(got, []string{"D1", "D3"}) {
			t.Errorf("devices after Delete(D2) = %v, want D1 D3", got)
		}
		if !slices.Equal(forgotten, []string{"D2", "UNKNOWN"}) {
			t.Errorf("forgotten = %v, want D2 UNKNOWN", forgotten)
		}
		if err := svc.DeleteOthers(ctx, "@a:hs", "D1", forget); err != nil {
			t.Fatal(err)
		}
		if got := ids(); !slices.Equal(got, []string{"D1"}) {
			t.Errorf("devices after DeleteOthers(D1) = %v, want D1", got)
		}
		// With no other device, nothing changes and nothing is announced.
		if err := svc.DeleteOthers(ctx, "@a:hs", "D1", forget); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(forgotten, []string{"D2", "UNKNOWN", "D3"}) {
			t.Errorf("forgotten = %v, want D2 UNKNOWN D3", forgotten)
		}
		if err := svc.DeleteAll(ctx, "@a:hs", forget); err != nil {
			t.Fatal(err)
		}
		if got := ids(); len(got) != 0 {
			t.Errorf("devices after DeleteAll = %v, want none", got)
		}
		if forgotten[len(forgotten)-1] != "" {
			t.Errorf("DeleteAll forgot %q, want \"\" (all)", forgotten[len(forgotten)-1])
		}
		if lists["@a:hs"] != 4 {
			t.Errorf("device list changes = %d, want 4 (one per delete that could change the list)", lists["@a:hs"])
		}
	})
}
