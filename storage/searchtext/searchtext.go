// Package searchtext turns text into the tokens of the search index, and a
// search term into the tokens a match must have. Both stores index the same
// token string with their own full-text engine (SQLite FTS5, PostgreSQL's
// tsvector), so matching is decided here, once, and not by either engine.
//
// Why bigrams: Chinese and Japanese have no spaces between words, and Korean
// attaches particles to words ("학교에" holds "학교"). A word tokenizer finds
// no words in them; a trigram index (FTS5's trigram tokenizer, pg_trgm)
// cannot look up terms of one or two characters, which is most Chinese
// words ("你好", "中国"). So each run of CJK characters is indexed as its
// single characters and its overlapping pairs: a one-character term looks
// up the character, a longer term looks up all its pairs, and the caller
// checks that the run appears whole (Phrases). Other scripts are indexed by
// words, split at anything that is not a letter, digit or mark, lowercased.
// Scripts without spaces other than CJK (Thai, Lao, Khmer) are indexed as
// whole runs, so only a search for the whole run finds them.
package searchtext

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxWordRunes caps one indexed word: longer ones are cut, in documents
// and terms alike, so a huge unbroken string cannot make a huge token.
const MaxWordRunes = 64

// MaxTermTokens caps the tokens of one search term: a term beyond it is
// refused by the caller, since every token is one more index lookup.
const MaxTermTokens = 64

// IsCJK reports whether r is a Han, Hiragana, Katakana, Hangul or Bopomofo
// character: the scripts indexed by character pairs.
func IsCJK(r rune) bool {
	if r < 0x2E80 { // below the CJK blocks: the common case, cheaply
		return false
	}
	return unicode.In(r, unicode.Han, unicode.Hiragana, unicode.Katakana, unicode.Hangul, unicode.Bopomofo)
}

func isWordRune(r rune) bool {
	return unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsMark(r)
}

// segment calls word for each run of word characters and cjk for each run
// of CJK characters in lowercased text, in order.
func segment(text string, word, cjk func(run string)) {
	text = strings.ToLower(text)
	start, kind := 0, 0 // kind: 0 none, 1 word, 2 cjk
	flush := func(end int) {
		switch kind {
		case 1:
			word(text[start:end])
		case 2:
			cjk(text[start:end])
		}
	}
	for i, r := range text {
		k := 0
		switch {
		case r == utf8.RuneError:
			k = 0
		case IsCJK(r):
			k = 2
		case isWordRune(r):
			k = 1
		}
		if k != kind {
			flush(i)
			start, kind = i, k
		}
	}
	flush(len(text))
}

func capRunes(s string, n int) string {
	i := 0
	for j := range s {
		if i == n {
			return s[:j]
		}
		i++
	}
	return s
}

// Tokens returns the index tokens of a document's text, space-separated:
// every word, and every character and character pair of each CJK run.
func Tokens(text string) string {
	var b strings.Builder
	add := func(tok string) {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(tok)
	}
	segment(text, func(run string) { add(capRunes(run, MaxWordRunes)) }, func(run string) {
		prev := -1
		for i := range run {
			if prev >= 0 {
				_, size := utf8.DecodeRuneInString(run[i:])
				add(run[prev : i+size])
			}
			_, size := utf8.DecodeRuneInString(run[i:])
			add(run[i : i+size])
			prev = i
		}
	})
	return b.String()
}

// Term is a parsed search term.
type Term struct {
	// Tokens must all be in a document's tokens for it to match (AND),
	// deduplicated, in first-seen order.
	Tokens []string
	// Phrases are the CJK runs of three characters or more: their pairs
	// being present does not prove the run is, so the caller also checks
	// that the document's lowercased text contains each.
	Phrases []string
	// Highlights are the words and CJK runs of the term, for the client
	// to highlight.
	Highlights []string
}

// Empty reports whether the term has nothing to search for (only spaces
// or punctuation).
func (t Term) Empty() bool { return len(t.Tokens) == 0 }

// ParseTerm splits a search term the way Tokens splits documents. Words
// are matched whole, CJK runs as contiguous substrings.
func ParseTerm(term string) Term {
	var t Term
	seen := map[string]bool{}
	add := func(tok string) {
		if !seen[tok] {
			seen[tok] = true
			t.Tokens = append(t.Tokens, tok)
		}
	}
	segment(term, func(run string) {
		run = capRunes(run, MaxWordRunes)
		add(run)
		t.Highlights = append(t.Highlights, run)
	}, func(run string) {
		t.Highlights = append(t.Highlights, run)
		n := utf8.RuneCountInString(run)
		if n == 1 {
			add(run)
			return
		}
		if n >= 3 {
			t.Phrases = append(t.Phrases, run)
		}
		prev := -1
		for i := range run {
			if prev >= 0 {
				_, size := utf8.DecodeRuneInString(run[i:])
				add(run[prev : i+size])
			}
			prev = i
		}
	})
	return t
}

// Lower is the form of a document's text that Phrases are checked against.
func Lower(text string) string { return strings.ToLower(text) }
