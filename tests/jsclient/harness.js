// Helpers for the matrix-js-sdk suite (parley.test.js): start and stop the
// Parley server, raw HTTP, registration/login, SDK clients, and polling waits.
//
// Environment:
//   PARLEY_BIN            path of the parley binary (required)
//   PARLEY_DATABASE_URL   passed through to the server (empty = SQLite)
//   PARLEY_JS_KEEP=1      keep the server's temp dir (data + server.log)
//   PARLEY_JS_SDK_LOG     matrix-js-sdk log level: debug, info, warn, error (default)
//   PARLEY_JS_WAIT_MS     default timeout of waitFor (default 20000)

import { spawn } from "node:child_process";
import { once } from "node:events";
import { createWriteStream } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

import * as sdk from "matrix-js-sdk";

// The SDK logs every sync at info/debug level, through whatever console.* is
// at call time (loglevel's methodFactory in matrix-js-sdk/lib/logger.js);
// keep the test output readable by muting the chatty console methods. This
// suite itself reports through node:test and console.error only.
{
    const levels = { debug: 1, info: 2, log: 2, warn: 3, error: 4, silent: 5 };
    const min = levels[process.env.PARLEY_JS_SDK_LOG ?? "error"] ?? 4;
    for (const m of ["debug", "info", "log", "warn"]) {
        if (levels[m] < min) console[m] = () => {};
    }
    const consoleError = console.error;
    console.error = (...args) => {
        // A harmless race inside the SDK's MatrixRTC (a state event for a
        // room it has not stored yet), logged as an error for every new room.
        if (min > 1 && args.map(String).join(" ").startsWith("[MatrixRTCSessionManager] Got room state event for unknown room")) return;
        // Errors the SDK logs (with stack and headers) shrink to one line.
        if (min > 1) args = args.map((a) => (a instanceof Error ? String(a) : a));
        consoleError(...args);
    };
}

// matrix-js-sdk arms a timer for every request's local timeout and never
// clears it (timeoutSignal in lib/http-api/utils.js): up to 110 s for each
// /sync. Those timers would keep this process alive long after the last test
// (node --test waits for the event loop to drain). Long timers therefore do
// not hold the process open; anything the tests await holds a socket anyway.
{
    const origSetTimeout = globalThis.setTimeout;
    globalThis.setTimeout = function (fn, ms, ...args) {
        const timer = origSetTimeout(fn, ms, ...args);
        if (ms >= 15000) timer?.unref?.();
        return timer;
    };
}

export const SERVER_NAME = "localhost";
export const DEFAULT_WAIT_MS = Number(process.env.PARLEY_JS_WAIT_MS ?? 20000);

/** A random suffix, so that runs against a reused database do not collide. */
export const RUN_ID = Math.random().toString(36).slice(2, 8);

// ------------------------------------------------------------------ HTTP log

/** The last requests made by any client of this suite, for failure reports. */
const httpLog = [];

function logRequest(entry) {
    httpLog.push(entry);
    if (httpLog.length > 400) httpLog.shift();
}

/** Recent requests that got an HTTP error or no answer, as text lines. */
export function httpErrorReport(max = 60) {
    return httpLog
        .filter((e) => e.error || e.status >= 400)
        // the expected first step of registration (UIA)
        .filter((e) => !(e.status === 401 && e.path.endsWith("/register") && e.body?.includes('"session"')))
        .slice(-max)
        .map((e) => `  [${e.who}] ${e.method} ${e.path} -> ${e.error ?? e.status}${e.body ? " " + e.body : ""}`)
        .join("\n");
}

/** A one-line summary of requests answered 429 (rate limited), or "". */
export function rateLimitNote() {
    const limited = httpLog.filter((e) => e.status === 429);
    if (!limited.length) return "";
    const paths = [...new Set(limited.map((e) => `${e.method} ${e.path.split("?")[0]}`))];
    return `the server answered 429 M_LIMIT_EXCEEDED to ${limited.length} of the last ${httpLog.length} requests: ${paths.join(", ")}`;
}

function describePath(url) {
    const u = new URL(String(url));
    u.searchParams.delete("access_token");
    if (u.searchParams.has("filter")) u.searchParams.set("filter", "…");
    return u.pathname + (u.search ? decodeURIComponent(u.search) : "");
}

/** A fetch that records each request (method, path, status) under a label. */
export function loggingFetch(who) {
    return async (input, init = {}) => {
        const method = init.method ?? "GET";
        const path = describePath(input instanceof Request ? input.url : input);
        try {
            const res = await fetch(input, init);
            const entry = { who, method, path, status: res.status };
            if (res.status >= 400) {
                // Peek at the error body without consuming the caller's copy.
                entry.body = (await res.clone().text().catch(() => "")).slice(0, 200);
            }
            logRequest(entry);
            return res;
        } catch (err) {
            if (err?.name !== "AbortError") logRequest({ who, method, path, error: String(err?.cause ?? err) });
            throw err;
        }
    };
}

