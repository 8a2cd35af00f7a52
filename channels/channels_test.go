package channels

import (
	"errors"
	"testing"
	"unicode/utf8"
)

// FuzzValidID: the ID parser never panics and accepts only "~local:server".
func FuzzValidID(f *testing.F) {
	for _, s := range []string{"~a:b", "~:b", "~a:", "a:b", "", "~", "~abc:x:y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if ValidID(s) && (s[0] != '~' || len(s) > 255) {
			t.Errorf("ValidID(%q) = true", s)
		}
	})
}

// FuzzContent: post content checks never panic and refuse with ErrInvalid
// or ErrTooLarge only.
func FuzzContent(f *testing.F) {
	f.Add("hi", "mxc://a/b", "https://x")
	f.Add("", "http://a", "javascript:x")
	s := &Service{limits: Limits{}.withDefaults()}
	f.Fuzz(func(t *testing.T, text, img, link string) {
		err := s.checkContent(Content{Text: text, Images: []string{img}, Links: []string{link}})
		if err != nil && !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrTooLarge) {
			t.Errorf("checkContent: %v", err)
		}
	})
}

// FuzzComment: the comment check never panics, refuses with ErrInvalid or
// ErrTooLarge only, and accepts only valid UTF-8 within the size limit.
func FuzzComment(f *testing.F) {
	f.Add("hi")
	f.Add(" ")
	f.Add("\xff")
	s := &Service{limits: Limits{}.withDefaults()}
	f.Fuzz(func(t *testing.T, text string) {
		err := s.checkComment(text)
		if err != nil && !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrTooLarge) {
			t.Errorf("checkComment: %v", err)
		}
		if err == nil && (len(text) > s.limits.MaxCommentBytes || !utf8.ValidString(text)) {
			t.Errorf("checkComment(%q) accepted", text)
		}
	})
}
