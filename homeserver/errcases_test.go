package homeserver_test

import (
	"testing"

	"github.com/parley-im/parley/homeserver/hstest"
)

// errorCase is one request that must be refused with a Matrix error.
type errorCase struct {
	name   string
	c      *hstest.Client
	method string
	path   string
	body   any
	status int
	code   string
}

// expectErrors sends each case and reports those whose status or errcode
// differ from the case's.
func expectErrors(t *testing.T, cases []errorCase) {
	t.Helper()
	for _, tc := range cases {
		st, res := tc.c.Do(tc.method, tc.path, tc.body)
		if st != tc.status || res.Get("errcode").String() != tc.code {
			t.Errorf("%s: %s %s = %d %s, want %d %s", tc.name, tc.method, tc.path, st, res.Raw, tc.status, tc.code)
		}
	}
}
