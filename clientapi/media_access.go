package clientapi

import (
	"context"
	"errors"

	"github.com/parley-im/parley/apierr"
	"github.com/parley-im/parley/rooms"
	"github.com/parley-im/parley/storage"
)

// mediaAccess lets a user fetch media posted in rooms only when they may
// read one of the messages that carry it (history visibility included),
// the same way /messages would show them that message. Media no message
// carries (avatars, fresh uploads) is open to every signed-in user, and its
// uploader may always fetch it. The legacy unauthenticated routes (userID
// "") serve only media no message carries. A refusal looks exactly like a
// missing item.
//
// A room the user left and then forgot grants nothing: forgetting gives up
// the history (roomAccess refuses /messages there too), so its media must
// go with it. Leaving alone keeps access to what the user could see.
func (a *API) mediaAccess(ctx context.Context, userID, mediaID, uploader string) error {
	if userID != "" && userID == uploader {
		return nil
	}
	refs, err := a.store.MediaRefs(ctx, mediaID)
	if err != nil || len(refs) == 0 {
		return err
	}
	if userID != "" {
		for _, ref := range refs {
			ok, err := a.mayReadMediaRef(ctx, userID, ref)
			if err != nil {
				return err
			}
			if ok {
				return nil
			}
		}
	}
	return apierr.NotFound("Media not found")
}

// mayReadMediaRef reports whether userID may read the message at ref,
// by the room's read rules (rooms.ReadAccess): history visibility, and
// nothing for one who left and forgot the room.
func (a *API) mayReadMediaRef(ctx context.Context, userID string, ref storage.MediaRef) (bool, error) {
	v, err := a.rooms.ReadAccess(ctx, ref.RoomID, userID)
	if errors.Is(err, rooms.ErrForbidden) || errors.Is(err, storage.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return v.CanSee(&storage.Event{Pos: ref.Pos, Type: "m.room.message"}), nil
}
