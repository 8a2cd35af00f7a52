// End-to-end tests of Parley with a real Matrix client: matrix-js-sdk 37.5.0.
//
// What this proves: an unmodified matrix-js-sdk (the library under Element
// Web) can, against a `parley serve` started here on a free port with a fresh
// data dir (SQLite, or PostgreSQL when PARLEY_DATABASE_URL is set):
//   0. register users through the real UIA dummy flow of /register, log in a
//      second device with m.login.password, and reach sync state PREPARED;
//   1. create a DM (is_direct, trusted_private_chat) that the invitee sees as
//      a DM invite and joins;
//   2. create a private group with a name and an alias that the invitee joins
//      by alias;
//   3. exchange interleaved messages from three devices and see the same
//      events in the same order on every device (alice1, alice2, bob1, bob2);
//   4. count unread notifications from the server's sync and clear them with
//      a read receipt, on both of bob's devices, and show the receipt to alice;
//   5. show typing notifications to the other user;
//   6. upload media, download it from the authenticated v1 endpoint byte for
//      byte, and deliver an m.image message that refers to it;
//   7. with the SDK's Rust crypto: create a key backup version, let the SDK
//      back up the megolm key of an encrypted message, and restore it on a
//      new device of the same user;
//   8. relations: an edit and a reaction through the SDK's /relations call
//      (filtered by rel_type and event type, paged), and the edit bundled in
//      /event, /messages and applied by the SDK from /sync;
//   9. threads: replies, /threads (include=participated, paging, the thread
//      summary: count, latest event, participation) and a threaded read
//      receipt that the other user sees with its thread_id;
//  10. key backup over the SDK's HTTP API: version create/read/update/delete,
//      keys per room and session, the spec's replacement rules, etag, count,
//      and M_WRONG_ROOM_KEYS_VERSION;
//   search: find a Chinese phrase, a Japanese phrase and a Korean word in a
//      room with the SDK's search call, with context, one result per page
//      through next_batch.
// Waits poll the clients' state with a deadline (no fixed sleeps). Each test
// has a 60 s limit (the whole suite 10 min), and the server is killed at the end.
//
// Run: cd tests/jsclient && npm ci && PARLEY_BIN=/path/to/parley npm test

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";

import {
    RUN_ID,
    SERVER_NAME,
    http,
    httpErrorReport,
    isRemote,
    loggingFetch,
    loginDevice,
    messageEvents,
    rateLimitNote,
    registerUser,
    sdk,
    show,
    startClient,
    startServer,
    waitFor,
} from "./harness.js";

const TEST_TIMEOUT = 60_000;
const PASSWORD = "correct horse battery staple";

// A 1x1 PNG.
const PNG = Buffer.from(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==",
    "base64",
);

