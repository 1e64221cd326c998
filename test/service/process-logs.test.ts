/**
 * Process level: what the real process writes and sends around every response — JSON log lines on stdout with a
 * request id, the id echoed to the client, no database password anywhere in its output, security headers.
 *
 * The server connects as a role with a distinctive password (created here on a PostgreSQL of this file's own), so
 * that a leak of the password anywhere in stdout or stderr is detectable.
 */
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { createConnection } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import pg from "pg";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { request } from "../support/http.js";
import { type OwnPostgres, startOwnPostgres } from "../support/postgres.js";
import { type LogLine, type ServerProcess, startServer } from "../support/process.js";
import { waitFor, within } from "../support/wait.js";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const ROLE = "loan_app";
const PASSWORD = `Pw-${randomBytes(9).toString("hex")}-Zq7`;

interface State {
  db: OwnPostgres;
  server: ServerProcess;
}

const test = suite<State>("process: logs, request ids, secrets and security headers", {} as State);

let setup: Promise<void> | undefined;
function ready(state: State) {
  setup ??= (async () => {
    state.db = await startOwnPostgres("loans_logs");
    const admin = new pg.Client(state.db.url);
    await admin.connect();
    try {
      await admin.query(`CREATE ROLE ${ROLE} LOGIN PASSWORD '${PASSWORD}'`);
      await admin.query(`ALTER DATABASE loans_logs OWNER TO ${ROLE}`);
    } finally {
      await admin.end();
    }
    const url = new URL(state.db.url);
    url.username = ROLE;
    url.password = PASSWORD;
    state.server = await startServer({
      DATABASE_URL: url.toString(),
      MIGRATE_ON_START: "true",
      SEED_ON_START: "true",
      DB_ACQUIRE_TIMEOUT_MS: "1000",
      LOG_LEVEL: "trace",
    });
  })();
  return setup;
}

test.after(async (state) => {
  if (state.server) await state.server.stop(10_000).catch(() => state.server.kill());
  await state.db?.stop();
});

/** The log line of the request with this id (written when its response is finished). */
function requestLine(server: ServerProcess, id: string) {
  return server.waitForLog(
    (l) => (l.req as { id?: string } | undefined)?.id === id && l.res !== undefined,
    3000,
    `log of ${id}`,
  );
}

test(
  "an X-Request-Id sent by the client is echoed in the response header and is the id of that request's log line",
  within(40_000, async (state: State) => {
    await ready(state);
    const id = `client-req-${Date.now()}`;
    const res = await request(state.server.url, "GET", "/api/loans?limit=2", { headers: { "X-Request-Id": id } });
    assert.is(res.status, 200);
    assert.is(res.headers["x-request-id"], id);
    const line = await requestLine(state.server, id);
    assert.equal(line.req, { id, method: "GET", url: "/api/loans?limit=2", remoteAddress: "127.0.0.1" });
    assert.equal(line.res, { statusCode: 200 });
    assert.is(line.level, 30, "a 200 is logged at info");

    // Problem responses carry and log it too, at warn.
    const missingId = `client-404-${Date.now()}`;
    const missing = await request(state.server.url, "GET", "/api/loans/00000000-0000-0000-0000-0000000000ff", {
      headers: { "X-Request-Id": missingId },
    });
    assert.is(missing.status, 404);
    assert.is(missing.headers["x-request-id"], missingId);
    const missingLine = await requestLine(state.server, missingId);
    assert.equal(missingLine.res, { statusCode: 404 });
    assert.is(missingLine.level, 40, "a 4xx is logged at warn");
  }),
);

test(
  "without an X-Request-Id the server generates a UUID, echoes it and logs it; each request gets its own",
  within(20_000, async (state: State) => {
    await ready(state);
    const a = await request(state.server.url, "GET", "/openapi.json");
    const b = await request(state.server.url, "POST", "/api/loans", {
      json: { borrower_id: "usr_logs", amount: 10, currency: "UGX" },
    });
    assert.is(b.status, 201, b.text);
    const ids = [a.headers["x-request-id"], b.headers["x-request-id"]].map(String);
    for (const id of ids) {
      assert.match(id, UUID);
      const line = await requestLine(state.server, id);
      assert.match(String((line.req as { url: string }).url), /^\/(openapi\.json|api\/loans)$/);
    }
    assert.is.not(ids[0], ids[1]);
  }),
);

