/**
 * Process level: readiness and database outages. The server runs against a PostgreSQL of this file's own, which
 * the tests stop (fast shutdown: its connections are cut) and start again under the running process.
 */
import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import pg from "pg";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { acceptsConnections, type HttpResult, RequestFailure, request } from "../support/http.js";
import { type OwnPostgres, startOwnPostgres } from "../support/postgres.js";
import { type ServerProcess, spawnServer, startServer } from "../support/process.js";
import { waitFor, within } from "../support/wait.js";

const ACQUIRE_TIMEOUT_MS = 1000;
/** The bound for any answer while the database is down: the pool gives up after the acquire timeout. */
const OUTAGE_BOUND_MS = 3 * ACQUIRE_TIMEOUT_MS;
const SEED_ID = "00000000-0000-0000-0000-000000000001";
const PROBLEM = /^application\/problem\+json/;

interface State {
  db: OwnPostgres;
  server: ServerProcess;
  pid: number;
}

const test = suite<State>("process: readiness and database outage", {} as State);

let setup: Promise<void> | undefined;
/** The database and the server, once for the file (lazily, so that a failure fails a test, not the run). */
function ready(state: State) {
  setup ??= (async () => {
    state.db = await startOwnPostgres();
    state.server = await startServer({
      DATABASE_URL: state.db.url,
      MIGRATE_ON_START: "true",
      SEED_ON_START: "true",
      DB_ACQUIRE_TIMEOUT_MS: String(ACQUIRE_TIMEOUT_MS),
      DB_POOL_MAX: "10",
    });
    state.pid = state.server.child.pid ?? 0;
  })();
  return setup;
}

test.after(async (state) => {
  if (state.server) await state.server.stop(10_000).catch(() => state.server.kill());
  await state.db?.stop();
});

function assertProblem503(res: HttpResult, what: string) {
  assert.is(res.status, 503, `${what}: ${res.status} ${res.text}`);
  assert.match(String(res.headers["content-type"]), PROBLEM, `${what}: problem content type`);
  assert.is(res.body.status, 503, `${what}: problem body`);
  assert.ok(res.ms < OUTAGE_BOUND_MS, `${what}: answered after ${res.ms} ms, bound ${OUTAGE_BOUND_MS} ms`);
}

const newLoan = (borrower: string) => ({ borrower_id: borrower, amount: "250.00", currency: "KES", term_months: 6 });

test(
  "when the database is up, /ready answers 200 {status: ready}",
  within(40_000, async (state: State) => {
    await ready(state);
    const res = await request(state.server.url, "GET", "/ready");
    assert.is(res.status, 200, res.text);
    assert.equal(res.body, { status: "ready" });
  }),
);

test(
  "when the database stops, /ready answers a 503 problem within the bound while /health still answers 200",
  within(20_000, async (state: State) => {
    await ready(state);
    await state.db.pause();
    const notReady = await request(state.server.url, "GET", "/ready", { timeoutMs: 10_000 });
    assertProblem503(notReady, "/ready");
    const health = await request(state.server.url, "GET", "/health");
    assert.is(health.status, 200);
    assert.equal(health.body, { status: "ok" });
  }),
);

test(
  "while the database is down, API requests (list, by id, create, stats, transition) get 503 problems within 3× the acquire timeout, never a 500 or a hang",
  within(30_000, async (state: State) => {
    await ready(state);
    const base = state.server.url;
    const calls: [string, () => Promise<HttpResult>][] = [
      ["GET /api/loans", () => request(base, "GET", "/api/loans", { timeoutMs: 10_000 })],
      ["GET /api/loans/:id", () => request(base, "GET", `/api/loans/${SEED_ID}`, { timeoutMs: 10_000 })],
      [
        "POST /api/loans",
        () => request(base, "POST", "/api/loans", { json: newLoan("usr_outage"), timeoutMs: 10_000 }),
      ],
      [
        "POST /api/loans with Idempotency-Key",
        () =>
          request(base, "POST", "/api/loans", {
            json: newLoan("usr_outage_key"),
            headers: { "Idempotency-Key": randomUUID() },
            timeoutMs: 10_000,
          }),
      ],
      ["GET /api/stats", () => request(base, "GET", "/api/stats", { timeoutMs: 10_000 })],
      [
        "PATCH /api/loans/:id",
        () => request(base, "PATCH", `/api/loans/${SEED_ID}`, { json: { status: "approved" }, timeoutMs: 10_000 }),
      ],
    ];
    // Each one alone, then all of them at once (several requests waiting on the pool together).
    for (const [what, call] of calls) {
      const res = await call();
      assertProblem503(res, what);
      assert.ok(res.headers["retry-after"], `${what}: Retry-After`);
    }
    const together = await Promise.all(calls.map(async ([what, call]) => [what, await call()] as const));
    for (const [what, res] of together) assertProblem503(res, `${what} (concurrent)`);
    // Invalid input is still answered without the database.
    const invalid = await request(base, "GET", "/api/loans/not-a-uuid");
    assert.is(invalid.status, 400);
  }),
);