/**
 * Plain HTTP against the server, for what the SDK makes awkward.
 * Returns { status, headers, json, bytes }; never throws on HTTP errors.
 */
export async function http(baseUrl, method, path, { token, json, body, headers = {}, timeoutMs = 30000 } = {}) {
    const h = { ...headers };
    if (token) h.Authorization = `Bearer ${token}`;
    if (json !== undefined) {
        h["Content-Type"] = "application/json";
        body = JSON.stringify(json);
    }
    const res = await loggingFetch("http")(new URL(path, baseUrl), {
        method,
        headers: h,
        body,
        signal: AbortSignal.timeout(timeoutMs),
    });
    const bytes = Buffer.from(await res.arrayBuffer());
    let parsed;
    if ((res.headers.get("content-type") ?? "").includes("json")) {
        try {
            parsed = JSON.parse(bytes.toString("utf8"));
        } catch {
            parsed = undefined;
        }
    }
    return { status: res.status, headers: res.headers, json: parsed, bytes };
}

// ------------------------------------------------------------------ waiting

/**
 * Polls `probe` (sync or async) every `intervalMs` until it returns a truthy
 * value, which is returned. Fails after `timeoutMs` with `what` and the last
 * value (or error) seen, so a failure says what was missing.
 */
export async function waitFor(what, probe, { timeoutMs = DEFAULT_WAIT_MS, intervalMs = 50 } = {}) {
    const deadline = Date.now() + timeoutMs;
    let last;
    let lastErr;
    for (;;) {
        try {
            last = await probe();
            lastErr = undefined;
            if (last) return last;
        } catch (err) {
            lastErr = err;
        }
        if (Date.now() > deadline) {
            const seen = lastErr ? `last error: ${lastErr?.stack ?? lastErr}` : `last value: ${show(last)}`;
            throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; ${seen}`);
        }
        await sleep(intervalMs);
    }
}

export function show(v) {
    try {
        const s = JSON.stringify(v);
        return s === undefined ? String(v) : s.length > 600 ? s.slice(0, 600) + "…" : s;
    } catch {
        return String(v);
    }
}

/** Rejects after ms with a message, unless the promise settles first. */
export async function withTimeout(promise, ms, what) {
    let timer;
    const timeout = new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
    });
    try {
        return await Promise.race([promise, timeout]);
    } finally {
        clearTimeout(timer);
    }
}

// ------------------------------------------------------------------ server

async function freePort() {
    const srv = net.createServer();
    srv.listen(0, "127.0.0.1");
    await once(srv, "listening");
    const { port } = srv.address();
    srv.close();
    await once(srv, "close");
    return port;
}

/** Kill handles of servers still running, for the process-exit safety net. */
const liveServers = new Set();
process.on("exit", () => {
    for (const child of liveServers) child.kill("SIGKILL");
});
for (const sig of ["SIGINT", "SIGTERM"]) {
    process.once(sig, () => {
        for (const child of liveServers) child.kill("SIGKILL");
        process.exit(sig === "SIGINT" ? 130 : 143);
    });
}

/**
 * Starts `$PARLEY_BIN serve` on a free port with a fresh data dir and waits
 * until GET /_matrix/client/versions answers 200.
 */
export async function startServer({ readyTimeoutMs = 30000 } = {}) {
    const bin = process.env.PARLEY_BIN;
    if (!bin) throw new Error("set PARLEY_BIN to the parley binary (go build -o /tmp/parley ./cmd/parley)");
    const dir = await mkdtemp(join(tmpdir(), "parley-js-"));
    const dataDir = join(dir, "data");
    const logPath = join(dir, "server.log");
    const port = await freePort();
    const baseUrl = `http://127.0.0.1:${port}`;
    const env = {
        ...process.env,
        PARLEY_LISTEN: `127.0.0.1:${port}`,
        PARLEY_DATA_DIR: dataDir,
        PARLEY_SERVER_NAME: SERVER_NAME,
        PARLEY_REGISTRATION: "open",
        PARLEY_DATABASE_URL: process.env.PARLEY_DATABASE_URL ?? "",
    };
    const logStream = createWriteStream(logPath);
    const child = spawn(bin, ["serve"], { env, stdio: ["ignore", "pipe", "pipe"] });
    liveServers.add(child);
    child.stdout.pipe(logStream, { end: false });
    child.stderr.pipe(logStream, { end: false });
    let exited = null;
    const exitPromise = new Promise((resolve) => {
        child.once("exit", (code, signal) => {
            exited = { code, signal };
            liveServers.delete(child);
            resolve(exited);
        });
        child.once("error", (err) => {
            exited = { error: String(err) };
            liveServers.delete(child);
            resolve(exited);
        });
    });

    const server = {
        baseUrl,
        dir,
        dataDir,
        logPath,
        child,
        get exited() {
            return exited;
        },
        async logTail(lines = 150) {
            const text = await readFile(logPath, "utf8").catch(() => "");
            return text.split("\n").slice(-lines).join("\n");
        },
        async stop({ keep = false } = {}) {
            if (!exited) {
                child.kill("SIGTERM");
                const done = await Promise.race([exitPromise, sleep(10000, null, { ref: false })]);
                if (!done) {
                    child.kill("SIGKILL");
                    await exitPromise;
                }
            }
            await new Promise((resolve) => logStream.end(resolve));
            if (keep || process.env.PARLEY_JS_KEEP === "1") {
                console.error(`parley server files kept in ${dir}`);
            } else {
                await rm(dir, { recursive: true, force: true });
            }
        },
    };

    const deadline = Date.now() + readyTimeoutMs;
    for (;;) {
        if (exited) {
            const tail = await server.logTail(60);
            await server.stop({ keep: true });
            throw new Error(`parley serve exited before it was ready (${show(exited)}); log:\n${tail}`);
        }
        try {
            const res = await fetch(`${baseUrl}/_matrix/client/versions`, { signal: AbortSignal.timeout(2000) });
            if (res.status === 200) {
                await res.arrayBuffer();
                return server;
            }
            await res.arrayBuffer();
        } catch {
            // not listening yet
        }
        if (Date.now() > deadline) {
            const tail = await server.logTail(60);
            await server.stop({ keep: true });
            throw new Error(`parley serve not ready after ${readyTimeoutMs} ms at ${baseUrl}; log:\n${tail}`);
        }
        await sleep(100);
    }
}

// ------------------------------------------------------------------ accounts

function anonClient(baseUrl, who) {
    return sdk.createClient({ baseUrl, fetchFn: loggingFetch(who), localTimeoutMs: 30000 });
}

/**
 * Registers a user through the real UIA flow of POST /register: the first
 * request (no auth) must answer 401 with a session and an m.login.dummy flow;
 * the second completes the dummy stage. Returns the register response
 * ({ user_id, access_token, device_id }) plus the password.
 */
export async function registerUser(baseUrl, username, password, deviceName) {
    const anon = anonClient(baseUrl, `register ${username}`);
    const body = { username, password, initial_device_display_name: deviceName };
    let uia;
    try {
        await anon.registerRequest(body);
        throw new Error("POST /register without auth succeeded; expected 401 with a UIA session");
    } catch (err) {
        if (err.httpStatus !== 401) throw err;
        uia = err.data;
    }
    if (!uia?.session) throw new Error(`401 from /register has no session: ${show(uia)}`);
    const flows = (uia.flows ?? []).map((f) => (f.stages ?? []).join(","));
    if (!flows.includes("m.login.dummy")) {
        throw new Error(`401 from /register offers no [m.login.dummy] flow: ${show(uia.flows)}`);
    }
    const res = await anon.registerRequest({ ...body, auth: { type: "m.login.dummy", session: uia.session } });
    return { ...res, password };
}

/** Logs in another device with m.login.password and an m.id.user identifier. */
export async function loginDevice(baseUrl, user, password, deviceName) {
    const anon = anonClient(baseUrl, `login ${user}`);
    return anon.loginRequest({
        type: "m.login.password",
        identifier: { type: "m.id.user", user },
        password,
        initial_device_display_name: deviceName,
    });
}

/**
 * A MatrixClient for an access token (no crypto), started and synced:
 * resolves once the client reports sync state PREPARED.
 */
export async function startClient(baseUrl, label, creds, { timeoutMs = 30000 } = {}) {
    const client = sdk.createClient({
        baseUrl,
        userId: creds.user_id,
        accessToken: creds.access_token,
        deviceId: creds.device_id,
        fetchFn: loggingFetch(label),
        localTimeoutMs: 30000,
    });
    client.label = label;
    let lastState = "none";
    let lastError;
    const prepared = new Promise((resolve) => {
        const onSync = (state, _prev, data) => {
            lastState = state;
            if (data?.error) lastError = data.error;
            if (state === "PREPARED") {
                client.off(sdk.ClientEvent.Sync, onSync);
                resolve();
            }
        };
        client.on(sdk.ClientEvent.Sync, onSync);
    });
    try {
        await client.startClient({ initialSyncLimit: 20 });
        await withTimeout(prepared, timeoutMs, `${label}: first sync (PREPARED)`);
    } catch (err) {
        client.stopClient();
        err.message += `; last sync state ${lastState}${lastError ? `, error ${lastError}` : ""}`;
        throw err;
    }
    return client;
}

// ------------------------------------------------------------------ rooms

/** m.room.message events in the live timeline of roomId, as seen by client. */
export function messageEvents(client, roomId) {
    const room = client.getRoom(roomId);
    if (!room) return [];
    return room
        .getLiveTimeline()
        .getEvents()
        .filter((e) => e.getType() === "m.room.message");
}

/** True if the event came back from the server (not a pending local echo). */
export function isRemote(ev) {
    return ev.status === null && typeof ev.getId() === "string" && ev.getId().startsWith("$");
}

export { sdk };
