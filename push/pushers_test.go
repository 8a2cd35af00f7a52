package push

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestCheckSet(t *testing.T) {
	const gw = "https://push.example.org/_matrix/push/v1/notify"
	full := func(kind string, data string) string {
		return `{"kind":` + kind + `,"app_id":"a","pushkey":"k","app_display_name":"A","device_display_name":"D","lang":"en","data":` + data + `}`
	}
	for _, tc := range []struct {
		body string
		want error
	}{
		{full(`"http"`, `{"url":"`+gw+`"}`), nil},
		{full(`"http"`, `{"url":"http://10.0.0.1:5000/gw/_matrix/push/v1/notify","format":"event_id_only"}`), nil},
		{full(`"email"`, `{"brand":"x"}`), nil},
		{`{"kind":null,"app_id":"a","pushkey":"k"}`, nil},
		{`{"app_id":"a","pushkey":"k"}`, nil}, // kind absent is null: a deletion
		{`{"kind":"http","app_id":"a"}`, ErrMissingParam},
		{full(`"sms"`, `{}`), ErrInvalidParam},
		{full(`"http"`, `{}`), ErrMissingParam},
		{full(`"http"`, `[]`), ErrBadJSON},
		{full(`"http"`, `null`), ErrBadJSON},
		{full(`"http"`, `{"url":1}`), ErrBadJSON},
		{full(`"http"`, `{"url":"`+gw+`","format":"full"}`), ErrInvalidParam},
		{full(`"http"`, `{"url":"`+gw+`","format":null}`), ErrInvalidParam},
		{full(`"http"`, `{"url":"https://p.example/notify"}`), ErrInvalidParam},
		{full(`"http"`, `{"url":"ftp://p.example/_matrix/push/v1/notify"}`), ErrInvalidParam},
		{full(`"http"`, `{"url":"https:///_matrix/push/v1/notify"}`), ErrInvalidParam},
		{full(`"http"`, `{"url":"https://u:p@p.example/_matrix/push/v1/notify"}`), ErrInvalidParam},
		{full(`"http"`, `{"url":"/_matrix/push/v1/notify"}`), ErrInvalidParam},
		{`{"kind":"http","app_id":"` + strings.Repeat("a", 65) + `","pushkey":"k"}`, ErrInvalidParam},
		{`{"kind":"http","app_id":"a","pushkey":"` + strings.Repeat("k", 513) + `"}`, ErrInvalidParam},
		{full(`"http"`, `{"url":"`+gw+`","pad":"`+strings.Repeat("x", maxDataBytes)+`"}`), ErrInvalidParam},
	} {
		var req SetRequest
		if err := json.Unmarshal([]byte(tc.body), &req); err != nil {
			t.Fatalf("%s: %v", tc.body, err)
		}
		_, err := CheckSet(&req)
		if (tc.want == nil) != (err == nil) || (tc.want != nil && !errors.Is(err, tc.want)) {
			t.Errorf("CheckSet(%.120s) = %v, want %v", tc.body, err, tc.want)
		}
	}
}

// FuzzCheckSet: no request body makes the checks panic, and what passes
// is an http pusher with a gateway URL, an email pusher, or a deletion.
func FuzzCheckSet(f *testing.F) {
	f.Add(`{"kind":"http","app_id":"a","pushkey":"k","app_display_name":"A","device_display_name":"D","lang":"en","data":{"url":"https://p/_matrix/push/v1/notify"}}`)
	f.Add(`{"kind":null,"app_id":"a","pushkey":"k"}`)
	f.Add(`{"kind":"email","app_id":"a","pushkey":"k","app_display_name":"A","device_display_name":"D","lang":"en","data":{"format":"event_id_only"}}`)
	f.Fuzz(func(t *testing.T, body string) {
		var req SetRequest
		if json.Unmarshal([]byte(body), &req) != nil {
			return
		}
		data, err := CheckSet(&req)
		if err != nil || req.Kind == nil {
			return
		}
		if !json.Valid(data) {
			t.Fatalf("CheckSet(%s) accepted data %q, not JSON", body, data)
		}
		if *req.Kind == "http" {
			var d pusherData
			if json.Unmarshal(data, &d) != nil || checkURL(d.URL) != nil {
				t.Fatalf("CheckSet(%s) accepted an http pusher with url %q", body, d.URL)
			}
		}
	})
}
