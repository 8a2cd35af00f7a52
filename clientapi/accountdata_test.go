package clientapi

import "testing"

func TestParseTags(t *testing.T) {
	tags := parseTags(`{"tags":{"m.favourite":{"order":0.5},"u.work":{},"broken":3}}`)
	if len(tags) != 2 || string(tags["m.favourite"]) != `{"order":0.5}` || tags["u.work"] == nil {
		t.Errorf("tags = %v", tags)
	}
	for _, content := range []string{``, `[]`, `{"tags":[]}`, `{"tags":null}`, `{}`} {
		if tags := parseTags(content); tags == nil || len(tags) != 0 {
			t.Errorf("%q: %v", content, tags)
		}
	}
}

func TestServerControlled(t *testing.T) {
	if !serverControlled("m.fully_read") || !serverControlled("m.push_rules") || serverControlled("m.direct") {
		t.Error("serverControlled")
	}
}
