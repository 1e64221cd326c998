/**
 * Process level, hostile clients and bad days against the real service process (single and WEB_CONCURRENCY=2):
 * shutdown cannot be held hostage by connections without a finished request; one connection pipelining 2,000
 * requests is shed with fast 503s while another client is served; the database queue is bounded; metrics are on
 * their own listener, aggregated across workers, labelled by route template for successes and errors alike.
 */
import { readFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import pg from "pg";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { request } from "../support/http.js";
import { freePort, startTestPostgres, type TestPostgres } from "../support/postgres.js";
import { type ChildEnv, type ServerProcess, spawnServer, startServer } from "../support/process.js";
import { type RawConnection, rawConnect } from "../support/raw-http.js";
import { waitFor, within } from "../support/wait.js";

interface State {
  db: TestPostgres;
  env: ChildEnv;
  servers: ServerProcess[];
}

const test = suite<State>("process: hostile clients and bad days", { servers: [] } as unknown as State);
const SEED = "/api/loans/00000000-0000-0000-0000-000000000001";

let setup: Promise<void> | undefined;
function database(state: State) {
  setup ??= (async () => {
    state.db = await startTestPostgres({ database: "loans_hostile" });
    state.env = { DATABASE_URL: state.db.url, MIGRATE_ON_START: "true", SEED_ON_START: "true" };
  })();
  return setup;
}

async function serve(state: State, env: ChildEnv = {}) {
  await database(state);
  const server = await startServer({ ...state.env, ...env });
  state.servers.push(server);
  return server;
}

async function serveCluster(state: State, env: ChildEnv = {}) {
  await database(state);
  const server = await spawnServer({ ...state.env, WEB_CONCURRENCY: "2", ...env });
  state.servers.push(server);
  await waitFor("2 workers listening", () => server.logs().filter((l) => l.msg === "listening").length >= 2, 30_000);
  return server;
}

test.after(async (state) => {
  for (const server of state.servers) server.kill();
  await state.db?.stop();
});

/** Connections that each hold a naive server's shutdown: one that sent nothing, one mid-headers, one idle after a
 * request, one whose body is still arriving. */
async function hostages(port: number): Promise<RawConnection[]> {
  const silent = await rawConnect(port);
  const midHeaders = await rawConnect(port);
  await midHeaders.write("GET /api/loans HTTP/1.1\r\nHost: x\r\nX-Slow: ");
  const idle = await rawConnect(port);
  await idle.write("GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
  await idle.waitForResponses(1, 5000);
  const midBody = await rawConnect(port);
  await midBody.write(
    "POST /api/loans HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{",
  );
  return [silent, midHeaders, idle, midBody];
}

const GRACE_MS = 8000;

test(
  "SIGTERM with connections that sent nothing, stopped mid-headers, sit idle, or are still sending a body: exit 0 well within the grace period, every one of them closed",
  within(40_000, async (state: State) => {
    const server = await serve(state, { SHUTDOWN_GRACE_MS: String(GRACE_MS) });
    const held = await hostages(server.port);
    await sleep(200);
    const signalled = Date.now();
    server.signal("SIGTERM");
    const exit = await server.waitForExit(GRACE_MS + 5000);
    assert.is(exit.code, 0, server.describe());
    assert.not.ok(
      server.logs().some((l) => l.msg.startsWith("grace period over")),
      "not by the grace period",
    );
    // The body still arriving gets half the grace period; everything else is closed at once.
    assert.ok(Date.now() - signalled < GRACE_MS, `exited ${Date.now() - signalled} ms after the signal`);
    for (const [i, c] of held.entries()) assert.ok(await c.closed(1000), `connection ${i} closed`);
  }),
);

test(
  "in a cluster (WEB_CONCURRENCY=2) the same connections cannot hold the shutdown either: workers and primary exit 0",
  within(60_000, async (state: State) => {
    const server = await serveCluster(state, { SHUTDOWN_GRACE_MS: String(GRACE_MS) });
    // The primary spreads connections over the workers: enough of them to reach both.
    const held = [...(await hostages(server.port)), ...(await hostages(server.port)), ...(await hostages(server.port))];
    await sleep(200);
    server.signal("SIGTERM");
    const exit = await server.waitForExit(GRACE_MS + 8000);
    assert.is(exit.code, 0, server.describe());
    const done = server.logs().find((l) => l.msg === "cluster shutdown complete");
    assert.is(done?.failedExits, 0, server.describe());
    for (const [i, c] of held.entries()) assert.ok(await c.closed(1000), `connection ${i} closed`);
  }),
);

function rssKiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
}

test(
  "one connection pipelining 2,000 list requests: most get a fast 503 problem with Retry-After, memory stays bounded, and another client is served meanwhile",
  within(90_000, async (state: State) => {
    await database(state);
    const admin = new pg.Client(state.db.url);
    await admin.connect();
    const server = await serve(state, { DB_POOL_MAX: "5" });
    try {
      // Full pages: 200 loans, so that each answered request is a ~60 KB body.
      await admin.query(
        "INSERT INTO loans (borrower_id, amount, currency) SELECT 'bulk_' || g, 100, 'KES' FROM generate_series(1, 200) g",
      );
      for (let i = 0; i < 20; i++) await request(server.url, "GET", "/api/loans?limit=200");
      const pid = server.child.pid ?? 0;
      const before = rssKiB(pid);

      const c = await rawConnect(server.port);
      const N = 2000;
      const pipelined = "GET /api/loans?limit=200 HTTP/1.1\r\nHost: x\r\n\r\n".repeat(N);
      void c.write(pipelined);
      const other: number[] = [];
      let peak = before;
      const done = c.waitForResponses(N, 60_000);
      let finished = false;
      void done.finally(() => (finished = true)).catch(() => {});
      while (!finished || other.length < 10) {
        other.push((await request(server.url, "GET", SEED, { timeoutMs: 10_000 })).status);
        peak = Math.max(peak, rssKiB(pid));
      }
      const responses = await done;
      c.destroy();

      const shed = responses.filter((r) => r.status === 503);
      const ok = responses.filter((r) => r.status === 200);
      assert.is(shed.length + ok.length, N, "every pipelined request is answered 200 or 503");
      assert.ok(ok.length >= 8, `some are served (${ok.length})`);
      assert.ok(shed.length >= N / 2, `most are shed (${shed.length})`);
      for (const r of shed.slice(0, 50)) {
        assert.is(r.headers["retry-after"], "1");
        assert.is(r.headers["content-type"], "application/problem+json; charset=utf-8");
        assert.is(JSON.parse(r.body).type, "/problems/overloaded");
      }
      assert.ok(
        other.every((s) => s === 200),
        `the other client was served every time: ${other.join(",")}`,
      );
      // Loose: the unbounded server grew by ~110 MB on this load; shed, it grows by ~10-15 MB.
      assert.ok(peak - before < 50 * 1024, `RSS grew by ${Math.round((peak - before) / 1024)} MiB`);
    } finally {
      await admin.query("DELETE FROM loans WHERE borrower_id LIKE 'bulk\\_%'");
      await admin.end();
      await server.stop();
    }
  }),
);

test(
  "past DB_QUEUE_MAX requests waiting for a connection, the next get a 503 overloaded problem at once — while the first still wait",
  within(60_000, async (state: State) => {
    const server = await serve(state, {
      DB_POOL_MAX: "2",
      DB_QUEUE_MAX: "4",
      DB_ACQUIRE_TIMEOUT_MS: "20000",
      DB_STATEMENT_TIMEOUT_MS: "20000",
    });
    const lock = new pg.Client(state.db.url);
    await lock.connect();
    try {
      await request(server.url, "GET", SEED);
      await lock.query("BEGIN");
      await lock.query("LOCK TABLE loans IN ACCESS EXCLUSIVE MODE");
      const results = Array.from({ length: 20 }, () => request(server.url, "GET", SEED, { timeoutMs: 30_000 }));
      const settled: { status: number; type?: string; retry?: string }[] = [];
      for (const p of results) {
        void p.then((r) =>
          settled.push({ status: r.status, type: r.body?.type, retry: r.headers["retry-after"] as string }),
        );
      }
      // At most 2 run (blocked by the lock) and 4 wait: at least 14 are answered while the lock is still held.
      await waitFor("14 answers while the lock is held", () => settled.length >= 14, 15_000);
      assert.ok(
        settled.every((r) => r.status === 503 && r.type === "/problems/overloaded" && r.retry === "1"),
        JSON.stringify(settled),
      );
      await lock.query("COMMIT");
      const all = await Promise.all(results);
      // Admitted: the ones holding a connection (1 or 2: the second may still be opening, its request counted as
      // waiting) plus the 4 waiting.
      const ok = all.filter((r) => r.status === 200).length;
      assert.ok(ok === 5 || ok === 6, all.map((r) => r.status).join(","));
      assert.is(all.filter((r) => r.status === 503).length, 20 - ok);
    } finally {
      await lock.end().catch(() => {});
      await server.stop();
    }
  }),
);

async function scrape(port: number) {
  const r = await request(`http://127.0.0.1:${port}`, "GET", "/metrics");
  assert.is(r.status, 200, r.text);
  return r.text;
}

/** The `_count` of the request-duration histogram for a route/status pair (0 when absent). */
function count(text: string, route: string, status: number, method = "GET") {
  const re = new RegExp(
    `^http_request_duration_seconds_count\\{method="${method}",route="${route.replace(/[/:]/g, (c) => `\\${c}`)}",status_code="${status}"\\} (\\d+)`,
    "m",
  );
  return Number(re.exec(text)?.[1] ?? 0);
}

test(
  "metrics are on METRICS_PORT, not the public port; labels are the full route template for 2xx, 4xx and 503 alike, in canonical casing; unknown paths share one label",
  within(60_000, async (state: State) => {
    const metricsPort = await freePort();
    const server = await serve(state, { METRICS_PORT: String(metricsPort) });
    try {
      assert.is((await request(server.url, "GET", "/metrics")).status, 404, "not on the public port");
      await request(server.url, "GET", SEED);
      await request(server.url, "GET", SEED.toUpperCase().replace("/API/LOANS/", "/Api/LOANS/"));
      await request(server.url, "GET", "/api/loans/%ZZ");
      await request(server.url, "GET", "/api/loans/not-a-uuid");
      await request(server.url, "GET", "/api/loans/00000000-0000-0000-0000-0000000000ff");
      await request(server.url, "DELETE", SEED);
      await request(server.url, "GET", "/no/such/path/123");
      await request(server.url, "GET", "/API/nothing-here");
      // A database outage: 503s on the same route.
      await state.db.pause();
      try {
        const down = await request(server.url, "GET", SEED);
        assert.is(down.status, 503);
      } finally {
        await state.db.start();
      }
      const text = await scrape(metricsPort);
      assert.is(count(text, "/api/loans/:id", 200), 2, "success, in either casing");
      assert.is(count(text, "/api/loans/:id", 400), 2, "bad ids, broken percent-encoding");
      assert.is(count(text, "/api/loans/:id", 404), 1);
      assert.is(count(text, "/api/loans/:id", 405, "DELETE"), 1);
      assert.is(count(text, "/api/loans/:id", 503), 1, "the outage");
      assert.is(count(text, "unmatched", 404), 3, "/metrics on the public port, and two unknown paths");
      assert.not.match(text, /route="\/loans\/:id"/);
      assert.not.match(text, /route="[^"]*[A-Z][^"]*"/, "no request casing in a label");
      const routes = new Set([...text.matchAll(/route="([^"]*)"/g)].map((m) => m[1]));
      assert.equal(
        [...routes].sort(),
        ["/api/loans/:id", "/health", "unmatched"].sort().filter((r) => routes.has(r)),
      );
    } finally {
      await server.stop();
    }
  }),
);

test(
  "with WEB_CONCURRENCY=2 the primary serves the metrics of both workers together (prom-client AggregatorRegistry)",
  within(60_000, async (state: State) => {
    const metricsPort = await freePort();
    // LOG_PROBES: each probe's access line tells which worker answered it.
    const server = await serveCluster(state, { METRICS_PORT: String(metricsPort), LOG_PROBES: "true" });
    try {
      const pids = new Set<number>();
      const N = 40;
      for (let i = 0; i < N; i++) {
        const id = `agg-${i}-${Date.now()}`;
        await request(server.url, "GET", "/health", { headers: { "X-Request-Id": id } });
        const line = await server.waitForLog((l) => (l.req as { id?: string })?.id === id, 3000, id);
        pids.add(Number(line.pid));
      }
      assert.is(pids.size, 2, "both workers served some");
      const text = await scrape(metricsPort);
      assert.is(count(text, "/health", 200), N, "the sum over both workers");
      assert.match(text, /db_pool_connections_max \d+/);
    } finally {
      await server.stop();
    }
  }),
);

test.run();