describe(`parley with matrix-js-sdk (${process.env.PARLEY_DATABASE_URL ? "PostgreSQL" : "SQLite"})`, { timeout: 10 * 60_000 }, () => {
    let server;
    let failed = false;
    const c = {}; // clients: alice1, alice2, bob1, bob2
    const users = {}; // alice, bob: { user_id }
    const rooms = {}; // dm, group: room ids

    // Runs a scenario with the per-test limit; fails it at once, saying why,
    // if an earlier scenario that it builds on failed; remembers failures so
    // that after() prints the failed requests and the server log.
    function scenario(name, needs, fn) {
        it(name, { timeout: TEST_TIMEOUT }, async (t) => {
            const missing = needs.filter((n) => !(n in c) && !(n in rooms));
            if (missing.length) {
                failed = true;
                assert.fail(`cannot run: an earlier scenario did not provide ${missing.join(", ")}`);
            }
            try {
                await fn(t);
            } catch (err) {
                failed = true;
                throw err;
            }
        });
    }

    before(async () => {
        server = await startServer();
    }, { timeout: TEST_TIMEOUT });

    after(async () => {
        for (const client of Object.values(c)) client.stopClient();
        if (!server) return;
        const note = rateLimitNote();
        if (note) console.error(`note: ${note}`);
        if (failed) {
            const errors = httpErrorReport();
            if (errors) console.error(`requests that failed (most recent last):\n${errors}`);
            console.error(`parley server log (tail) at ${server.baseUrl}:\n${await server.logTail()}`);
        }
        await server.stop({ keep: failed });
    }, { timeout: TEST_TIMEOUT });

    scenario("0. register alice and bob (UIA dummy), log in second devices, first sync", [], async () => {
        const base = server.baseUrl;
        const alice = `alice_${RUN_ID}`;
        const bob = `bob_${RUN_ID}`;

        const a1 = await registerUser(base, alice, PASSWORD, "alice1");
        assert.equal(a1.user_id, `@${alice}:${SERVER_NAME}`);
        assert.ok(a1.access_token && a1.device_id, `register response lacks token/device: ${show(a1)}`);
        const b1 = await registerUser(base, bob, PASSWORD, "bob1");
        assert.equal(b1.user_id, `@${bob}:${SERVER_NAME}`);

        // The same name again must be refused.
        const again = await http(base, "POST", "/_matrix/client/v3/register", {
            json: { username: alice, password: PASSWORD, auth: { type: "m.login.dummy" } },
        });
        assert.ok(again.status === 400 || again.status === 401, `re-register status ${again.status}`);
        if (again.status === 400) assert.equal(again.json?.errcode, "M_USER_IN_USE");

        const a2 = await loginDevice(base, alice, PASSWORD, "alice2");
        assert.equal(a2.user_id, a1.user_id);
        assert.notEqual(a2.device_id, a1.device_id, "a second login must create a new device");
        assert.notEqual(a2.access_token, a1.access_token);
        const b2 = await loginDevice(base, bob, PASSWORD, "bob2");
        assert.equal(b2.user_id, b1.user_id);

        // A wrong password is refused with M_FORBIDDEN.
        const bad = await http(base, "POST", "/_matrix/client/v3/login", {
            json: { type: "m.login.password", identifier: { type: "m.id.user", user: alice }, password: "nope" },
        });
        assert.equal(bad.status, 403, `wrong password: ${bad.status} ${show(bad.json)}`);
        assert.equal(bad.json?.errcode, "M_FORBIDDEN");

        users.alice = { user_id: a1.user_id };
        users.bob = { user_id: b1.user_id };
        const creds = { alice1: a1, alice2: a2, bob1: b1, bob2: b2 };
        for (const [label, cr] of Object.entries(creds)) {
            const who = await http(base, "GET", "/_matrix/client/v3/account/whoami", { token: cr.access_token });
            assert.equal(who.status, 200, `whoami for ${label}: ${who.status} ${show(who.json)}`);
            assert.equal(who.json.user_id, cr.user_id);
            assert.equal(who.json.device_id, cr.device_id);
        }
        // Start all four at once; keep every client that started, so that
        // after() stops it even if another one failed.
        const started = await Promise.allSettled(
            Object.entries(creds).map(([label, cr]) => startClient(base, label, cr)),
        );
        for (const r of started) if (r.status === "fulfilled") c[r.value.label] = r.value;
        const failures = started.filter((r) => r.status === "rejected").map((r) => r.reason);
        if (failures.length) throw failures[0];
    });

    scenario("1. alice creates a DM with bob; bob sees a DM invite and joins", ["alice1", "alice2", "bob1", "bob2"], async () => {
        const { room_id: roomId } = await c.alice1.createRoom({
            is_direct: true,
            invite: [users.bob.user_id],
            preset: "trusted_private_chat",
        });
        assert.match(roomId, /^!\S+$/);

        const invite = await waitFor("bob1 to see the invite", () => {
            const room = c.bob1.getRoom(roomId);
            return room?.getMyMembership() === "invite" && room;
        });
        assert.equal(invite.getDMInviter(), users.alice.user_id, "the invite is not marked is_direct");
        // The invite state carries alice's member event, so the invite is
        // named after her rather than "Empty room".
        assert.ok(invite.getMember(users.alice.user_id), "invite_state lacks the inviter's member event");
        assert.notEqual(invite.name, "Empty room", `DM invite name ${invite.name}`);

        await c.bob1.joinRoom(roomId);
        for (const name of ["alice1", "alice2", "bob1", "bob2"]) {
            await waitFor(`${name} to see bob joined the DM`, () =>
                c[name].getRoom(roomId)?.getMember(users.bob.user_id)?.membership === "join",
            );
        }
        const room = c.bob1.getRoom(roomId);
        assert.equal(room.getMyMembership(), "join");
        assert.equal(room.getJoinRule(), "invite");
        // trusted_private_chat: the invitee gets the creator's power level.
        const pl = room.currentState.getStateEvents("m.room.power_levels", "")?.getContent();
        assert.equal(pl?.users?.[users.bob.user_id], pl?.users?.[users.alice.user_id], `power levels ${show(pl)}`);
        assert.deepEqual(
            room.getJoinedMembers().map((m) => m.userId).sort(),
            [users.alice.user_id, users.bob.user_id].sort(),
        );
        rooms.dm = roomId;
    });

    scenario("2. alice creates a named group with an alias; bob joins by alias", ["alice1", "bob1", "bob2"], async () => {
        const aliasLocal = `group_${RUN_ID}`;
        const alias = `#${aliasLocal}:${SERVER_NAME}`;
        const name = `Parley group ${RUN_ID}`;
        const { room_id: roomId } = await c.alice1.createRoom({
            preset: "private_chat",
            name,
            room_alias_name: aliasLocal,
            invite: [users.bob.user_id],
        });

        const resolved = await c.bob1.getRoomIdForAlias(alias);
        assert.equal(resolved.room_id, roomId);

        await waitFor("bob1 to see the group invite", () => c.bob1.getRoom(roomId)?.getMyMembership() === "invite");
        const joined = await c.bob1.joinRoom(alias);
        assert.equal(joined.roomId, roomId);

        for (const who of ["alice1", "alice2", "bob1", "bob2"]) {
            await waitFor(`${who} to see bob joined the group with its name and alias`, () => {
                const room = c[who].getRoom(roomId);
                return (
                    room?.getMember(users.bob.user_id)?.membership === "join" &&
                    room.name === name &&
                    room.getCanonicalAlias() === alias
                );
            });
        }
        assert.equal(c.bob1.getRoom(roomId).getJoinRule(), "invite");
        rooms.group = roomId;
    });

    scenario("3. interleaved messages arrive on every device in the same order", ["alice1", "alice2", "bob1", "bob2", "dm", "group"], async () => {
        // Like a conversation: each sender first sees the previous message
        // (through its own /sync), then answers. (Without that wait, a
        // sender's local echo can sit before a message that the server
        // ordered earlier but that had not reached that client yet.)
        const senders = ["alice1", "alice2", "bob1"];
        const sent = {};
        for (const [key, roomId] of Object.entries(rooms)) {
            sent[key] = [];
            for (let i = 0; i < 10; i++) {
                const from = senders[i % senders.length];
                const prev = sent[key].at(-1);
                if (prev) {
                    await waitFor(`${from} to see ${key} message ${i - 1} before answering`, () =>
                        c[from].getRoom(roomId)?.findEventById(prev.eventId),
                    );
                }
                const body = `${key} message ${i} from ${from} (${RUN_ID})`;
                const res = await c[from].sendTextMessage(roomId, body);
                assert.match(res.event_id, /^\$/);
                sent[key].push({ body, eventId: res.event_id });
            }
        }
        for (const [key, roomId] of Object.entries(rooms)) {
            const want = sent[key];
            for (const who of ["alice1", "alice2", "bob1", "bob2"]) {
                const got = await waitFor(
                    `${who} to have all ${want.length} messages of the ${key} room, synced from the server ` +
                        `(if they arrive late, does the server wake a waiting /sync?)`,
                    () => {
                        const evs = messageEvents(c[who], roomId).filter((e) => e.getContent().body?.startsWith(`${key} message `));
                        return evs.length >= want.length && evs.every(isRemote) && evs;
                    },
                );
                assert.deepEqual(
                    got.map((e) => e.getContent().body),
                    want.map((w) => w.body),
                    `${who}: bodies of the ${key} room out of order`,
                );
                assert.deepEqual(
                    got.map((e) => e.getId()),
                    want.map((w) => w.eventId),
                    `${who}: event ids of the ${key} room differ from the send responses`,
                );
                for (const [i, e] of got.entries()) {
                    assert.equal(e.getSender(), c[senders[i % senders.length]].getUserId(), `${who}: sender of ${e.getId()}`);
                }
            }
        }
    });

    scenario("4. unread counts reach N for bob and clear on both his devices after a read receipt", ["alice1", "bob1", "bob2", "dm"], async () => {
        const roomId = rooms.dm;
        const N = 5;
        const total = (who) => c[who].getRoom(roomId)?.getUnreadNotificationCount("total");
        const countIs = (who, n) => () => {
            if (total(who) !== n) throw new Error(`${who}'s getUnreadNotificationCount("total") is ${total(who)}`);
            return true;
        };
        // The count as the server reports it in a fresh /sync for bob1's token
        // (polled: a server may update counts just after the sync that
        // carries the event or receipt). The filter differs on each call, as
        // a server may answer identical initial syncs from a cache.
        let syncNonce = 0;
        const serverCount = async () => {
            const filter = JSON.stringify({
                presence: { not_types: [`org.parley.test.nonce.${RUN_ID}.${++syncNonce}`] },
                room: { rooms: [roomId], timeline: { limit: 1 } },
            });
            const res = await http(server.baseUrl, "GET", `/_matrix/client/v3/sync?timeout=0&filter=${encodeURIComponent(filter)}`, {
                token: c.bob1.getAccessToken(),
            });
            assert.equal(res.status, 200, `raw /sync: ${res.status}`);
            return res.json?.rooms?.join?.[roomId]?.unread_notifications?.notification_count;
        };
        const serverCountIs = (n) => async () => {
            const got = await serverCount();
            if (got !== n) throw new Error(`notification_count is ${got}`);
            return true;
        };
        const lastMessage = (who) => messageEvents(c[who], roomId).filter(isRemote).at(-1);

        // Start from zero: bob reads everything so far.
        await c.bob1.sendReadReceipt(lastMessage("bob1"));
        for (const who of ["bob1", "bob2"]) {
            await waitFor(`${who}: unread count 0 before the test`, countIs(who, 0));
        }

        const sentIds = [];
        for (let i = 0; i < N; i++) {
            const res = await c.alice1.sendTextMessage(roomId, `unread ${i} (${RUN_ID})`);
            sentIds.push(res.event_id);
        }
        for (const who of ["bob1", "bob2"]) {
            await waitFor(`${who}: unread count ${N}`, countIs(who, N));
        }
        await waitFor(`notification_count ${N} in a fresh /sync`, serverCountIs(N));

        const last = await waitFor("bob1 to have alice's last message", () => {
            const ev = lastMessage("bob1");
            return ev?.getId() === sentIds.at(-1) && ev;
        });
        await c.bob1.sendReadReceipt(last);
        for (const who of ["bob1", "bob2"]) {
            await waitFor(`${who}: unread count back to 0 after the receipt`, countIs(who, 0));
        }
        await waitFor("notification_count 0 in a fresh /sync after the receipt", serverCountIs(0));

        // Alice sees bob's receipt on her last message.
        await waitFor("alice1 to see bob's read receipt", () => {
            const room = c.alice1.getRoom(roomId);
            const ev = room?.findEventById(sentIds.at(-1));
            return ev && room.getUsersReadUpTo(ev).includes(users.bob.user_id);
        });
    });

    scenario("5. bob sees alice typing, and stop typing", ["alice1", "bob1", "dm"], async () => {
        const roomId = rooms.dm;
        const seen = [];
        const onTyping = (_event, member) => {
            if (member.roomId === roomId && member.userId === users.alice.user_id) seen.push(member.typing);
        };
        c.bob1.on(sdk.RoomMemberEvent.Typing, onTyping);
        try {
            await c.alice1.sendTyping(roomId, true, 10000);
            await waitFor("bob1 to see alice typing", () => c.bob1.getRoom(roomId)?.getMember(users.alice.user_id)?.typing === true);
            assert.ok(seen.includes(true), "no RoomMember.typing event with typing=true");

            await c.alice1.sendTyping(roomId, false);
            await waitFor("bob1 to see alice stop typing", () => c.bob1.getRoom(roomId)?.getMember(users.alice.user_id)?.typing === false);
            assert.equal(seen.at(-1), false);
        } finally {
            c.bob1.off(sdk.RoomMemberEvent.Typing, onTyping);
        }
    });

    scenario("6. media: upload, authenticated download, m.image message to bob", ["alice1", "bob1", "group"], async () => {
        const roomId = rooms.group;
        const up = await c.alice1.uploadContent(PNG, { type: "image/png", name: "dot.png" });
        const mxc = up?.content_uri;
        assert.match(mxc ?? "", /^mxc:\/\/[^/]+\/[A-Za-z0-9_-]+$/, `upload response ${show(up)}`);
        const [, serverName, mediaId] = mxc.match(/^mxc:\/\/([^/]+)\/(.+)$/);
        assert.equal(serverName, SERVER_NAME);

        const path = `/_matrix/client/v1/media/download/${serverName}/${mediaId}`;
        const dl = await http(server.baseUrl, "GET", path, { token: c.alice1.getAccessToken() });
        assert.equal(dl.status, 200, `download: ${dl.status} ${dl.bytes.toString("utf8", 0, 200)}`);
        assert.ok(dl.bytes.equals(PNG), `downloaded ${dl.bytes.length} bytes differ from the ${PNG.length} uploaded`);
        assert.match(dl.headers.get("content-type") ?? "", /^image\/png/);

        const anon = await http(server.baseUrl, "GET", path);
        assert.equal(anon.status, 401, `download without a token: ${anon.status}`);
        assert.equal(anon.json?.errcode, "M_MISSING_TOKEN");

        const sent = await c.alice1.sendMessage(roomId, {
            msgtype: "m.image",
            body: "dot.png",
            url: mxc,
            info: { mimetype: "image/png", size: PNG.length, w: 1, h: 1 },
        });
        const ev = await waitFor("bob1 to receive the m.image", () =>
            messageEvents(c.bob1, roomId).find((e) => e.getId() === sent.event_id),
        );
        assert.equal(ev.getContent().msgtype, "m.image");
        assert.equal(ev.getContent().url, mxc);

        // Bob fetches it the way a client renders it: the SDK's authenticated URL.
        const url = c.bob1.mxcUrlToHttp(ev.getContent().url, undefined, undefined, undefined, false, true, true);
        assert.ok(url?.includes("/_matrix/client/v1/media/download/"), `SDK media URL ${url}`);
        const bobDl = await http(server.baseUrl, "GET", url, { token: c.bob1.getAccessToken() });
        assert.equal(bobDl.status, 200, `bob's download: ${bobDl.status}`);
        assert.ok(bobDl.bytes.equals(PNG), "bob's download differs from the upload");
    });

    scenario("7. key backup: the SDK's Rust crypto backs up a room key and a new device restores it", [], async () => {
        const base = server.baseUrl;
        const carol = `carol_${RUN_ID}`;
        const cr1 = await registerUser(base, carol, PASSWORD, "carol1");
        const none = await http(base, "GET", "/_matrix/client/v3/room_keys/version", { token: cr1.access_token });
        assert.equal(none.status, 404, `room_keys/version before any backup: ${none.status} ${show(none.json)}`);

        const newCryptoClient = async (label, cr) => {
            const client = sdk.createClient({
                baseUrl: base, userId: cr.user_id, accessToken: cr.access_token, deviceId: cr.device_id,
                fetchFn: loggingFetch(label), localTimeoutMs: 30000,
            });
            await client.initRustCrypto({ useIndexedDB: false });
            c[label] = client; // after() stops it
            return client;
        };
        const c1 = await newCryptoClient("carol1", cr1);
        await c1.startClient({ initialSyncLimit: 20 });
        await waitFor("carol1's first sync", () => c1.isInitialSyncComplete());
        const crypto1 = c1.getCrypto();
        await crypto1.resetKeyBackup(); // POST room_keys/version, signed by the device
        const info = await waitFor("the SDK to see the new backup", async () => (await crypto1.getKeyBackupInfo())?.version && (await crypto1.getKeyBackupInfo()));
        assert.equal(info.algorithm, "m.megolm_backup.v1.curve25519-aes-sha2");

        const { room_id: roomId } = await c1.createRoom({
            initial_state: [{ type: "m.room.encryption", state_key: "", content: { algorithm: "m.megolm.v1.aes-sha2" } }],
        });
        await waitFor("carol1 to see the encrypted room", () => c1.getRoom(roomId));
        await c1.sendTextMessage(roomId, "history for the next device");
        const backed = await waitFor("the SDK to upload the room key", async () => {
            const r = await http(base, "GET", "/_matrix/client/v3/room_keys/version", { token: cr1.access_token });
            return r.json?.count >= 1 && r.json;
        });
        assert.equal(backed.version, info.version);
        assert.ok(backed.etag, `version info without an etag: ${show(backed)}`);

        const key = await crypto1.getSessionBackupPrivateKey();
        assert.ok(key, "the SDK kept no backup decryption key");
        const cr2 = await loginDevice(base, carol, PASSWORD, "carol2");
        const c2 = await newCryptoClient("carol2", cr2);
        await c2.getCrypto().storeSessionBackupPrivateKey(key, backed.version);
        const restored = await c2.getCrypto().restoreKeyBackup();
        assert.equal(restored.imported, 1, `restore: ${show(restored)}`);
    });
    scenario("8. relations: an edit and a reaction through /relations, and the edit bundled in /event, /messages and the SDK", ["alice1", "bob1", "group"], async () => {
        const roomId = rooms.group;
        const { event_id: orig } = await c.alice1.sendTextMessage(roomId, `relations original ${RUN_ID}`);
        const { event_id: edit } = await c.alice1.sendMessage(roomId, {
            msgtype: "m.text",
            body: `* relations edited ${RUN_ID}`,
            "m.new_content": { msgtype: "m.text", body: `relations edited ${RUN_ID}` },
            "m.relates_to": { rel_type: "m.replace", event_id: orig },
        });
        const { event_id: reaction } = await c.bob1.sendEvent(roomId, "m.reaction", {
            "m.relates_to": { rel_type: "m.annotation", event_id: orig, key: "👍" },
        });

        // The SDK's /relations call, filtered by rel_type and event type.
        const reactions = await c.bob1.relations(roomId, orig, "m.annotation", "m.reaction");
        assert.deepEqual(reactions.events.map((e) => e.getId()), [reaction]);
        assert.equal(reactions.events[0].getRelation()?.key, "👍");
        const edits = await c.bob1.relations(roomId, orig, "m.replace", "m.room.message");
        assert.deepEqual(edits.events.map((e) => e.getId()), [edit]);
        const all = await c.bob1.relations(roomId, orig, null, null);
        assert.deepEqual(all.events.map((e) => e.getId()).sort(), [edit, reaction].sort());
        // Paged one at a time, forwards: the edit first, then the reaction.
        const page1 = await http(server.baseUrl, "GET", `/_matrix/client/v1/rooms/${encodeURIComponent(roomId)}/relations/${encodeURIComponent(orig)}?dir=f&limit=1`, { token: c.bob1.getAccessToken() });
        assert.equal(page1.status, 200, `relations page 1: ${show(page1.json)}`);
        assert.deepEqual(page1.json.chunk.map((e) => e.event_id), [edit]);
        assert.ok(page1.json.next_batch, `no next_batch: ${show(page1.json)}`);
        const page2 = await http(server.baseUrl, "GET", `/_matrix/client/v1/rooms/${encodeURIComponent(roomId)}/relations/${encodeURIComponent(orig)}?dir=f&limit=1&from=${encodeURIComponent(page1.json.next_batch)}`, { token: c.bob1.getAccessToken() });
        assert.deepEqual(page2.json.chunk.map((e) => e.event_id), [reaction]);
        const bad = await http(server.baseUrl, "GET", `/_matrix/client/v1/rooms/${encodeURIComponent(roomId)}/relations/${encodeURIComponent(orig)}?dir=sideways`, { token: c.bob1.getAccessToken() });
        assert.equal(bad.status, 400, `dir=sideways: ${bad.status}`);

        // Bundled aggregations: the latest edit rides along with the original.
        const ev = await c.bob1.fetchRoomEvent(roomId, orig);
        assert.equal(ev.unsigned?.["m.relations"]?.["m.replace"]?.event_id, edit, `/event unsigned: ${show(ev.unsigned)}`);
        const msgs = await http(server.baseUrl, "GET", `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/messages?dir=b&limit=10`, { token: c.bob1.getAccessToken() });
        const inMessages = msgs.json.chunk.find((e) => e.event_id === orig);
        assert.equal(inMessages?.unsigned?.["m.relations"]?.["m.replace"]?.event_id, edit, `/messages unsigned: ${show(inMessages?.unsigned)}`);
        // And the SDK, from /sync, shows the edited text.
        await waitFor("bob1's SDK to apply the edit", () => {
            const e = c.bob1.getRoom(roomId)?.findEventById(orig);
            return e?.replacingEventId() === edit && e.getContent().body === `relations edited ${RUN_ID}`;
        });
    });

    scenario("9. threads: replies, /threads with include and paging, the thread summary, threaded read receipts", ["alice1", "bob1", "group"], async () => {
        const roomId = rooms.group;
        const inThread = (root, body) => ({
            msgtype: "m.text",
            body,
            "m.relates_to": { rel_type: "m.thread", event_id: root, is_falling_back: true, "m.in_reply_to": { event_id: root } },
        });
        // Thread A: alice's root, replies from bob and alice. Thread B: alice only.
        const { event_id: rootA } = await c.alice1.sendTextMessage(roomId, `thread A root ${RUN_ID}`);
        await c.bob1.sendMessage(roomId, inThread(rootA, `thread A reply from bob ${RUN_ID}`));
        const { event_id: lastA } = await c.alice1.sendMessage(roomId, inThread(rootA, `thread A reply from alice ${RUN_ID}`));
        const { event_id: rootB } = await c.alice1.sendTextMessage(roomId, `thread B root ${RUN_ID}`);
        await c.alice1.sendMessage(roomId, inThread(rootB, `thread B reply ${RUN_ID}`));

        const threads = async (who, query) => {
            const r = await http(server.baseUrl, "GET", `/_matrix/client/v1/rooms/${encodeURIComponent(roomId)}/threads?${query}`, { token: c[who].getAccessToken() });
            assert.equal(r.status, 200, `/threads?${query}: ${r.status} ${show(r.json)}`);
            return r.json;
        };
        // Newest thread first; include=participated keeps bob's only.
        const allThreads = await threads("bob1", "limit=10");
        const ids = allThreads.chunk.map((e) => e.event_id);
        assert.ok(ids.indexOf(rootB) >= 0 && ids.indexOf(rootB) < ids.indexOf(rootA), `thread order ${show(ids)}`);
        const summary = allThreads.chunk.find((e) => e.event_id === rootA).unsigned?.["m.relations"]?.["m.thread"];
        assert.equal(summary?.count, 2, `thread summary ${show(summary)}`);
        assert.equal(summary?.latest_event?.event_id, lastA);
        assert.equal(summary?.current_user_participated, true);
        const mine = await threads("bob1", "include=participated&limit=10");
        assert.ok(mine.chunk.some((e) => e.event_id === rootA) && !mine.chunk.some((e) => e.event_id === rootB), `participated ${show(mine.chunk.map((e) => e.event_id))}`);
        // One thread a page.
        const p1 = await threads("bob1", "limit=1");
        assert.equal(p1.chunk.length, 1);
        assert.ok(p1.next_batch, `no next_batch: ${show(p1)}`);
        const p2 = await threads("bob1", `limit=1&from=${encodeURIComponent(p1.next_batch)}`);
        assert.equal(p2.chunk.length, 1);
        assert.notEqual(p2.chunk[0].event_id, p1.chunk[0].event_id);
        const bad = await http(server.baseUrl, "GET", `/_matrix/client/v1/rooms/${encodeURIComponent(roomId)}/threads?include=mine`, { token: c.bob1.getAccessToken() });
        assert.equal(bad.status, 400, `include=mine: ${bad.status}`);

        // The thread's replies through /relations (rel_type m.thread).
        const replies = await c.bob1.relations(roomId, rootA, "m.thread", null);
        assert.equal(replies.events.length, 2);

        // A threaded receipt: bob reads thread A; alice sees it with its thread_id.
        const seen = [];
        const onReceipt = (event) => {
            for (const [eventId, types] of Object.entries(event.getContent())) {
                const r = types["m.read"]?.[users.bob.user_id];
                if (r) seen.push({ eventId, threadId: r.thread_id });
            }
        };
        c.alice1.on(sdk.RoomEvent.Receipt, onReceipt);
        try {
            const receipt = await http(server.baseUrl, "POST", `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/receipt/m.read/${encodeURIComponent(lastA)}`, {
                token: c.bob1.getAccessToken(), json: { thread_id: rootA },
            });
            assert.equal(receipt.status, 200, `threaded receipt: ${receipt.status} ${show(receipt.json)}`);
            await waitFor("alice1 to see bob's receipt in thread A", () => seen.find((r) => r.eventId === lastA && r.threadId === rootA));
            const refused = await http(server.baseUrl, "POST", `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/receipt/m.read/${encodeURIComponent(lastA)}`, {
                token: c.bob1.getAccessToken(), json: { thread_id: "" },
            });
            assert.equal(refused.status, 400, `empty thread_id: ${refused.status}`);
            assert.equal(refused.json?.errcode, "M_INVALID_PARAM");
        } finally {
            c.alice1.off(sdk.RoomEvent.Receipt, onReceipt);
        }
    });

    scenario("10. key backup over the SDK's HTTP API: versions, keys per room and session, the replacement rules, etag and count", ["bob1"], async () => {
        const api = c.bob1.http;
        const V3 = { prefix: "/_matrix/client/v3" };
        const call = async (method, path, query, body) => {
            try {
                return { status: 200, json: await api.authedRequest(method, path, query, body, V3) };
            } catch (err) {
                if (!err.httpStatus) throw err;
                return { status: err.httpStatus, json: err.data };
            }
        };
        const before = await call("GET", "/room_keys/version");
        assert.equal(before.status, 404, `no backup yet: ${show(before)}`);
        assert.equal(before.json?.errcode, "M_NOT_FOUND");
        const algorithm = "m.megolm_backup.v1.curve25519-aes-sha2";
        const { json: created } = await call("POST", "/room_keys/version", undefined, { algorithm, auth_data: { public_key: "abcdefg" } });
        const v = created.version;
        assert.ok(v, `create: ${show(created)}`);

        const roomId = `!backup_${RUN_ID}:${SERVER_NAME}`;
        const session = `session_${RUN_ID}`;
        const key = (first, forwarded, verified, tag) => ({
            first_message_index: first, forwarded_count: forwarded, is_verified: verified,
            session_data: { ephemeral: tag, ciphertext: tag, mac: tag },
        });
        const path = `/room_keys/keys/${encodeURIComponent(roomId)}/${encodeURIComponent(session)}`;
        const put1 = await call("PUT", path, { version: v }, key(5, 1, false, "first"));
        assert.equal(put1.status, 200, show(put1));
        assert.equal(put1.json.count, 1);
        const info1 = (await call("GET", "/room_keys/version")).json;
        assert.equal(info1.count, 1);
        // The spec's order: verified beats unverified, then the lower first
        // message index, then the lower forwarded count.
        const steps = [
            ["a worse key (higher first index) is ignored", key(9, 0, false, "worse"), "first"],
            ["a lower first index replaces", key(2, 3, false, "lower-index"), "lower-index"],
            ["the same index with fewer forwards replaces", key(2, 0, false, "fewer-forwards"), "fewer-forwards"],
            ["a verified key replaces an unverified one", key(7, 4, true, "verified"), "verified"],
            ["an unverified key never replaces a verified one", key(0, 0, false, "unverified"), "verified"],
        ];
        for (const [what, k, want] of steps) {
            const r = await call("PUT", path, { version: v }, k);
            assert.equal(r.status, 200, `${what}: ${show(r)}`);
            const got = (await call("GET", path, { version: v })).json;
            assert.equal(got.session_data.ciphertext, want, `${what}: stored ${show(got)}`);
        }
        const info2 = (await call("GET", "/room_keys/version")).json;
        assert.notEqual(info2.etag, info1.etag, "the etag did not change when a key was replaced");
        assert.equal(info2.count, 1);

        const wrong = await call("PUT", path, { version: String(Number(v) + 100) }, key(0, 0, true, "x"));
        assert.equal(wrong.status, 403, `wrong version: ${show(wrong)}`);
        assert.equal(wrong.json?.errcode, "M_WRONG_ROOM_KEYS_VERSION");
        assert.equal(wrong.json?.current_version, v);

        // Whole backup and per room reads.
        const everything = (await call("GET", "/room_keys/keys", { version: v })).json;
        assert.equal(everything.rooms?.[roomId]?.sessions?.[session]?.session_data?.ciphertext, "verified");
        const perRoom = (await call("GET", `/room_keys/keys/${encodeURIComponent(roomId)}`, { version: v })).json;
        assert.deepEqual(Object.keys(perRoom.sessions ?? {}), [session]);

        // Update the version's auth_data (the algorithm must stay).
        const upd = await call("PUT", `/room_keys/version/${v}`, undefined, { algorithm, version: v, auth_data: { public_key: "hijklmn" } });
        assert.equal(upd.status, 200, show(upd));
        assert.equal((await call("GET", `/room_keys/version/${v}`)).json.auth_data.public_key, "hijklmn");

        const del = await call("DELETE", path, { version: v });
        assert.equal(del.status, 200, show(del));
        assert.equal(del.json.count, 0);
        const gone = await call("GET", path, { version: v });
        assert.equal(gone.status, 404, `deleted key: ${show(gone)}`);
        assert.equal((await call("DELETE", `/room_keys/version/${v}`)).status, 200);
        assert.equal((await call("GET", "/room_keys/version")).status, 404);
    });

    scenario("search: bob finds a Chinese phrase, a Korean word and a Latin word in the group, newest first, and paginates", ["alice1", "bob1", "group"], async () => {
        const roomId = rooms.group;
        const zh = `我们明天在北京开会 ${RUN_ID}`;
        const ko = `내일 학교에 갑니다 ${RUN_ID}`;
        const ja = `明日は東京で会議です`;
        await c.alice1.sendTextMessage(roomId, zh);
        await c.alice1.sendTextMessage(roomId, ja);
        await c.alice1.sendTextMessage(roomId, ko);
        const search = async (term, nextBatch) => {
            const res = await c.bob1.search({
                body: { search_categories: { room_events: { search_term: term, filter: { rooms: [roomId], limit: 1 }, order_by: "recent",
                    event_context: { before_limit: 1, after_limit: 1, include_profile: true } } } },
                next_batch: nextBatch,
            });
            return res.search_categories.room_events;
        };
        const bodies = (re) => re.results.map((r) => r.result.content.body);
        assert.deepEqual(bodies(await search("北京开会")), [zh]);
        assert.deepEqual(bodies(await search("학교")), [ko]);
        assert.deepEqual(bodies(await search("東京で会議")), [ja]);
        assert.deepEqual(bodies(await search("开会北京")), []);
        // Both messages hold RUN_ID: one per page, newest first.
        const first = await search(RUN_ID);
        assert.deepEqual(bodies(first), [ko]);
        assert.ok(first.next_batch, `no next_batch: ${show(first)}`);
        assert.equal(first.results[0].context.events_before[0]?.content?.body, ja); // the message before ko
        const second = await search(RUN_ID, first.next_batch);
        assert.deepEqual(bodies(second), [zh]);
    });
});
