#!/usr/bin/env python3
"""Synapse-to-Synapse federation figures, measured the way Parley's own
benchmarks measure Parley-to-Parley (homeserver/fedthree_bench_test.go and
homeserver/fedjoin_bench_test.go), so docs/benchmarks.md can put them side
by side. Run it through bench/synapse-fed.sh, which starts the two Synapses.

    synapse-fed.py A_URL A_SECRET B_URL B_SECRET [pdus N] [join M] [catchup N ...]

Scenarios (run in the order given):
  pdus N   alice on A and bob on B share a public room made on A. N messages
           are sent on A by 8 concurrent senders; the clock runs from the
           first send until B serves the last event of every sender (as
           BenchmarkFederationPDUs). Prints PDUs/s and A's own sends/s.
  join M   a fresh public room on A is filled with M members (not timed),
           then a fresh user on B joins it by room ID with server_name=A.
           Prints the time /join takes, and the time until B reports all
           M+1 members joined (Synapse joins with partial state, MSC3706,
           so /join can return before B holds the whole member list).
  catchup N alice on A and bob on B share a public room made on A. B's
           Synapse is stopped (synapse-stop.sh --keep), N messages are sent
           on A by 8 concurrent senders (not timed), B is started again on
           the same data. The clock runs from B answering /health (its
           start-up is not counted) until B serves the last message, then
           until bob holds all N, paging /messages back on B where B has
           not got them yet (Synapse catches a destination up with the
           room's latest event only; B fetches at most 10 missing events
           before it, and backfills the rest when a client pages back).
           A's retry wait is included, as in BenchmarkFederationCatchUp: A
           retries a destination that was down when it next sends to it,
           when the destination contacts A, or on its once-a-minute wake-up
           of destinations needing catch-up, so this can take up to a
           minute before anything moves. Needs SYN_ROOT, SYN_B_DIR and
           SYN_B_HOST (set by synapse-fed.sh) to stop and start B.

Standard library only; talks to the client API over plain HTTP.
"""

import hashlib
import hmac
import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor

SENDERS = 8
FILL_WORKERS = 8
TIMEOUT = 1800  # seconds any one wait may take


def esc(s):
    return urllib.parse.quote(s, safe="")


class Server:
    def __init__(self, url, secret):
        self.url = url.rstrip("/")
        self.secret = secret
        self.name = None

    def call(self, method, path, body=None, token=None, ok=(200,)):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        if token:
            req.add_header("Authorization", "Bearer " + token)
        try:
            with urllib.request.urlopen(req, timeout=120) as res:
                return res.status, json.loads(res.read() or b"{}")
        except urllib.error.HTTPError as e:
            text = e.read()
            if e.code in ok:
                return e.code, json.loads(text or b"{}")
            return e.code, {"raw": text.decode(errors="replace")}

    def must(self, method, path, body=None, token=None):
        code, res = self.call(method, path, body, token)
        if code not in (200, 201):
            raise SystemExit(f"{method} {self.url}{path}: {code} {res}")
        return res

    def register(self, user, admin=False):
        """Registers user through the shared-secret admin API; returns
        (user_id, access_token)."""
        nonce = self.must("GET", "/_synapse/admin/v1/register")["nonce"]
        password = "bench-" + user
        mac = hmac.new(self.secret.encode(), digestmod=hashlib.sha1)
        mac.update(b"\x00".join([nonce.encode(), user.encode(), password.encode(),
                                 b"admin" if admin else b"notadmin"]))
        res = self.must("POST", "/_synapse/admin/v1/register", {
            "nonce": nonce, "username": user, "password": password,
            "admin": admin, "mac": mac.hexdigest()})
        if self.name is None:
            self.name = res["user_id"].split(":", 1)[1]
        return res["user_id"], res["access_token"]


def wait_for(what, cond, poll=0.005):
    deadline = time.monotonic() + TIMEOUT
    while not cond():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(poll)


