package inbox

import (
	"context"
	"slices"

	"github.com/parley-im/parley/rooms"
	"github.com/parley-im/parley/storage"
)

// Bundler adds bundled aggregations (unsigned["m.relations"]) to timeline
// events of many rooms at once, in place. *relations.Service is one.
type Bundler interface {
	BundleRooms(ctx context.Context, who rooms.Viewer, timelines map[string][]storage.Event) error
}

// bundle adds relation bundles to the timelines that need them: an initial
// sync's, a newly joined room's and a limited one's. A timeline that is
// not limited carries every event since the token, so each relation to its
// events is in it too (a relation always comes after its parent) and the
// client needs no bundle; skipping those keeps the common wake-up (one
// new message) free of the extra queries.
//
// A room's events are copied before their unsigned is changed: the
// timeline cache copies in and out today, and the copy keeps a per-user
// bundle out of it should that change. Only bundled rooms pay for it.
func (s *Syncer) bundle(ctx context.Context, req Request, rms map[string]*roomResp, initial bool) error {
	if s.bundler == nil {
		return nil
	}
	var timelines map[string][]storage.Event
	for id, r := range rms {
		if len(r.timeline) == 0 || r.stripped() || !(initial || r.newlyJoin || r.limited) {
			continue
		}
		if timelines == nil {
			timelines = map[string][]storage.Event{}
		}
		r.timeline = slices.Clone(r.timeline)
		timelines[id] = r.timeline
	}
	if timelines == nil {
		return nil
	}
	return s.bundler.BundleRooms(ctx, rooms.Viewer{UserID: req.UserID, DeviceID: req.DeviceID}, timelines)
}
