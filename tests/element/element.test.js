// End-to-end test of Parley with Element Web 1.11.52 in headless Chromium.
//
// It starts `$PARLEY_BIN serve` (embedded SQLite, fresh temp data dir,
// 127.0.0.1, free port), serves Element Web from $PARLEY_ELEMENT_TARBALL with
// a config.json pointing at it, and drives two users through Element's UI in
// two browser contexts (alice also has a second tab open):
//    1. register alice and bob (m.login.dummy) through the registration form;
//    2. alice creates an encrypted room;
//    3. alice sets up Secure Backup (cross-signing, secret storage, key backup);
//    4. alice invites bob, bob accepts;
//    5. messages both ways arrive live;
//    6. an image (encrypted attachment) reaches bob and renders;
//    7. bob edits his message, alice reacts to it, both reply in a thread;
//    8. alice starts a DM: bob's invite is named after alice, not "Empty room";
//    9. alice opens a second tab (Element locks a session to one active tab:
//       the second one shows "Element is open in another window");
//   10. alice searches for a Chinese phrase in an unencrypted room (server-side
//       /search) and sees the message with the phrase highlighted;
//   11. a quiet window: every open tab makes fewer than 2 /sync requests a second;
//   12. alice closes her first device, logs in on a new one, verifies it with
//       her Security Key, restores the key backup and reads the earlier
//       encrypted history (see the note there on Element 1.11.52's own
//       regression, which makes one call go through Element's client API).
// Then it checks that Parley answered no 4xx/5xx beyond the handshakes listed
// in ALLOWED below, and that no page threw an uncaught error (beyond the one
// listed there). On a failure it saves a screenshot of every page under a temp
// dir and prints their paths.
//
// Run: tests/element/run.sh (builds Parley, runs npm ci, then this script).
//
// Environment:
//   PARLEY_BIN              the parley binary (required)
//   PARLEY_ELEMENT_TARBALL  element-web-1.11.52.tar.gz (required)
//   PARLEY_CHROMIUM         the browser (default /usr/bin/chromium)
//   PARLEY_ELEMENT_KEEP=1   keep the temp dir (server log, Element copy)
//   PARLEY_ELEMENT_TRACE    a regex: print each matching Parley request with
//                           its request and response bodies (debugging)

import assert from "node:assert/strict";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";

import { Recorder, SERVER_NAME, launchBrowser, makeTempDir, rm, serveElement, sleep, startParley } from "./lib.js";

const PASSWORD = "Correct-horse-battery-7";
const STEP_TIMEOUT = 120_000; // one step, at most
const UI_TIMEOUT = 30_000; // one wait for something to show
const QUIET_WINDOW_MS = 15_000;
const MAX_SYNCS_PER_SECOND = 2;

// A 1x1 PNG.
const PNG = Buffer.from(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==",
    "base64",
);

// What Parley may answer with a status >= 400 without failing the test: the
// spec's normal handshakes, and requests where Synapse answers the same.
const ALLOWED = [
    {
        why: "UIA: the first POST /register (and any other UIA endpoint) answers 401 with the flows and a session",
        match: (e) => e.status === 401 && e.body.includes('"flows"'),
    },
    {
        why: "GET room_keys/version answers 404 M_NOT_FOUND while the user has no backup (bob never makes one; alice before step 3)",
        match: (e, t) =>
            e.status === 404 && e.path.endsWith("/room_keys/version") && e.body.includes("M_NOT_FOUND") &&
            (e.user === "bob" || e.sentAt < (t.backupCreatedAt ?? Infinity)),
    },
    {
        why:
            "Element loads the member list of a room it is only invited to (it previews the invite); the room's " +
            "history_visibility is shared and the user has not joined, so GET /members is refused with 403 " +
            "M_FORBIDDEN, as Synapse does (_user_can_see_state_at_event for ?at=, else " +
            "check_user_in_room_or_world_readable); Element shows the invite preview all the same",
        match: (e, t) =>
            e.status === 403 && e.user === "bob" && /\/rooms\/[^/]+\/members$/.test(e.path) && e.sentAt <= (t.invitedUntil.get(roomOf(e.path)) ?? 0),
    },
    {
        why:
            "Element probes MSC2697 dehydrated devices (unstable, not served: Synapse 1.163 answers the same " +
            "404 M_UNRECOGNIZED unless an experimental option is on)",
        match: (e) => e.status === 404 && e.path.endsWith("/org.matrix.msc2697.v2/dehydrated_device") && e.body.includes("M_UNRECOGNIZED"),
    },
];

