package admin

import (
	"context"
	"errors"
	"strconv"

	"github.com/parley-im/parley/media"
)

// MediaRepo is the media store's operator side; *media.Repo implements it.
type MediaRepo interface {
	UserMedia(userID string) ([]media.Info, error)
	Item(mediaID string) (media.Info, error)
	Quarantine(mediaID string, on bool) error
	Purge(f media.Filter, progress func(done int)) (media.PurgeResult, error)
}

func (s *Service) mediaRepo() (MediaRepo, error) {
	if s.cfg.Media == nil {
		return nil, errors.New("media administration is not configured")
	}
	return s.cfg.Media, nil
}

// localMedia checks that server is ours: media of other servers is not
// stored here.
func (s *Service) localMedia(server, mediaID string) error {
	if server != s.cfg.ServerName || mediaID == "" {
		return fail(ErrNotFound, "Media not found")
	}
	return nil
}

func mediaErr(err error) error {
	if errors.Is(err, media.ErrNotFound) {
		return fail(ErrNotFound, "Media not found")
	}
	return err
}

// UserMedia pages through a user's uploads, newest first. The page token
// is an offset into that list.
func (s *Service) UserMedia(ctx context.Context, userID string, p Page) (items []media.Info, next string, err error) {
	repo, err := s.mediaRepo()
	if err != nil {
		return nil, "", err
	}
	if _, err := s.getUser(ctx, userID); err != nil {
		return nil, "", err
	}
	from := 0
	if p.From != "" {
		if from, err = strconv.Atoi(p.From); err != nil || from < 0 {
			return nil, "", fail(ErrInvalidParam, "from is not a token this list gave")
		}
	}
	all, err := repo.UserMedia(userID)
	if err != nil {
		return nil, "", err
	}
	if from > len(all) {
		from = len(all)
	}
	end := min(from+p.Limit, len(all))
	if end < len(all) {
		next = strconv.Itoa(end)
	}
	return all[from:end], next, nil
}

// DeleteMedia deletes one item of this server.
func (s *Service) DeleteMedia(ctx context.Context, actor, server, mediaID string) (media.PurgeResult, error) {
	repo, err := s.mediaRepo()
	if err != nil {
		return media.PurgeResult{}, err
	}
	if err := s.localMedia(server, mediaID); err != nil {
		return media.PurgeResult{}, err
	}
	res, err := repo.Purge(media.Filter{MediaID: mediaID}, nil)
	if err != nil {
		return res, mediaErr(err)
	}
	return res, s.audit(ctx, actor, "media.delete", "mxc://"+server+"/"+mediaID, map[string]any{"freed_bytes": res.Bytes})
}

// PurgeMedia deletes every item the filter selects. It needs at least
// one criterion, so that a slip cannot delete all media.
func (s *Service) PurgeMedia(ctx context.Context, actor string, f media.Filter, progress func(done int)) (media.PurgeResult, error) {
	repo, err := s.mediaRepo()
	if err != nil {
		return media.PurgeResult{}, err
	}
	if f.BeforeTS < 0 || f.LargerThan < 0 {
		return media.PurgeResult{}, fail(ErrInvalidParam, "before_ts and size_gt may not be negative")
	}
	if f.Uploader == "" && f.BeforeTS == 0 && f.LargerThan == 0 {
		return media.PurgeResult{}, fail(ErrMissingParam, "give at least one of before_ts, size_gt and user_id")
	}
	if f.Uploader != "" {
		if _, err := s.getUser(ctx, f.Uploader); err != nil {
			return media.PurgeResult{}, err
		}
	}
	f.MediaID = ""
	res, err := repo.Purge(f, progress)
	if err != nil {
		return res, err
	}
	target := f.Uploader
	if target == "" {
		target = "media"
	}
	return res, s.audit(ctx, actor, "media.purge", target, map[string]any{"before_ts": f.BeforeTS, "size_gt": f.LargerThan,
		"user_id": f.Uploader, "deleted": len(res.Deleted), "freed_bytes": res.Bytes})
}

// QuarantineMedia makes one item undownloadable, or lifts that.
func (s *Service) QuarantineMedia(ctx context.Context, actor, server, mediaID string, on bool) error {
	repo, err := s.mediaRepo()
	if err != nil {
		return err
	}
	if err := s.localMedia(server, mediaID); err != nil {
		return err
	}
	if err := repo.Quarantine(mediaID, on); err != nil {
		return mediaErr(err)
	}
	action := "media.quarantine"
	if !on {
		action = "media.unquarantine"
	}
	return s.audit(ctx, actor, action, "mxc://"+server+"/"+mediaID, nil)
}
