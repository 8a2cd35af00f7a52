package storage_test

import (
	"testing"

	"github.com/parley-im/parley/storage"
)

func TestRelationOf(t *testing.T) {
	for _, tc := range []struct {
		client        string
		ok            bool
		parent, rtype string
	}{
		{`{"content":{"m.relates_to":{"rel_type":"m.annotation","event_id":"$a","key":"x"}}}`, true, "$a", "m.annotation"},
		{`{"content":{"m.relates_to":{"rel_type":"m.thread","event_id":"$t","is_falling_back":true}}}`, true, "$t", "m.thread"},
		{`{"content":{"m.relates_to":{"m.in_reply_to":{"event_id":"$r"}}}}`, false, "", ""}, // a plain reply is no relation
		{`{"content":{"m.relates_to":{"rel_type":"m.replace","event_id":7}}}`, false, "", ""},
		{`{"content":{"m.relates_to":{"rel_type":"","event_id":"$a"}}}`, false, "", ""},
		{`{"content":{"m.relates_to":"$a"}}`, false, "", ""},
		{`{"content":{"body":"hi"}}`, false, "", ""},
		{`not json`, false, "", ""},
	} {
		rel, ok := storage.RelationOf([]byte(tc.client))
		if ok != tc.ok || rel.RelatesTo != tc.parent || rel.RelType != tc.rtype {
			t.Errorf("RelationOf(%s) = %q %q %v, want %q %q %v", tc.client, rel.RelatesTo, rel.RelType, ok, tc.parent, tc.rtype, tc.ok)
		}
	}
}

// FuzzRelationOf: any client JSON, valid or not, parses without panic, and
// a relation it reports always names a parent and a type.
func FuzzRelationOf(f *testing.F) {
	f.Add([]byte(`{"content":{"m.relates_to":{"rel_type":"m.annotation","event_id":"$a","key":"x"}}}`))
	f.Add([]byte(`{"content":{"m.relates_to":{"rel_type":["x"],"event_id":{"a":1}}}}`))
	f.Add([]byte(`{"content":{"m.relates_to":`))
	f.Fuzz(func(t *testing.T, client []byte) {
		rel, ok := storage.RelationOf(client)
		if ok && (rel.RelatesTo == "" || rel.RelType == "") {
			t.Errorf("RelationOf(%q) = %+v, ok with an empty field", client, rel)
		}
	})
}
