// Helpers for the Element Web end-to-end test (element.test.js): start
// Parley, serve Element Web with a config.json that points at it, launch
// Debian's Chromium through playwright-core, and record what the client
// sees going wrong (HTTP errors from Parley, page errors, console errors).
//
// Nothing here reaches beyond loopback: every request that is not to the
// Element or Parley origin, data: or blob: is aborted in the browser.

import { spawn } from "node:child_process";
import { once } from "node:events";
import { createReadStream, createWriteStream } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import http from "node:http";
import net from "node:net";
import { tmpdir } from "node:os";
import { extname, join, normalize } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

import { chromium } from "playwright-core";

export const SERVER_NAME = "localhost";

async function freePort() {
    const srv = net.createServer();
    srv.listen(0, "127.0.0.1");
    await once(srv, "listening");
    const { port } = srv.address();
    srv.close();
    await once(srv, "close");
    return port;
}

const children = new Set();
process.on("exit", () => {
    for (const c of children) c.kill("SIGKILL");
});
for (const sig of ["SIGINT", "SIGTERM"]) {
    process.once(sig, () => process.exit(sig === "SIGINT" ? 130 : 143)); // runs the exit handler
}

/**
 * Starts `bin serve` on a free loopback port with the embedded SQLite store
 * in a fresh data dir under dir, and waits for /_matrix/client/versions.
 */
export async function startParley(bin, dir, { readyTimeoutMs = 30000 } = {}) {
    const port = await freePort();
    const baseUrl = `http://127.0.0.1:${port}`;
    const logPath = join(dir, "parley.log");
    const log = createWriteStream(logPath);
    const child = spawn(bin, ["serve"], {
        env: {
            ...process.env,
            PARLEY_LISTEN: `127.0.0.1:${port}`,
            PARLEY_DATA_DIR: join(dir, "data"),
            PARLEY_SERVER_NAME: SERVER_NAME,
            PARLEY_REGISTRATION: "open",
            PARLEY_DATABASE_URL: "",
        },
        stdio: ["ignore", "pipe", "pipe"],
    });
    children.add(child);
    child.stdout.pipe(log, { end: false });
    child.stderr.pipe(log, { end: false });
    let exited = null;
    const exit = new Promise((resolve) =>
        child.once("exit", (code, signal) => {
            exited = { code, signal };
            children.delete(child);
            resolve();
        }),
    );
    const deadline = Date.now() + readyTimeoutMs;
    for (;;) {
        if (exited) throw new Error(`parley exited before it was ready (${JSON.stringify(exited)}); log in ${logPath}`);
        try {
            const res = await fetch(`${baseUrl}/_matrix/client/versions`, { signal: AbortSignal.timeout(2000) });
            await res.arrayBuffer();
            if (res.status === 200) break;
        } catch {
            // not listening yet
        }
        if (Date.now() > deadline) throw new Error(`parley not ready after ${readyTimeoutMs} ms; log in ${logPath}`);
        await sleep(100);
    }
    return {
        baseUrl,
        logPath,
        async stop() {
            if (!exited) {
                child.kill("SIGTERM");
                if (!(await Promise.race([exit.then(() => true), sleep(10000, false)]))) {
                    child.kill("SIGKILL");
                    await exit;
                }
            }
            await new Promise((r) => log.end(r));
        },
    };
}

const MIME = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".css": "text/css",
    ".json": "application/json",
    ".wasm": "application/wasm",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".woff2": "font/woff2",
    ".woff": "font/woff",
    ".ttf": "font/ttf",
    ".mp3": "audio/mpeg",
    ".ogg": "audio/ogg",
};

/**
 * Unpacks Element Web from tarball into dir, rewrites its config.json to
 * point at baseUrl, and serves it on a free loopback port. Returns { url, close }.
 */