test(
  "a client that goes away before its response is logged once, at warn, as an aborted request with its id",
  within(20_000, async (state: State) => {
    await ready(state);
    const id = `client-abort-${Date.now()}`;
    const { hostname, port } = new URL(state.server.url);
    // The body is announced at 100 bytes and 10 arrive: the server waits for the rest, then the client leaves.
    const socket = createConnection({ host: hostname, port: Number(port) });
    await once(socket, "connect");
    socket.write(
      `POST /api/loans HTTP/1.1\r\nHost: ${hostname}\r\nContent-Type: application/json\r\n` +
        `Content-Length: 100\r\nX-Request-Id: ${id}\r\n\r\n{"borrower`,
    );
    await sleep(200);
    socket.destroy();
    const line = await requestLine(state.server, id);
    assert.is(line.msg, "request aborted");
    assert.is(line.level, 40, "an aborted request is logged at warn");
    assert.equal(line.req, { id, method: "POST", url: "/api/loans", remoteAddress: "127.0.0.1" });
    assert.equal(line.res, {}, "no status: no response was sent");
    await sleep(200);
    const lines = state.server.logs().filter((l) => (l.req as { id?: string } | undefined)?.id === id);
    assert.is(lines.length, 1, "one line for the request, not also a 'completed' one");
  }),
);

test(
  "an X-Request-Id that is not a safe token (spaces, quotes, or over 128 characters) is replaced by a generated UUID",
  within(20_000, async (state: State) => {
    await ready(state);
    for (const unsafe of ['a b"c', `x${"y".repeat(200)}`, '{"level":60}']) {
      const res = await request(state.server.url, "GET", "/openapi.json", { headers: { "X-Request-Id": unsafe } });
      const echoed = String(res.headers["x-request-id"]);
      assert.match(echoed, UUID, `replaced: ${unsafe.slice(0, 20)}`);
      await requestLine(state.server, echoed);
    }
    assert.not.ok(state.server.stdout.includes('a b\\"c'), "the unsafe id is not logged");
  }),
);

test(
  "stdout carries only structured JSON log lines (level, time, service, msg) and stderr stays empty",
  within(20_000, async (state: State) => {
    await ready(state);
    const lines = state.server.stdout.split("\n").filter((l) => l.trim() !== "");
    assert.ok(lines.length >= 8, `${lines.length} lines`);
    for (const text of lines) {
      let line: LogLine;
      try {
        line = JSON.parse(text) as LogLine;
      } catch {
        assert.unreachable(`not a JSON line: ${text.slice(0, 200)}`);
        return;
      }
      assert.type(line.level, "number");
      assert.type(line.time, "number");
      assert.is(line.service, "loan-service");
      assert.type(line.msg, "string");
    }
    assert.is(state.server.stderr, "");
  }),
);

test(
  "successful probes (/health, /ready) are counted but get no access line unless LOG_PROBES=true; other requests do",
  within(40_000, async (state: State) => {
    await ready(state);
    const stamp = Date.now();
    const [health, readiness] = [`probe-h-${stamp}`, `probe-r-${stamp}`];
    const probes = [health, readiness];
    assert.is((await request(state.server.url, "GET", "/health", { headers: { "X-Request-Id": health } })).status, 200);
    assert.is(
      (await request(state.server.url, "GET", "/ready", { headers: { "X-Request-Id": readiness } })).status,
      200,
    );
    // Lines are written in order: once a later request's line is there, the probes' would be too.
    const after = `after-probes-${stamp}`;
    await request(state.server.url, "GET", "/openapi.json", { headers: { "X-Request-Id": after } });
    await requestLine(state.server, after);
    const logged = (server: ServerProcess, id: string) =>
      server.logs().some((l) => (l.req as { id?: string } | undefined)?.id === id);
    for (const id of probes) assert.not.ok(logged(state.server, id), `no access line for ${id} by default`);

    const url = new URL(state.db.url);
    url.username = ROLE;
    url.password = PASSWORD;
    const verbose = await startServer({ DATABASE_URL: url.toString(), LOG_LEVEL: "info", LOG_PROBES: "true" });
    try {
      const id = `probe-logged-${stamp}`;
      assert.is((await request(verbose.url, "GET", "/health", { headers: { "X-Request-Id": id } })).status, 200);
      const line = await requestLine(verbose, id);
      assert.equal(line.req, { id, method: "GET", url: "/health", remoteAddress: "127.0.0.1" });
      assert.is(line.level, 30);
    } finally {
      await verbose.stop();
    }
  }),
);

test(
  "responses carry helmet's security headers and no X-Powered-By (JSON, problem and 404 responses alike)",
  within(20_000, async (state: State) => {
    await ready(state);
    const paths: [string, number][] = [
      ["/health", 200],
      ["/api/loans?limit=1", 200],
      ["/api/loans/not-a-uuid", 400],
      ["/no/such/route", 404],
    ];
    for (const [path, status] of paths) {
      const res = await request(state.server.url, "GET", path);
      assert.is(res.status, status, `${path}: ${res.text}`);
      const h = res.headers;
      assert.is(h["x-powered-by"], undefined, `${path}: x-powered-by`);
      assert.is(h["x-content-type-options"], "nosniff", `${path}: x-content-type-options`);
      assert.is(h["x-frame-options"], "SAMEORIGIN", `${path}: x-frame-options`);
      assert.match(String(h["strict-transport-security"]), /max-age=\d+/, `${path}: strict-transport-security`);
      assert.match(String(h["content-security-policy"]), /default-src 'self'/, `${path}: content-security-policy`);
      assert.is(h["referrer-policy"], "no-referrer", `${path}: referrer-policy`);
      assert.is(h["cross-origin-opener-policy"], "same-origin", `${path}: cross-origin-opener-policy`);
    }
  }),
);