// Uncaught page errors that do not fail the test.
const ALLOWED_PAGE_ERRORS = [
    {
        why: "the same /members 403 for an invitee as above: Element does not catch it",
        match: (e) => e.who.startsWith("bob") && /\[403\].*\/members\?/.test(e.text),
    },
];

function roomOf(path) {
    return decodeURIComponent(path.match(/\/rooms\/([^/]+)\//)?.[1] ?? "");
}

const env = (name) => {
    const v = process.env[name];
    if (!v) {
        console.error(`set ${name} (see tests/element/run.sh)`);
        process.exit(2);
    }
    return v;
};

const bin = env("PARLEY_BIN");
const tarball = env("PARLEY_ELEMENT_TARBALL");
const dir = await makeTempDir("parley-element-");
const shotsDir = join(dir, "screenshots");
const trace = process.env.PARLEY_ELEMENT_TRACE ? new RegExp(process.env.PARLEY_ELEMENT_TRACE) : null;

const parley = await startParley(bin, dir);
const web = await serveElement(tarball, join(dir, "web"), parley.baseUrl);
const rec = new Recorder(parley.baseUrl, web.url);
const browser = await launchBrowser();
console.log(`parley ${parley.baseUrl} (log ${parley.logPath}), element ${web.url}`);

const pages = {}; // label -> page
const contexts = {}; // label -> browser context
// What the allow-list needs to know: until when bob was only invited to a
// room (the time he clicked to join), and when alice's backup was created.
const facts = { invitedUntil: new Map(), backupCreatedAt: undefined };
const results = [];

/** Opens a page in a new (or the given) browser context, watched by rec. */
async function openPage(label, user, path, context) {
    if (!context) {
        context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
        await rec.guard(context, label);
        contexts[label] = context;
    }
    const page = await context.newPage();
    page.setDefaultTimeout(UI_TIMEOUT);
    rec.watch(page, label, user);
    if (trace) {
        page.on("requestfinished", async (req) => {
            if (!req.url().startsWith(parley.baseUrl) || !trace.test(req.url())) return;
            const res = await req.response();
            const body = await res?.text().catch(() => "");
            console.log(`[trace ${label}] ${req.method()} ${new URL(req.url()).pathname} -> ${res?.status()}\n  req: ${req.postData() ?? ""}\n  res: ${body}`);
        });
    }
    pages[label] = page;
    // Element reloads itself once with ?updated=<version> when the URL
    // lacks it, which races with filling the first form: start there.
    assert.ok(path.startsWith("/#/"), path);
    await page.goto(`${web.url}/?updated=1.11.52${path.slice(1)}`);
    return page;
}

async function step(name, fn) {
    const t0 = Date.now();
    let timer;
    try {
        await Promise.race([
            fn(),
            new Promise((_, reject) => {
                timer = setTimeout(() => reject(new Error(`step took longer than ${STEP_TIMEOUT} ms`)), STEP_TIMEOUT);
            }),
        ]);
        results.push({ name, ok: true });
        console.log(`ok   ${name} (${Date.now() - t0} ms)`);
    } catch (err) {
        results.push({ name, ok: false, err });
        console.log(`FAIL ${name} (${Date.now() - t0} ms)\n${String(err?.stack ?? err).replace(/^/gm, "     ")}`);
        await screenshots(name);
        throw err;
    } finally {
        clearTimeout(timer);
    }
}

async function screenshots(stepName) {
    await mkdir(shotsDir, { recursive: true });
    const slug = stepName.replace(/[^A-Za-z0-9]+/g, "-").slice(0, 40);
    for (const [label, page] of Object.entries(pages)) {
        const path = join(shotsDir, `${slug}-${label}.png`);
        try {
            await page.screenshot({ path, timeout: 10000 });
            console.log(`     screenshot: ${path}`);
        } catch (err) {
            console.log(`     no screenshot of ${label}: ${err.message}`);
        }
    }
}

// ------------------------------------------------------------------ UI helpers

async function register(label) {
    const page = await openPage(label, label, "/#/register");
    await page.locator("#mx_RegistrationForm_username").fill(label);
    await page.locator("#mx_RegistrationForm_password").fill(PASSWORD);
    await page.locator("#mx_RegistrationForm_passwordConfirm").fill(PASSWORD);
    await page.locator("input.mx_Login_submit").click();
    // The "Who will you chat to the most?" onboarding page.
    await page.getByText("Skip", { exact: true }).click();
    await page.locator(".mx_RoomList").waitFor();
    return page;
}

async function send(page, text, scope = ".mx_RoomView") {
    const composer = page.locator(`${scope} .mx_BasicMessageComposer_input`).first();
    await composer.click();
    await composer.pressSequentially(text, { delay: 5 });
    await composer.press("Enter");
}

/** The tile of the latest main-timeline event whose body contains text. */
function tile(page, text) {
    return page
        .locator(".mx_RoomView_body .mx_EventTile", { has: page.locator(".mx_EventTile_body", { hasText: text }) })
        .last();
}

function body(page, text, scope = ".mx_RoomView_body") {
    return page.locator(`${scope} .mx_EventTile_body`, { hasText: text }).first();
}

async function createRoom(page, name, { encrypted }) {
    await page.getByRole("button", { name: "Add room" }).click();
    await page.getByRole("menuitem", { name: "New room" }).click();
    const dialog = page.locator(".mx_CreateRoomDialog");
    await dialog.getByPlaceholder("Name", { exact: true }).fill(name);
    const e2e = dialog.getByRole("switch", { name: /encryption/i });
    if ((await e2e.getAttribute("aria-checked")) !== String(encrypted)) await e2e.click();
    await dialog.getByTestId("dialog-primary-button").click();
    await page.locator(".mx_LegacyRoomHeader_nametext", { hasText: name }).waitFor();
    return roomIdOf(page);
}

function roomIdOf(page) {
    const m = decodeURIComponent(page.url()).match(/#\/room\/(![^/?]+)/);
    assert.ok(m, `no room id in ${page.url()}`);
    return m[1];
}

async function pickUser(page, userId) {
    await page.locator(".mx_InviteDialog_other input").fill(userId);
    await page.locator(".mx_InviteDialog_tile_nameStack_userId").filter({ hasText: userId }).first().click();
    await page.locator(".mx_InviteDialog_goButton").click();
}

async function dismissToasts(page) {
    for (const name of ["Later", "Dismiss"]) {
        const b = page.locator(".mx_Toast_toast").getByRole("button", { name, exact: true });
        while (await b.count()) {
            await b.first().click();
            await sleep(200);
        }
    }
}

// ------------------------------------------------------------------ the session

const bobId = `@bob:${SERVER_NAME}`;
const aliceId = `@alice:${SERVER_NAME}`;
let failed = false;
let securityKey;
let secretRoom;

try {
    await step("1. register alice and bob through the registration form (m.login.dummy)", async () => {
        await Promise.all([register("alice"), register("bob")]);
    });
    const alice = pages.alice;
    const bob = pages.bob;

    await step("2. alice creates an encrypted room", async () => {
        secretRoom = await createRoom(alice, "Secret plans", { encrypted: true });
    });

    await step("3. alice sets up Secure Backup with a generated Security Key", async () => {
        // Element offers it in a toast once the user is in an encrypted room.
        await alice.locator(".mx_Toast_toast", { hasText: "Secure Backup" }).getByRole("button", { name: "Continue" }).click();
        const dialog = alice.locator(".mx_CreateSecretStorageDialog");
        await dialog.getByText("Generate a Security Key", { exact: true }).click();
        await dialog.getByRole("button", { name: "Continue" }).click();
        securityKey = await dialog.locator(".mx_CreateSecretStorageDialog_recoveryKey code").innerText();
        assert.match(securityKey, /^(\w{4} ){11}\w{4}$/, `security key ${securityKey}`);
        if (trace) console.log(`[trace] alice's security key: ${securityKey}`);
        await dialog.getByRole("button", { name: "Copy" }).click();
        await dialog.getByTestId("dialog-primary-button").click();
        await dialog.getByText("Secure Backup successful").waitFor();
        facts.backupCreatedAt = Date.now();
        await dialog.getByRole("button", { name: "Done" }).click();
    });

    await step("4. alice invites bob; bob accepts", async () => {
        await alice.getByRole("button", { name: "Invite to this room" }).click();
        await pickUser(alice, bobId);
        await bob.locator(".mx_RoomSublist", { hasText: "Invites" }).locator(".mx_RoomTile", { hasText: "Secret plans" }).click();
        facts.invitedUntil.set(secretRoom, Date.now() + STEP_TIMEOUT); // until the click below
        await bob.getByRole("button", { name: "Accept" }).click();
        facts.invitedUntil.set(secretRoom, Date.now());
        await bob.locator(".mx_RoomView .mx_BasicMessageComposer_input").waitFor();
        await alice.locator(".mx_TextualEvent", { hasText: "bob joined the room" }).waitFor();
        await dismissToasts(bob);
    });

    await step("5. encrypted messages both ways arrive live", async () => {
        await send(alice, "Hello bob, plans attached");
        await body(bob, "Hello bob, plans attached").waitFor();
        await send(bob, "Hi alice, got it");
        await body(alice, "Hi alice, got it").waitFor();
        for (const p of [alice, bob]) {
            assert.equal(await p.locator(".mx_RoomView_body .mx_DecryptionFailureBody").count(), 0, "a message failed to decrypt");
        }
    });

    await step("6. an image: alice uploads a PNG, bob sees it rendered", async () => {
        await alice.locator(".mx_MessageComposer input[type=file]").setInputFiles({ name: "plan.png", mimeType: "image/png", buffer: PNG });
        await alice.locator(".mx_Dialog").getByRole("button", { name: "Upload" }).click();
        const img = bob.locator(".mx_RoomView_body .mx_MImageBody img").first();
        await img.waitFor();
        await bob.waitForFunction((el) => el.complete && el.naturalWidth === 1, await img.elementHandle());
    });

    await step("7. bob edits his message, alice reacts to it, both reply in a thread", async () => {
        // Edit.
        const bobTile = tile(bob, "Hi alice, got it");
        await bobTile.hover();
        await bobTile.getByRole("button", { name: "Edit" }).click();
        const editor = bob.locator(".mx_EditMessageComposer .mx_BasicMessageComposer_input");
        await editor.press("Control+a");
        await editor.pressSequentially("Hi alice, got it, thanks", { delay: 5 });
        await editor.press("Enter");
        const edited = tile(alice, "Hi alice, got it, thanks");
        await edited.locator(".mx_EventTile_edited").waitFor();

        // Reaction: the first quick reaction, a thumbs up.
        await edited.hover();
        await edited.getByRole("button", { name: "React" }).click();
        await alice.locator(".mx_EmojiPicker_quick .mx_EmojiPicker_item_wrapper").first().click();
        const reaction = tile(bob, "Hi alice, got it, thanks").locator(".mx_ReactionsRowButton");
        await reaction.waitFor();
        assert.match(await reaction.innerText(), /👍[\s\S]*1/u);

        // Thread: alice starts one on her first message, bob answers in it.
        const root = tile(alice, "Hello bob, plans attached");
        await root.hover();
        await root.getByRole("button", { name: "Reply in thread" }).click();
        await send(alice, "Thread: details follow", ".mx_ThreadView");
        const summary = tile(bob, "Hello bob, plans attached").locator(".mx_ThreadSummary");
        await summary.getByText("Thread: details follow").waitFor();
        await summary.click();
        await body(bob, "Thread: details follow", ".mx_ThreadView").waitFor();
        await send(bob, "Thread reply from bob", ".mx_ThreadView");
        await body(alice, "Thread reply from bob", ".mx_ThreadView").waitFor();
        await tile(alice, "Hello bob, plans attached").locator(".mx_ThreadSummary", { hasText: "2 replies" }).waitFor();
        await dismissToasts(alice);
        await dismissToasts(bob);
    });

    await step("8. alice starts a DM; bob's invite shows alice's name, he accepts and reads it", async () => {
        await alice.getByRole("button", { name: "Start chat" }).click();
        await pickUser(alice, bobId);
        // Element creates the DM room with its first message.
        await send(alice, "Private word, bob");
        const invite = bob.locator(".mx_RoomSublist", { hasText: "Invites" }).locator(".mx_RoomTile").first();
        await invite.waitFor();
        const name = (await invite.locator(".mx_RoomTile_title").innerText()).trim();
        assert.equal(name, "alice", `bob's DM invite is named ${JSON.stringify(name)}`);
        await invite.click();
        const dm = roomIdOf(bob);
        facts.invitedUntil.set(dm, Date.now() + STEP_TIMEOUT);
        await bob.locator(".mx_RoomPreviewBar", { hasText: "alice" }).waitFor();
        await bob.getByRole("button", { name: "Start chatting" }).click();
        facts.invitedUntil.set(dm, Date.now());
        await body(bob, "Private word, bob").waitFor();
    });

    await step("9. alice opens a second tab: Element keeps one active tab per session", async () => {
        const tab2 = await openPage("alice-tab2", "alice", "/#/home", contexts.alice);
        await tab2.getByText("Element is open in another window").waitFor();
        // The first tab stays live (it shows the DM of step 8).
        await send(alice, "Still here after the second tab");
        await body(bob, "Still here after the second tab").waitFor();
    });

    await step("10. search: alice finds a Chinese phrase in an unencrypted room", async () => {
        await createRoom(alice, "Open talk", { encrypted: false });
        await send(alice, "我们明天在北京开会");
        await send(alice, "Lunch is at noon");
        await body(alice, "Lunch is at noon").waitFor();
        await alice.locator(".mx_LegacyRoomHeader_searchButton").click();
        const input = alice.locator(".mx_SearchBar input");
        await input.fill("北京开会");
        await input.press("Enter");
        const panel = alice.locator(".mx_RoomView_searchResultsPanel");
        await panel.locator(".mx_EventTile_searchHighlight", { hasText: "北京开会" }).waitFor();
        const hits = panel.locator(".mx_EventTile:not(.mx_EventTile_contextual) .mx_EventTile_body");
        assert.deepEqual(await hits.allTextContents(), ["我们明天在北京开会"]);
        await alice.locator(".mx_SearchBar_cancel").click();
    });

    await step(`11. a quiet ${QUIET_WINDOW_MS / 1000} s: fewer than ${MAX_SYNCS_PER_SECOND} /sync a second in every open tab`, async () => {
        const start = Date.now();
        await sleep(QUIET_WINDOW_MS);
        const counts = Object.fromEntries(Object.keys(pages).map((k) => [k, 0]));
        for (const s of rec.syncs) if (s.at >= start) counts[s.who]++;
        console.log(`     /sync requests in the quiet window: ${JSON.stringify(counts)}`);
        for (const [who, n] of Object.entries(counts)) {
            assert.ok(n / (QUIET_WINDOW_MS / 1000) < MAX_SYNCS_PER_SECOND, `${who} made ${n} /sync requests in ${QUIET_WINDOW_MS} ms`);
        }
    });
    await step("12. alice logs in on a new device, verifies it with her Security Key, restores the backup, reads history", async () => {
        // What the first device knows of the backup, taken before it goes:
        // see the note on Element's regression below.
        const backup = await alice.evaluate(async () => {
            const cli = window.mxMatrixClientPeg.get();
            const key = await cli.getCrypto().getSessionBackupPrivateKey();
            return { info: await cli.getKeyBackupVersion(), key: key && Array.from(key) };
        });
        assert.ok(backup.info?.version && backup.key, `alice's first device has no backup key: ${JSON.stringify(backup.info)}`);
        // Close alice's first device (both tabs), so that the new device can
        // only get the room keys from the backup, not forwarded from it.
        await contexts.alice.close();
        delete pages.alice;
        delete pages["alice-tab2"];

        const dev2 = await openPage("alice-dev2", "alice", "/#/login");
        await dev2.locator("#mx_LoginForm_username").fill("alice");
        await dev2.locator("#mx_LoginForm_password").fill(PASSWORD);
        await dev2.locator("input.mx_Login_submit").click();
        await dev2.getByRole("button", { name: "Verify with Security Key" }).click();
        await dev2.locator("#mx_securityKey").fill(securityKey);
        const go = dev2.locator(".mx_AccessSecretStorageDialog").getByTestId("dialog-primary-button");
        await dev2.waitForFunction((el) => !el.disabled, await go.elementHandle());
        await go.click();
        await dev2.getByText("Device verified").waitFor();
        await dev2.getByRole("button", { name: "Done" }).click();
        await dev2.locator(".mx_RoomTile", { hasText: "Secret plans" }).click();

        // Element 1.11.52's regression (matrix-react-sdk #12005, fixed by
        // #12098 in a later release): "Verify with Security Key" runs
        // accessSecretStorage with setupNewKeyBackup=true, so Element makes a
        // NEW backup version (and overwrites m.megolm_backup.v1 in secret
        // storage) before it restores, and the restore then fails with
        // RESTORE_BACKUP_ERROR_BAD_KEY, whatever the server. The earlier
        // history is still in the first backup version on the server; the
        // restore that Element's own "Restore from Backup" performs
        // (MatrixClient.restoreKeyBackup: GET room_keys/keys?version=..) is
        // therefore called here in the page, with the first version and its key.
        // Element restores in the background after "Device verified": wait
        // for either the history or that failure.
        const regressionSeen = () => rec.consoleErrors.some((e) => e.who === "alice-dev2" && e.text.startsWith("RESTORE_BACKUP_ERROR_BAD_KEY"));
        const hello = body(dev2, "Hello bob, plans attached");
        const deadline = Date.now() + UI_TIMEOUT;
        while (!regressionSeen() && !(await hello.isVisible()) && Date.now() < deadline) await sleep(250);
        if (regressionSeen()) {
            console.log("     Element reset the backup on verification (its 1.11.52 regression); restoring the first version in the page");
            const restored = await dev2.evaluate(async ({ info, key }) => {
                const cli = window.mxMatrixClientPeg.get();
                return cli.restoreKeyBackup(new Uint8Array(key), undefined, undefined, info);
            }, backup);
            assert.ok(restored.imported >= 1, `restore of backup version ${backup.info.version}: ${JSON.stringify(restored)}`);
        }
        for (const text of ["Hello bob, plans attached", "Hi alice, got it, thanks"]) {
            await body(dev2, text).waitFor();
        }
        const img = dev2.locator(".mx_RoomView_body .mx_MImageBody img").first();
        await img.waitFor();
        await dev2.waitForFunction((el) => el.complete && el.naturalWidth === 1, await img.elementHandle());
        // The DM (step 8, and the message of step 9 went there too).
        await dev2.locator(".mx_RoomTile", { hasText: "bob" }).click();
        for (const text of ["Private word, bob", "Still here after the second tab"]) {
            await body(dev2, text).waitFor();
        }
        const keysFetched = rec.requests.filter(
            (r) => r.who === "alice-dev2" && r.method === "GET" && r.path.endsWith("/room_keys/keys") && r.status === 200,
        );
        assert.ok(keysFetched.length > 0, "the new device never fetched keys from the backup (GET room_keys/keys)");
    });

} catch {
    failed = true;
}

// ------------------------------------------------------------------ the checks over the whole session

const unexpected = rec.httpErrors.filter((e) => !ALLOWED.some((a) => a.match(e, facts)));
const allowedSeen = ALLOWED.map((a) => ({ why: a.why, n: rec.httpErrors.filter((e) => a.match(e, facts)).length })).filter((a) => a.n);
const pageErrors = rec.pageErrors.filter((e) => !ALLOWED_PAGE_ERRORS.some((a) => a.match(e)));
console.log(`\nParley answered ${rec.httpErrors.length} requests with a status >= 400; allowed:`);
for (const a of allowedSeen) console.log(`  ${a.n} x ${a.why}`);
const checks = [
    {
        name: "no unexpected 4xx/5xx from Parley",
        ok: unexpected.length === 0,
        detail: unexpected.map((e) => `  [${e.who}] ${e.method} ${e.path} -> ${e.status} ${e.body}`).join("\n"),
    },
    {
        name: "no uncaught page errors",
        ok: pageErrors.length === 0,
        detail: pageErrors.map((e) => `  [${e.who}] ${e.text}`).join("\n"),
    },
];
for (const c of checks) {
    results.push({ name: c.name, ok: c.ok });
    console.log(`${c.ok ? "ok  " : "FAIL"} ${c.name}${c.ok ? "" : "\n" + c.detail}`);
    if (!c.ok) failed = true;
}
// The slowest answers from Parley, long-polling /sync aside: for diagnosis
// (this machine's load shows in them too).
const slow = rec.requests
    .filter((r) => !r.path.endsWith("/sync"))
    .sort((a, b) => b.ms - a.ms)
    .slice(0, 5);
console.log(`slowest Parley requests: ${slow.map((r) => `${r.method} ${r.path.replace(/![^/]+/, "!ROOM")} ${r.ms} ms`).join("; ")}`);
if (rec.blocked.length) {
    console.log(`requests blocked (not loopback): ${[...new Set(rec.blocked.map((b) => b.url))].join(", ")}`);
}
const consoleSummary = {};
for (const e of rec.consoleErrors) {
    const k = e.text.split("\n")[0].slice(0, 160);
    consoleSummary[k] = (consoleSummary[k] ?? 0) + 1;
}
if (failed) {
    console.log("console errors seen (for diagnosis, not checked):");
    for (const [k, n] of Object.entries(consoleSummary)) console.log(`  ${n} x ${k}`);
    await screenshots("end");
}

await browser.close();
await web.close();
await parley.stop();
if (failed || process.env.PARLEY_ELEMENT_KEEP === "1") {
    console.log(`files kept in ${dir} (parley.log, screenshots/)`);
} else {
    await rm(dir, { recursive: true, force: true });
}
const passed = results.filter((r) => r.ok).length;
console.log(`element: ${passed} passed, ${results.length - passed} failed`);
process.exit(failed ? 1 : 0);