test(
  "when the database comes back, /ready is 200 again and the API serves again, without restarting the process",
  within(30_000, async (state: State) => {
    await ready(state);
    const back = Date.now();
    await state.db.start();
    await waitFor(
      "/ready 200",
      async () => (await request(state.server.url, "GET", "/ready", { timeoutMs: 5000 })).status === 200,
      10_000,
    );
    const readyAfterMs = Date.now() - back;
    assert.ok(readyAfterMs < 10_000, `ready after ${readyAfterMs} ms`);
    const list = await request(state.server.url, "GET", "/api/loans");
    assert.is(list.status, 200, list.text);
    const created = await request(state.server.url, "POST", "/api/loans", { json: newLoan("usr_after_outage") });
    assert.is(created.status, 201, created.text);
    const again = await request(state.server.url, "GET", `/api/loans/${created.body.id}`);
    assert.is(again.status, 200, again.text);
    const stats = await request(state.server.url, "GET", "/api/stats");
    assert.is(stats.status, 200, stats.text);
    assert.not.ok(state.server.hasExited, "the same process");
    assert.is(state.server.child.pid, state.pid);
    // Nothing the outage caused was logged as a server error (level 50 = error: a 500 or a crash).
    const errors = state.server
      .logs()
      .filter((l) => l.level >= 50 && (l.res as { statusCode?: number })?.statusCode !== 503);
    assert.equal(errors, [], "no error-level log lines other than 503 responses");
  }),
);

test(
  "when the database is not up yet at start-up, the server waits for it (retrying its migrations) and starts serving once it is",
  within(40_000, async (state: State) => {
    await ready(state);
    await state.db.pause();
    let late: ServerProcess | undefined;
    try {
      late = await spawnServer({
        DATABASE_URL: state.db.url,
        MIGRATE_ON_START: "true",
        SEED_ON_START: "true",
        DB_ACQUIRE_TIMEOUT_MS: String(ACQUIRE_TIMEOUT_MS),
      });
      const server = late;
      await server.waitForLog((l) => /^migration failed; retrying/.test(l.msg), 15_000, "a migration retry");
      assert.not.ok(
        server.logs().some((l) => l.msg === "listening"),
        "not listening without its database",
      );
      assert.not.ok(await acceptsConnections(server.port), "the port is closed meanwhile");
      await state.db.start();
      await server.waitForLog((l) => l.msg === "listening", 15_000, '"listening" after the database came up');
      const list = await request(server.url, "GET", "/api/loans");
      assert.is(list.status, 200, list.text);
      const exit = await server.stop(10_000);
      assert.is(exit.code, 0, server.describe());
    } finally {
      late?.kill();
      // Back up for the next test, whatever happened here (a no-op when it already is).
      await state.db.start();
    }
  }),
);

interface Outcome {
  kind: "post" | "list" | "get" | "stats";
  status?: number;
  failure?: RequestFailure;
  key?: string;
  body?: ReturnType<typeof newLoan>;
  id?: string;
  at: number;
}

