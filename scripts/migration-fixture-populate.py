#!/usr/bin/env python3
"""Writes the migration fixture's rooms through the client API of a running
Parley (scripts/migration-fixture.sh starts it). Standard library only.

    migration-fixture-populate.py BASE_URL

Users alice, bob and carol (password pw-<name>, as homeserver/hstest logs
in). What it writes is listed in homeserver/testdata/migration/README.md.
"""
import json
import sys
import urllib.parse
import urllib.request

BASE = sys.argv[1].rstrip("/")
C = "/_matrix/client/v3"
txn = 0


def call(method, path, body=None, token=None, raw=None, ctype="application/json"):
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(BASE + path, data=data, method=method)
    req.add_header("Content-Type", ctype)
    if token:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def must(method, path, body=None, token=None, **kw):
    st, res = call(method, path, body, token, **kw)
    if st != 200:
        sys.exit(f"{method} {path}: {st} {res}")
    return res


def register(name):
    body = {"username": name, "password": "pw-" + name, "initial_device_display_name": "fixture"}
    st, res = call("POST", C + "/register", body)
    assert st == 401, (st, res)
    body["auth"] = {"type": "m.login.dummy", "session": res["session"]}
    return must("POST", C + "/register", body)["access_token"]


def esc(s):
    return urllib.parse.quote(s, safe="")


def next_txn():
    global txn
    txn += 1
    return f"fx{txn}"


def send(tok, room, content, typ="m.room.message"):
    return must("PUT", f"{C}/rooms/{esc(room)}/send/{typ}/{next_txn()}", content, tok)["event_id"]


def text(tok, room, body):
    return send(tok, room, {"msgtype": "m.text", "body": body})


def state(tok, room, typ, content, key=""):
    return must("PUT", f"{C}/rooms/{esc(room)}/state/{typ}/{esc(key)}", content, tok)["event_id"]


alice, bob, carol = register("alice"), register("bob"), register("carol")
must("PUT", C + "/profile/@carol:localhost/displayname", {"displayname": "Carol C"}, carol)

# A public room in the directory, with an alias, a rename, a topic change,
# an edit, a redaction, receipts, a kick and a media message.
lobby = must("POST", C + "/createRoom", {"preset": "public_chat", "visibility": "public", "room_alias_name": "lobby",
                                          "name": "Lobby", "topic": "Welcome"}, alice)["room_id"]
must("POST", f"{C}/join/{esc('#lobby:localhost')}", {}, bob)
must("POST", f"{C}/join/{esc(lobby)}", {}, carol)
text(alice, lobby, "hello everyone")
first_bob = text(bob, lobby, "hi alice")
spam = text(bob, lobby, "buy cheap watches")
text(carol, lobby, "hello from carol")
state(alice, lobby, "m.room.name", {"name": "The Lobby"})
state(alice, lobby, "m.room.topic", {"topic": "Be nice"})
send(bob, lobby, {"msgtype": "m.text", "body": "* hi alice!", "m.new_content": {"msgtype": "m.text", "body": "hi alice!"},
                  "m.relates_to": {"rel_type": "m.replace", "event_id": first_bob}})
must("PUT", f"{C}/rooms/{esc(lobby)}/redact/{esc(spam)}/{next_txn()}", {"reason": "spam"}, alice)
mxc = must("POST", "/_matrix/media/v3/upload?filename=notes.txt", token=alice, raw=b"fixture media\n", ctype="text/plain")["content_uri"]
send(alice, lobby, {"msgtype": "m.file", "body": "notes.txt", "url": mxc, "info": {"mimetype": "text/plain", "size": 14}})
last = text(alice, lobby, "see the notes")
must("POST", f"{C}/rooms/{esc(lobby)}/receipt/m.read/{esc(last)}", {}, bob)
must("POST", f"{C}/rooms/{esc(lobby)}/receipt/m.read/{esc(last)}", {}, alice)
must("POST", f"{C}/rooms/{esc(lobby)}/kick", {"user_id": "@carol:localhost", "reason": "bye"}, alice)
text(alice, lobby, "carol left")

# A direct chat between alice and bob.
dm = must("POST", C + "/createRoom", {"preset": "trusted_private_chat", "is_direct": True, "invite": ["@bob:localhost"]}, alice)["room_id"]
must("POST", f"{C}/rooms/{esc(dm)}/join", {}, bob)
text(alice, dm, "just us")
dm_last = text(bob, dm, "indeed")
must("POST", f"{C}/rooms/{esc(dm)}/receipt/m.read/{esc(dm_last)}", {}, alice)

# A private room of bob's, with a pending invite for carol.
den = must("POST", C + "/createRoom", {"preset": "private_chat", "name": "Bob's den"}, bob)["room_id"]
state(bob, den, "m.room.topic", {"topic": "quiet"})
text(bob, den, "nobody here yet")
must("POST", f"{C}/rooms/{esc(den)}/invite", {"user_id": "@carol:localhost"}, bob)

# Account data: global, per room, and a tag.
must("PUT", C + "/user/@alice:localhost/account_data/org.example.settings", {"theme": "dark"}, alice)
must("PUT", f"{C}/user/@alice:localhost/rooms/{esc(lobby)}/tags/m.favourite", {"order": 0.5}, alice)
must("PUT", f"{C}/user/@bob:localhost/rooms/{esc(dm)}/account_data/org.example.note", {"note": "alice"}, bob)

print(json.dumps({"lobby": lobby, "dm": dm, "den": den, "media": mxc}))
