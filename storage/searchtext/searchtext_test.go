package searchtext

import (
	"slices"
	"strings"
	"testing"
)

func TestTokens(t *testing.T) {
	for _, tc := range []struct{ text, want string }{
		{"Hello, World!", "hello world"},
		{"你好世界", "你 你好 好 好世 世 世界 界"},
		{"東京で", "東 東京 京 京で で"},
		{"학교에 가요", "학 학교 교 교에 에 가 가요 요"},
		{"abc北京def", "abc 北 北京 京 def"},
		{"l'été 2024", "l été 2024"},
		{"", ""},
		{"!!! ...", ""},
	} {
		if got := Tokens(tc.text); got != tc.want {
			t.Errorf("Tokens(%q) = %q, want %q", tc.text, got, tc.want)
		}
	}
}

func TestParseTerm(t *testing.T) {
	for _, tc := range []struct {
		term                string
		tokens, phrases, hl []string
	}{
		{"北", []string{"北"}, nil, []string{"北"}},
		{"北京", []string{"北京"}, nil, []string{"北京"}},
		{"北京开会", []string{"北京", "京开", "开会"}, []string{"北京开会"}, []string{"北京开会"}},
		{"Hello hello WORLD", []string{"hello", "world"}, nil, []string{"hello", "hello", "world"}},
		{"학교", []string{"학교"}, nil, []string{"학교"}},
		{"?!", nil, nil, nil},
	} {
		got := ParseTerm(tc.term)
		if !slices.Equal(got.Tokens, tc.tokens) || !slices.Equal(got.Phrases, tc.phrases) || !slices.Equal(got.Highlights, tc.hl) {
			t.Errorf("ParseTerm(%q) = %q %q %q, want %q %q %q", tc.term, got.Tokens, got.Phrases, got.Highlights, tc.tokens, tc.phrases, tc.hl)
		}
	}
}

// FuzzTokens: any text tokenizes without panic, and a text searched for
// itself always matches: every token of the term is among the document's
// tokens, and every phrase is in its lowercased text. Tokens never hold a
// space or a double quote (the FTS5 query quotes them).
func FuzzTokens(f *testing.F) {
	for _, s := range []string{"你好世界", "明日は東京で会議", "학교에 갑니다", "Hello, World", "x\u0301y", "\xff\xfe北京", strings.Repeat("a", 100)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		doc := map[string]bool{}
		for _, tok := range strings.Split(Tokens(text), " ") {
			doc[tok] = true
			if strings.ContainsAny(tok, "\" \t\n") {
				t.Fatalf("Tokens(%q) has token %q with a space or quote", text, tok)
			}
		}
		term := ParseTerm(text)
		for _, tok := range term.Tokens {
			if !doc[tok] {
				t.Fatalf("ParseTerm(%q) token %q is not among Tokens %q", text, tok, Tokens(text))
			}
		}
		for _, p := range term.Phrases {
			if !strings.Contains(Lower(text), p) {
				t.Fatalf("phrase %q of %q is not in the text", p, text)
			}
		}
	})
}