test(
  "under a stream of concurrent requests, a 1 s database stop gives only 2xx or 503 answers, every 201 loan is stored, 503'd creations retried with their Idempotency-Key are stored exactly once, and the service recovers",
  within(40_000, async (state: State) => {
    await ready(state);
    const base = state.server.url;
    const run = `load_${Date.now().toString(36)}`;
    const WORKERS = 8;
    // About 3 s: 0.8 s up, 1 s down, then on until 1 s after the database is back (however long its start took).
    const MIN_DURATION_MS = 3000;
    let endAt = 15_000;
    const outcomes: Outcome[] = [];
    const started = Date.now();
    let seq = 0;
    let createdId: string | undefined;

    async function worker(w: number) {
      for (let i = 0; Date.now() - started < endAt && i < 2000; i++) {
        const kind = (["post", "list", "post", "get", "stats"] as const)[(w + i) % 5] ?? "post";
        const outcome: Outcome = { kind, at: Date.now() - started };
        try {
          let res: HttpResult;
          if (kind === "post") {
            outcome.key = `${run}_${seq++}`;
            outcome.body = newLoan(`${run}_${w}`);
            res = await request(base, "POST", "/api/loans", {
              json: outcome.body,
              headers: { "Idempotency-Key": outcome.key },
              timeoutMs: OUTAGE_BOUND_MS + 2000,
            });
            if (res.status === 201) {
              outcome.id = res.body.id;
              createdId ??= res.body.id;
            }
          } else if (kind === "list") {
            res = await request(base, "GET", "/api/loans?limit=5", { timeoutMs: OUTAGE_BOUND_MS + 2000 });
          } else if (kind === "get") {
            res = await request(base, "GET", `/api/loans/${createdId ?? SEED_ID}`, {
              timeoutMs: OUTAGE_BOUND_MS + 2000,
            });
          } else {
            res = await request(base, "GET", "/api/stats", { timeoutMs: OUTAGE_BOUND_MS + 2000 });
          }
          outcome.status = res.status;
        } catch (err) {
          if (!(err instanceof RequestFailure)) throw err;
          outcome.failure = err;
        }
        outcomes.push(outcome);
      }
    }

    const fault = (async () => {
      await sleep(800);
      const t0 = Date.now() - started;
      await state.db.pause();
      await sleep(1000);
      await state.db.start();
      const up = Date.now() - started;
      endAt = Math.max(MIN_DURATION_MS, up + 1000);
      return { down: t0, up };
    })();
    const [window] = await Promise.all([fault, ...Array.from({ length: WORKERS }, (_, w) => worker(w))]);

    const failures = outcomes.filter((o) => o.failure);
    assert.equal(
      failures.map((o) => `${o.kind} at ${o.at} ms: ${o.failure?.message}`),
      [],
      "every request got a complete answer",
    );
    const bad = outcomes.filter(
      (o) => o.status !== undefined && !(o.status >= 200 && o.status < 300) && o.status !== 503,
    );
    assert.equal(
      bad.map((o) => `${o.kind} at ${o.at} ms: ${o.status}`),
      [],
      "every answer is 2xx or 503",
    );
    const unavailable = outcomes.filter((o) => o.status === 503);
    assert.ok(
      unavailable.length > 0,
      `the outage was seen by the traffic (${outcomes.length} requests, window ${JSON.stringify(window)})`,
    );
    assert.ok(
      outcomes.some((o) => o.status && o.status < 300 && o.at > window.up),
      "requests succeeded again after the database came back, within the stream",
    );

    // Every loan answered 201 is in the database.
    const client = new pg.Client(state.db.url);
    await client.connect();
    try {
      const stored = await client.query<{ id: string }>("SELECT id FROM loans WHERE borrower_id LIKE $1", [`${run}_%`]);
      const storedIds = new Set(stored.rows.map((r) => r.id));
      const answered = outcomes.filter((o) => o.kind === "post" && o.status === 201);
      assert.ok(answered.length > 0, "some creations succeeded");
      const missing = answered.filter((o) => !storedIds.has(o.id ?? ""));
      assert.equal(
        missing.map((o) => o.id),
        [],
        "every 201 loan is stored",
      );

      // Retrying every 503'd creation with its Idempotency-Key: each ends with exactly one stored loan.
      const retried = outcomes.filter((o) => o.kind === "post" && o.status === 503);
      for (const o of retried) {
        const res = await request(base, "POST", "/api/loans", {
          json: o.body,
          headers: { "Idempotency-Key": o.key ?? "" },
        });
        assert.is(res.status, 201, `retry of ${o.key}: ${res.text}`);
      }
      const posts = outcomes.filter((o) => o.kind === "post").length;
      const after = await client.query<{ n: string }>("SELECT count(*) AS n FROM loans WHERE borrower_id LIKE $1", [
        `${run}_%`,
      ]);
      assert.is(Number(after.rows[0]?.n), posts, `one loan per creation request (${retried.length} retried)`);
    } finally {
      await client.end();
    }
    const readyNow = await request(base, "GET", "/ready");
    assert.is(readyNow.status, 200, "ready after the fault");
  }),
);

test.run();
