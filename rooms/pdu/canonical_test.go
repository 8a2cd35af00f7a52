package pdu

import (
	"strings"
	"testing"
)

func TestCanonicalizeSpecExamples(t *testing.T) {
	tests := []struct{ in, want string }{
		{`{}`, `{}`},
		{"{\n    \"one\": 1,\n    \"two\": \"Two\"\n}", `{"one":1,"two":"Two"}`},
		{`{"b": "2", "a": "1"}`, `{"a":"1","b":"2"}`},
		{`{"auth":{"success":true,"mxid":"@john.doe:example.com","profile":{"display_name":"John Doe","three_pids":[{"medium":"email","address":"john.doe@example.org"},{"medium":"msisdn","address":"123456789"}]}}}`,
			`{"auth":{"mxid":"@john.doe:example.com","profile":{"display_name":"John Doe","three_pids":[{"address":"john.doe@example.org","medium":"email"},{"address":"123456789","medium":"msisdn"}]},"success":true}}`},
		{`{"a": "日本語"}`, `{"a":"日本語"}`},
		{`{"本": 2, "日": 1}`, `{"日":1,"本":2}`},
		{`{"a": "\u65E5"}`, `{"a":"日"}`},
		{`{"a": null}`, `{"a":null}`},
		// Escapes beyond the spec's examples.
		{`{"a":"\/\"\\\b\f\n\r\t"}`, `{"a":"/\"\\\b\f\n\r\t"}`},
		{`{"a":"\u001F\u000B\u0000\u007f"}`, "{\"a\":\"\\u001f\\u000b\\u0000\x7f\"}"},
		{`{"a":"\\u001F"}`, `{"a":"\\u001F"}`},
		{`{"a":"\ud83d\ude00","<":"\u003c\u2028"}`, "{\"<\":\"<\u2028\",\"a\":\"😀\"}"},
		{`{"n":[9007199254740991,-9007199254740991,0,-1]}`, `{"n":[9007199254740991,-9007199254740991,0,-1]}`},
	}
	for _, tt := range tests {
		got, err := canonicalize([]byte(tt.in))
		if err != nil || string(got) != tt.want {
			t.Errorf("canonicalize(%s) = %s, %v, want %s", tt.in, got, err, tt.want)
		}
	}
}

func TestCanonicalizeRejects(t *testing.T) {
	tests := []struct{ name, in string }{
		{"negative zero", `{"a":-0}`},
		{"exponent", `{"b":1e10}`},
		{"fraction", `{"a":1.0}`},
		{"too big", `{"a":9007199254740992}`},
		{"too small", `{"a":-9007199254740992}`},
		{"huge", `{"a":123456789012345678901234567890}`},
		{"leading zero", `{"a":01}`},
		{"plus sign", `{"a":+1}`},
		{"duplicate key", `{"a":1,"a":2}`},
		{"duplicate key via escape", `{"a":1,"\u0061":2}`},
		{"lone high surrogate", `{"a":"\ud83d"}`},
		{"lone low surrogate", `{"a":"\ude00"}`},
		{"bad pair", `{"a":"\ud83d\u0041"}`},
		{"invalid utf-8", "{\"a\":\"\xff\"}"},
		{"utf-8 surrogate", "{\"a\":\"\xed\xa0\x80\"}"},
		{"raw control char", "{\"a\":\"\x01\"}"},
		{"bad escape", `{"a":"\x41"}`},
		{"short unicode escape", `{"a":"\u41"}`},
		{"trailing garbage", `{} x`},
		{"two values", `{}{}`},
		{"unterminated", `{"a":`},
		{"trailing comma", `{"a":1,}`},
		{"single quotes", `{'a':1}`},
		{"NaN", `{"a":NaN}`},
		{"empty", ``},
		{"too deep", strings.Repeat("[", maxDepth+1) + strings.Repeat("]", maxDepth+1)},
	}
	for _, tt := range tests {
		if got, err := canonicalize([]byte(tt.in)); err == nil {
			t.Errorf("canonicalize(%s: %q) = %s, want an error", tt.name, tt.in, got)
		}
	}
}

func TestCanonicalizeDepthLimit(t *testing.T) {
	in := strings.Repeat("[", maxDepth) + strings.Repeat("]", maxDepth)
	if _, err := canonicalize([]byte(in)); err != nil {
		t.Errorf("canonicalize(depth %d) = %v, want nil", maxDepth, err)
	}
}

func TestAppendStringMatchesCanonicalize(t *testing.T) {
	for _, s := range []string{"", "plain", "quote\"back\\slash", "\x00\x01\x08\x09\x0a\x0b\x0c\x0d\x1f\x7f", "日本語 😀", "\u2028<>&"} {
		want, err := canonicalize(appendString(nil, s))
		if got := appendString(nil, s); err != nil || string(got) != string(want) {
			t.Errorf("appendString(%q) = %s, want %s (%v)", s, got, want, err)
		}
	}
}