def join_remote(b, token, room, server_name):
    b.must("POST", f"/_matrix/client/v3/join/{esc(room)}?server_name={esc(server_name)}", {}, token)


def scenario_pdus(a, b, admin_a, n, tag):
    alice = a.register(f"alice{tag}")
    bob = b.register(f"bob{tag}")
    room = a.must("POST", "/_matrix/client/v3/createRoom", {"preset": "public_chat"}, alice[1])["room_id"]
    join_remote(b, bob[1], room, a.name)
    wait_for("bob's join on A", lambda: a.call(
        "GET", f"/_matrix/client/v3/rooms/{esc(room)}/state/m.room.member/{esc(bob[0])}", token=alice[1])[0] == 200)

    last = [""] * SENDERS
    errors = []

    def sender(s):
        for i in range(s, n, SENDERS):
            code, res = a.call("PUT", f"/_matrix/client/v3/rooms/{esc(room)}/send/m.room.message/{tag}-{i}",
                               {"msgtype": "m.text", "body": f"{tag} {i}"}, alice[1])
            if code != 200:
                errors.append((code, res))
                return
            last[s] = res["event_id"]

    start = time.monotonic()
    threads = [threading.Thread(target=sender, args=(s,)) for s in range(SENDERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise SystemExit(f"send failed: {errors[0]}")
    sends = time.monotonic() - start
    for eid in last:
        if eid:
            wait_for(f"event {eid} on B", lambda: b.call(
                "GET", f"/_matrix/client/v3/rooms/{esc(room)}/event/{esc(eid)}", token=bob[1])[0] == 200)
    total = time.monotonic() - start
    print(json.dumps({"scenario": "pdus", "pdus": n, "senders": SENDERS,
                      "sends_per_s": round(n / sends, 1), "pdus_per_s": round(n / total, 1),
                      "seconds": round(total, 2)}), flush=True)


def scenario_join(a, b, admin_a, members, tag):
    owner = a.register(f"owner{tag}")
    joiner = b.register(f"joiner{tag}")
    room = a.must("POST", "/_matrix/client/v3/createRoom", {"preset": "public_chat"}, owner[1])["room_id"]

    def fill(j):
        uid = f"@m{tag}_{j}:{a.name}"
        # Made without a password, so no bcrypt per member; the admin join
        # API then joins the user as itself.
        a.must("PUT", f"/_synapse/admin/v2/users/{esc(uid)}", {"displayname": f"m{j}"}, admin_a)
        a.must("POST", f"/_synapse/admin/v1/join/{esc(room)}", {"user_id": uid}, admin_a)

    t0 = time.monotonic()
    with ThreadPoolExecutor(FILL_WORKERS) as pool:
        list(pool.map(fill, range(1, members)))
    fill_s = time.monotonic() - t0

    start = time.monotonic()
    join_remote(b, joiner[1], room, a.name)
    joined = time.monotonic() - start

    def full():
        code, res = b.call("GET", f"/_matrix/client/v3/rooms/{esc(room)}/joined_members", token=joiner[1])
        return code == 200 and len(res.get("joined", {})) >= members + 1
    wait_for("the whole member list on B", full, poll=0.05)
    full_s = time.monotonic() - start
    print(json.dumps({"scenario": "join", "members": members, "join_s": round(joined, 2),
                      "full_state_s": round(full_s, 2), "fill_s": round(fill_s, 1)}), flush=True)


def restart_b(stop):
    """Stops (stop=True, data kept) or starts Synapse B through the
    scripts synapse-fed.sh used to start it."""
    env = dict(os.environ, PARLEY_SYNAPSE_DIR=os.environ["SYN_B_DIR"],
               PARLEY_SYNAPSE_HOST=os.environ["SYN_B_HOST"])
    root = os.environ["SYN_ROOT"]
    cmd = [f"{root}/scripts/synapse-stop.sh", "--keep"] if stop else [f"{root}/scripts/synapse-start.sh"]
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)


def scenario_catchup(a, b, admin_a, n, tag):
    alice = a.register(f"calice{tag}")
    bob = b.register(f"cbob{tag}")
    room = a.must("POST", "/_matrix/client/v3/createRoom", {"preset": "public_chat"}, alice[1])["room_id"]
    join_remote(b, bob[1], room, a.name)
    wait_for("bob's join on A", lambda: a.call(
        "GET", f"/_matrix/client/v3/rooms/{esc(room)}/state/m.room.member/{esc(bob[0])}", token=alice[1])[0] == 200)

    restart_b(stop=True)
    ids = [None] * n
    errors = []

    def sender(s):
        for i in range(s, n, SENDERS):
            code, res = a.call("PUT", f"/_matrix/client/v3/rooms/{esc(room)}/send/m.room.message/{tag}-{i}",
                               {"msgtype": "m.text", "body": f"{tag} {i}"}, alice[1])
            if code != 200:
                errors.append((code, res))
                return
            ids[i] = res["event_id"]

    threads = [threading.Thread(target=sender, args=(s,)) for s in range(SENDERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise SystemExit(f"send failed: {errors[0]}")
    # The newest event on A: the one B is sent when A catches it up.
    newest = a.must("GET", f"/_matrix/client/v3/rooms/{esc(room)}/messages?dir=b&limit=1",
                    token=alice[1])["chunk"][0]["event_id"]

    restart_b(stop=False)
    start = time.monotonic()
    wait_for(f"the newest event {newest} on B", lambda: b.call(
        "GET", f"/_matrix/client/v3/rooms/{esc(room)}/event/{esc(newest)}", token=bob[1])[0] == 200, poll=0.02)
    last_s = time.monotonic() - start
    counting = time.monotonic()  # the count below is left out of the clock
    pushed = sum(1 for eid in ids if b.call(
        "GET", f"/_matrix/client/v3/rooms/{esc(room)}/event/{esc(eid)}", token=bob[1])[0] == 200)

    start += time.monotonic() - counting
    # Page back on B (which backfills from A) until bob has seen all N.
    want = set(ids)
    seen = set()
    frm = None
    pages = 0
    deadline = time.monotonic() + TIMEOUT
    while want - seen:
        if time.monotonic() > deadline:
            raise SystemExit("timed out paging back on B")
        q = "dir=b&limit=100" + (f"&from={esc(frm)}" if frm else "")
        res = b.must("GET", f"/_matrix/client/v3/rooms/{esc(room)}/messages?{q}", token=bob[1])
        pages += 1
        seen.update(ev["event_id"] for ev in res.get("chunk", []))
        if not res.get("end") or not res.get("chunk"):
            if want - seen:  # history ended short; start again from the top
                frm = None
                continue
        frm = res.get("end")
    all_s = time.monotonic() - start
    print(json.dumps({"scenario": "catchup", "events": n, "newest_on_b_s": round(last_s, 2),
                      "held_before_paging": pushed, "all_on_b_s": round(all_s, 2),
                      "pages": pages}), flush=True)


def main(argv):
    if len(argv) < 5:
        raise SystemExit(__doc__)
    a, b = Server(argv[1], argv[2]), Server(argv[3], argv[4])
    tag = str(int(time.time()))
    _, admin_a = a.register(f"admin{tag}", admin=True)
    b.register(f"admin{tag}", admin=True)
    rest = argv[5:]
    for i in range(0, len(rest), 2):
        kind, size = rest[i], int(rest[i + 1])
        if kind == "pdus":
            scenario_pdus(a, b, admin_a, size, f"{tag}p{i}")
        elif kind == "catchup":
            scenario_catchup(a, b, admin_a, size, f"{tag}c{i}")
        elif kind == "join":
            scenario_join(a, b, admin_a, size, f"{tag}j{i}")
        else:
            raise SystemExit(f"unknown scenario {kind}")


if __name__ == "__main__":
    main(sys.argv)
