// Package serveracl decides whether a server may take part in a room under
// the room's m.room.server_acl state event, as the Matrix spec defines it
// (client-server API, "Server Access Control Lists"). It is pure: it parses
// the event content and matches server names, and knows nothing of rooms,
// HTTP or storage, so inbound transactions, backfill, joins and outbound
// sends can all run the same rule.
//
// The rule: the port is dropped from the server name; an IP literal is
// denied when allow_ip_literals is false; a name matching any deny glob is
// denied; otherwise it is allowed only if it matches an allow glob. A
// missing allow list denies everyone. Globs use * (zero or more characters)
// and ? (exactly one character). Matching ignores ASCII case, since server
// names are DNS names (Synapse matches the same way).
package serveracl

import (
	"encoding/json"
	"net/netip"
	"strings"
)

// ACL is a parsed m.room.server_acl content. The zero ACL denies every
// server; use Parse or AllowAll. It is immutable after Parse and safe for
// concurrent use.
type ACL struct {
	allowIPLiterals bool
	allow, deny     []string // lower-cased globs
	allowAll        bool
}

// AllowAll is the ACL of a room without an m.room.server_acl event.
func AllowAll() *ACL { return &ACL{allowAll: true, allowIPLiterals: true} }

// maxEntries bounds the globs taken from one event: an event is at most
// 64 KiB, but each glob costs every check that reads the ACL.
const maxEntries = 1024

// Parse reads an m.room.server_acl content. Fields of the wrong type take
// their defaults, as the spec asks (allow_ip_literals not a boolean is
// true; allow or deny not a list is empty), and non-string entries are
// skipped. Content that is not a JSON object is an ACL of defaults, which
// denies everyone: the room's admins asked for an ACL, and a broken one
// must not open the room.
func Parse(content []byte) *ACL {
	var raw struct {
		AllowIPLiterals json.RawMessage `json:"allow_ip_literals"`
		Allow           json.RawMessage `json:"allow"`
		Deny            json.RawMessage `json:"deny"`
	}
	a := &ACL{allowIPLiterals: true}
	if json.Unmarshal(content, &raw) != nil {
		return a
	}
	if string(raw.AllowIPLiterals) == "false" {
		a.allowIPLiterals = false
	}
	a.allow = globs(raw.Allow)
	a.deny = globs(raw.Deny)
	return a
}

func globs(raw json.RawMessage) []string {
	var list []json.RawMessage
	if json.Unmarshal(raw, &list) != nil {
		return nil
	}
	out := make([]string, 0, min(len(list), maxEntries))
	for _, item := range list {
		var s string
		if json.Unmarshal(item, &s) != nil {
			continue
		}
		if out = append(out, strings.ToLower(s)); len(out) == maxEntries {
			break
		}
	}
	return out
}

// Allowed reports whether server (a server name, with or without a port)
// may take part in the room.
func (a *ACL) Allowed(server string) bool {
	if a == nil {
		return false
	}
	if a.allowAll {
		return true
	}
	host := strings.ToLower(Host(server))
	if !a.allowIPLiterals && isIPLiteral(host) {
		return false
	}
	for _, g := range a.deny {
		if Match(g, host) {
			return false
		}
	}
	for _, g := range a.allow {
		if Match(g, host) {
			return true
		}
	}
	return false
}

// Host returns server without its port: "example.org:8448" is
// "example.org", "[::1]:8448" is "[::1]".
func Host(server string) string {
	if strings.HasPrefix(server, "[") {
		if i := strings.IndexByte(server, ']'); i >= 0 {
			return server[:i+1]
		}
		return server
	}
	if i := strings.LastIndexByte(server, ':'); i >= 0 {
		return server[:i]
	}
	return server
}

func isIPLiteral(host string) bool {
	if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
		_, err := netip.ParseAddr(host[1 : len(host)-1])
		return err == nil
	}
	addr, err := netip.ParseAddr(host)
	return err == nil && addr.Is4()
}

// Match reports whether name matches glob, where * matches zero or more
// characters and ? exactly one (one byte: server names are ASCII). It
// runs in O(len(glob)·len(name)) at worst, with no recursion, so a
// hostile glob cannot make it slow.
func Match(glob, name string) bool {
	g, n := 0, 0
	star, mark := -1, 0
	for n < len(name) {
		switch {
		case g < len(glob) && (glob[g] == '?' || glob[g] == name[n]):
			g++
			n++
		case g < len(glob) && glob[g] == '*':
			star, mark = g, n
			g++
		case star >= 0:
			g = star + 1
			mark++
			n = mark
		default:
			return false
		}
	}
	for g < len(glob) && glob[g] == '*' {
		g++
	}
	return g == len(glob)
}
