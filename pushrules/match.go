package pushrules

// The parsers of rule conditions: dotted property paths (with escaped
// dots), glob patterns and member-count comparisons, each turned once,
// when a user's ruleset is compiled, into something cheap to apply per
// event.

import (
	"regexp"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/tidwall/gjson"
)

// splitKey splits a condition's key at the dots that are not escaped: a
// backslash before a dot or a backslash makes it literal (content.m\.relates_to
// is the property "m.relates_to" of content); any other backslash is kept
// as it is, as the spec says.
func splitKey(key string) []string {
	var parts []string
	var cur strings.Builder
	for i := 0; i < len(key); i++ {
		c := key[i]
		switch {
		case c == '\\' && i+1 < len(key) && (key[i+1] == '.' || key[i+1] == '\\'):
			i++
			cur.WriteByte(key[i])
		case c == '.':
			parts = append(parts, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(c)
		}
	}
	return append(parts, cur.String())
}

// path is a condition's key, split into its parts.
type path struct {
	key   string     // as written in the rule: the per-event cache's key
	parts []pathPart //
}

type pathPart struct {
	name string // the property's name, unescaped
	// plain: name has no character gjson reads specially, so it is its
	// own gjson path. Others are found by a walk over the object's keys:
	// gjson unescapes an escaped path with an allocation per lookup.
	plain bool
}

func compilePath(key string) path {
	names := splitKey(key)
	parts := make([]pathPart, len(names))
	for i, n := range names {
		parts[i] = pathPart{name: n, plain: n != "" && gjson.Escape(n) == n}
	}
	return path{key: key, parts: parts}
}

// get returns the property at p of the event, walking one part at a time.
func (p path) get(ev gjson.Result) gjson.Result {
	r := ev
	for _, part := range p.parts {
		if !r.IsObject() {
			return gjson.Result{}
		}
		if part.plain {
			r = r.Get(part.name)
		} else {
			r = member(r, part.name)
		}
		if !r.Exists() {
			return r
		}
	}
	return r
}

// member returns the member name of the object obj (the first, if the
// name repeats), comparing names exactly.
func member(obj gjson.Result, name string) gjson.Result {
	var out gjson.Result
	obj.ForEach(func(k, v gjson.Result) bool {
		if k.Str == name {
			out = v
			return false
		}
		return true
	})
	return out
}

// glob is an event_match pattern: * matches any run of characters, ? one
// character, and the match ignores case. Against content.body it matches
// any word-bounded part of the value (as Synapse does); elsewhere the whole
// value.
type glob struct {
	literal string         // the pattern, when it has no wildcard
	need    string         // with wildcards: the longest literal run, which any match holds
	re      *regexp.Regexp // else; nil with literal "" and !anything: never matches
	words   bool           // match a word-bounded part, not the whole value
	any     bool           // "*" against the whole value: matches every string
}

// compileGlob compiles pattern; words asks for word-bounded matching.
func compileGlob(pattern string, words bool) *glob {
	g := &glob{words: words}
	if !strings.ContainsAny(pattern, "*?") {
		g.literal = pattern
		return g
	}
	if !words && strings.Trim(pattern, "*") == "" {
		g.any = true
		return g
	}
	for _, run := range strings.FieldsFunc(pattern, func(r rune) bool { return r == '*' || r == '?' }) {
		if len(run) > len(g.need) {
			g.need = run
		}
	}
	var b strings.Builder
	b.WriteString("(?is)")
	if words {
		b.WriteString(`(?:^|[^\p{L}\p{N}_])(?:`)
	} else {
		b.WriteString("^(?:")
	}
	last := 0
	for i := 0; i < len(pattern); i++ {
		switch pattern[i] {
		case '*', '?':
			b.WriteString(regexp.QuoteMeta(pattern[last:i]))
			if pattern[i] == '*' {
				b.WriteString(".*?")
			} else {
				b.WriteString(".")
			}
			last = i + 1
		}
	}
	b.WriteString(regexp.QuoteMeta(pattern[last:]))
	if words {
		b.WriteString(`)(?:[^\p{L}\p{N}_]|$)`)
	} else {
		b.WriteString(")$")
	}
	re, err := regexp.Compile(b.String())
	if err == nil { // always, as the parts are quoted; a failure never matches
		g.re = re
	}
	return g
}

func (g *glob) match(s string) bool {
	switch {
	case g.any:
		return true
	case g.re != nil:
		// A cheap test first: most values do not hold the literal part,
		// and the regular expression is the slow part of a ruleset.
		return (g.need == "" || indexFold(s, g.need, 0) >= 0) && g.re.MatchString(s)
	case g.literal == "":
		return false
	case g.words:
		return containsWord(s, g.literal)
	}
	return strings.EqualFold(s, g.literal)
}

// isWordRune reports whether r is part of a word (letter, digit or _).
func isWordRune(r rune) bool {
	return r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r)
}

// indexFold returns the first index at or after from where s holds sub,
// ignoring case (for case pairs of the same length in UTF-8), or -1. It
// allocates nothing.
func indexFold(s, sub string, from int) int {
	if sub == "" {
		return from
	}
	first := sub[0]
	ascii := first < utf8.RuneSelf
	lower, upper := first|0x20, first&^0x20
	if !('a' <= lower && lower <= 'z') {
		lower, upper = first, first
	}
	for i := from; i+len(sub) <= len(s); i++ {
		c := s[i]
		if ascii && c != lower && c != upper && c < utf8.RuneSelf {
			continue // the first byte cannot start a case variant of sub
		}
		if !utf8.RuneStart(c) {
			continue
		}
		if strings.EqualFold(s[i:i+len(sub)], sub) {
			return i
		}
	}
	return -1
}

// containsWord reports whether s holds w, ignoring case, with neither a
// word character right before nor right after it. It allocates nothing.
func containsWord(s, w string) bool {
	if w == "" {
		return false
	}
	for i := indexFold(s, w, 0); i >= 0; i = indexFold(s, w, i+1) {
		if i > 0 {
			if r, _ := utf8.DecodeLastRuneInString(s[:i]); isWordRune(r) {
				continue
			}
		}
		if end := i + len(w); end < len(s) {
			if r, _ := utf8.DecodeRuneInString(s[end:]); isWordRune(r) {
				continue
			}
		}
		return true
	}
	return false
}

// countTest is a room_member_count condition: an operator and a number.
type countTest struct {
	op string // "==", "<", ">", "<=", ">="
	n  int
}

// parseCount parses "is": a decimal integer optionally prefixed by ==, <,
// >, <= or >=. ok is false for anything else (the condition then never
// matches).
func parseCount(is string) (countTest, bool) {
	op := "=="
	for _, p := range []string{"==", "<=", ">=", "<", ">"} {
		if strings.HasPrefix(is, p) {
			op, is = p, is[len(p):]
			break
		}
	}
	if is == "" || len(is) > 9 || strings.Trim(is, "0123456789") != "" {
		return countTest{}, false
	}
	n, err := strconv.Atoi(is)
	if err != nil {
		return countTest{}, false
	}
	return countTest{op: op, n: n}, true
}

func (c countTest) match(members int) bool {
	switch c.op {
	case "<":
		return members < c.n
	case ">":
		return members > c.n
	case "<=":
		return members <= c.n
	case ">=":
		return members >= c.n
	}
	return members == c.n
}