test(
  "by default no proxy is trusted: the log's clientIp is the socket's peer whatever X-Forwarded-For claims; with TRUST_PROXY=1 (nginx in front) it is the address that hop saw, not a spoofed one",
  within(40_000, async (state: State) => {
    await ready(state);
    const check = async (server: ServerProcess, cases: [string | undefined, string][]) => {
      for (const [forwarded, expected] of cases) {
        const id = `xff-${Date.now()}-${expected}-${Math.round(performance.now())}`;
        const headers: Record<string, string> = { "X-Request-Id": id };
        if (forwarded) headers["X-Forwarded-For"] = forwarded;
        assert.is((await request(server.url, "GET", "/openapi.json", { headers })).status, 200);
        const line = await requestLine(server, id);
        assert.is(line.clientIp, expected, `X-Forwarded-For: ${forwarded ?? "(none)"}`);
        assert.is((line.req as { remoteAddress?: string }).remoteAddress, "127.0.0.1", "the socket's own address");
      }
    };
    // The suite's server runs with the defaults: a forged header changes nothing.
    await check(state.server, [
      [undefined, "127.0.0.1"],
      ["203.0.113.7", "127.0.0.1"],
      ["198.51.100.1, 203.0.113.7", "127.0.0.1"],
    ]);
    const url = new URL(state.db.url);
    url.username = ROLE;
    url.password = PASSWORD;
    const proxied = await startServer({ DATABASE_URL: url.toString(), TRUST_PROXY: "1", LOG_LEVEL: "info" });
    try {
      await check(proxied, [
        [undefined, "127.0.0.1"],
        ["203.0.113.7", "203.0.113.7"],
        // The client sent "198.51.100.1"; the proxy appended the address it saw: only that one is trusted.
        ["198.51.100.1, 203.0.113.7", "203.0.113.7"],
      ]);
    } finally {
      await proxied.stop();
    }
  }),
);

test(
  "the database password never appears in stdout or stderr: not at start-up, in requests, through an outage, nor at shutdown",
  within(40_000, async (state: State) => {
    await ready(state);
    const { server, db } = state;
    // The server really is connected as the role with that password.
    const admin = new pg.Client(db.url);
    await admin.connect();
    try {
      const r = await admin.query<{ n: string }>(
        "SELECT count(*) AS n FROM pg_stat_activity WHERE usename = $1 AND application_name = 'loan-service'",
        [ROLE],
      );
      assert.ok(Number(r.rows[0]?.n) >= 1, "the service holds connections as the role");
    } finally {
      await admin.end();
    }
    // The connection URL was logged — with the password masked.
    const configured = server.logs().find((l) => l.msg === "database configured");
    assert.match(
      String(configured?.database),
      new RegExp(`^postgres(ql)?://${ROLE}:\\*\\*\\*@127\\.0\\.0\\.1:${db.port}/`),
    );

    // Errors from the driver are the likeliest leak: an outage makes the server log them.
    await db.pause();
    try {
      for (const path of ["/ready", "/api/loans", "/api/stats"]) {
        assert.is((await request(server.url, "GET", path, { timeoutMs: 5000 })).status, 503, path);
      }
      const post = await request(server.url, "POST", "/api/loans", {
        json: { borrower_id: "usr_outage_logs", amount: 10, currency: "UGX" },
        timeoutMs: 5000,
      });
      assert.is(post.status, 503);
    } finally {
      await db.start();
    }
    await waitFor("ready again", async () => (await request(server.url, "GET", "/ready")).status === 200, 10_000);
    assert.ok(
      server.logs().some((l) => l.level >= 40 && /unavailable|not ready/.test(l.msg)),
      "the outage was logged with its errors",
    );
    const exit = await server.stop(10_000);
    assert.is(exit.code, 0, server.describe());

    for (const [name, text] of [
      ["stdout", server.stdout],
      ["stderr", server.stderr],
    ] as const) {
      assert.not.ok(text.includes(PASSWORD), `the password appears in ${name}`);
      assert.not.ok(text.includes(encodeURIComponent(PASSWORD)), `the encoded password appears in ${name}`);
    }
  }),
);

test.run();