export async function serveElement(tarball, dir, baseUrl) {
    await mkdir(dir, { recursive: true });
    const tar = spawn("tar", ["xzf", tarball, "-C", dir], { stdio: "inherit" });
    const [code] = await once(tar, "exit");
    if (code !== 0) throw new Error(`tar xzf ${tarball} failed (${code})`);
    const root = join(dir, "element-web-1.11.52");
    const configPath = join(root, "config.json");
    const config = JSON.parse(await readFile(configPath, "utf8"));
    config.default_server_config = { "m.homeserver": { base_url: baseUrl, server_name: SERVER_NAME } };
    config.room_directory = { servers: [SERVER_NAME] };
    // No analytics prompt, no reporting, no integration manager.
    config.posthog = undefined;
    config.integrations_ui_url = undefined;
    config.integrations_rest_url = undefined;
    config.integrations_widgets_urls = undefined;
    await writeFile(configPath, JSON.stringify(config, null, 2));

    const server = http.createServer(async (req, res) => {
        try {
            let p = decodeURIComponent(new URL(req.url, "http://x").pathname);
            if (p.endsWith("/")) p += "index.html";
            const file = normalize(join(root, p));
            if (!file.startsWith(root)) throw new Error("outside");
            const st = await stat(file);
            if (!st.isFile()) throw new Error("not a file");
            res.writeHead(200, {
                "Content-Type": MIME[extname(file)] ?? "application/octet-stream",
                "Content-Length": st.size,
                "Cache-Control": "no-cache",
            });
            createReadStream(file).pipe(res);
        } catch {
            res.writeHead(404, { "Content-Type": "text/plain" });
            res.end("not found");
        }
    });
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    const url = `http://127.0.0.1:${server.address().port}`;
    return {
        url,
        close: () => new Promise((r) => server.close(r)),
    };
}

/** Launches /usr/bin/chromium headless (or $PARLEY_CHROMIUM). */
export async function launchBrowser() {
    return chromium.launch({
        executablePath: process.env.PARLEY_CHROMIUM || "/usr/bin/chromium",
        headless: true,
        args: ["--no-sandbox", "--disable-dev-shm-usage"],
    });
}

/**
 * A recorder shared by every page: HTTP errors from Parley, page errors,
 * console errors, and each /sync request with its time and page label.
 */
export class Recorder {
    constructor(parleyUrl, elementUrl) {
        this.parleyUrl = parleyUrl;
        this.elementUrl = elementUrl;
        this.requests = []; // every answered Parley request: { who, user, method, path, status, sentAt, at, ms }
        this.httpErrors = []; // those with status >= 400, with the body: { ..., body }
        this.pageErrors = []; // { who, text }
        this.consoleErrors = []; // { who, text }
        this.syncs = []; // { who, at }
        this.blocked = []; // urls aborted because not loopback
    }

    /** Blocks every request that leaves the two loopback origins. */
    async guard(context, who) {
        await context.route("**/*", (route) => {
            const url = route.request().url();
            if (url.startsWith("data:") || url.startsWith("blob:") || url.startsWith(this.parleyUrl) || url.startsWith(this.elementUrl)) {
                return route.continue();
            }
            this.blocked.push({ who, url });
            return route.abort();
        });
    }

    /** Records what page (labelled who, logged in as user) sees. */
    watch(page, who, user = who) {
        page.on("pageerror", (err) => this.pageErrors.push({ who, text: String(err?.stack ?? err) }));
        page.on("console", (msg) => {
            if (msg.type() === "error") this.consoleErrors.push({ who, text: msg.text() });
        });
        page.on("request", (req) => {
            const url = req.url();
            if (url.startsWith(this.parleyUrl) && new URL(url).pathname.endsWith("/sync")) {
                this.syncs.push({ who, at: Date.now() });
            }
        });
        page.on("response", async (res) => {
            const url = res.url();
            if (!url.startsWith(this.parleyUrl)) return;
            const req = res.request();
            const sentAt = req.timing().startTime; // ms since the epoch
            const entry = { who, user, method: req.method(), path: new URL(url).pathname, status: res.status(), sentAt, at: Date.now() };
            entry.ms = Math.round(entry.at - sentAt); // until the headers came back
            this.requests.push(entry);
            if (res.status() < 400) return;
            entry.body = "";
            this.httpErrors.push(entry);
            try {
                entry.body = (await res.text()).slice(0, 300);
            } catch {
                // body gone (page closed)
            }
        });
    }
}

export async function makeTempDir(prefix) {
    return mkdtemp(join(process.env.TMPDIR || tmpdir(), prefix));
}

export { rm, sleep };
