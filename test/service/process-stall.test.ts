/**
 * Process level: a database that stops answering without going away — a network partition, a frozen host. Its
 * TCP connections stay open and new ones are accepted, but no byte comes back. The server reaches its database
 * through a proxy of this file's own that stalls all traffic on demand.
 */
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { type HttpResult, RequestFailure, request } from "../support/http.js";
import { type RunnerDatabase, runnerDatabase } from "../support/postgres.js";
import { type ServerProcess, startServer } from "../support/process.js";
import { type StallProxy, startStallProxy } from "../support/stall-proxy.js";
import { waitFor, within } from "../support/wait.js";

const ACQUIRE_TIMEOUT_MS = 1000;
const STATEMENT_TIMEOUT_MS = 1000;
const BOUND_MS = 3 * ACQUIRE_TIMEOUT_MS;
// A query on a pooled connection to a stalled server ends by the client's query_timeout (statement timeout +
// acquire timeout); the rest is slack for a loaded 2-core machine.
const API_BOUND_MS = STATEMENT_TIMEOUT_MS + ACQUIRE_TIMEOUT_MS + 2000;

interface State {
  db: RunnerDatabase;
  proxy: StallProxy;
  server: ServerProcess;
}

const test = suite<State>("process: database stall (no answer, no refusal)", {} as State);

let setup: Promise<void> | undefined;
function ready(state: State) {
  setup ??= (async () => {
    state.db = await runnerDatabase();
    state.proxy = await startStallProxy(state.db.port, state.db.host);
    const url = new URL(state.db.url);
    url.hostname = "127.0.0.1";
    url.port = String(state.proxy.port);
    state.server = await startServer({
      DATABASE_URL: url.toString(),
      MIGRATE_ON_START: "true",
      SEED_ON_START: "true",
      DB_ACQUIRE_TIMEOUT_MS: String(ACQUIRE_TIMEOUT_MS),
      DB_STATEMENT_TIMEOUT_MS: String(STATEMENT_TIMEOUT_MS),
    });
    // Some pooled connections exist before the stall, as in a running service.
    await Promise.all(Array.from({ length: 4 }, () => request(state.server.url, "GET", "/api/loans?limit=1")));
  })();
  return setup;
}

test.after(async (state) => {
  state.proxy?.resume();
  if (state.server) await state.server.stop(10_000).catch(() => state.server.kill());
  await state.proxy?.close();
  await state.db?.stop();
});

test(
  "when the database stalls, /ready answers a 503 problem within its bound and /health still answers 200",
  within(40_000, async (state: State) => {
    await ready(state);
    state.proxy.stall();
    const res = await request(state.server.url, "GET", "/ready", { timeoutMs: 10_000 });
    assert.is(res.status, 503, res.text);
    assert.match(String(res.headers["content-type"]), /^application\/problem\+json/);
    assert.ok(res.ms < BOUND_MS, `answered after ${res.ms} ms`);
    const health = await request(state.server.url, "GET", "/health");
    assert.is(health.status, 200);
  }),
);

test(
  "while the database stalls, API requests get a 503 problem within the statement + acquire timeouts (+2 s slack): never a 500, never a hang",
  within(30_000, async (state: State) => {
    await ready(state);
    state.proxy.stall();
    const base = state.server.url;
    const paths = ["/api/loans", "/api/stats", "/api/loans/00000000-0000-0000-0000-000000000001"];
    const calls = Array.from({ length: 9 }, (_, i) => paths[i % paths.length] ?? "/api/loans");
    const results = await Promise.all(
      calls.map((path) =>
        request(base, "GET", path, { timeoutMs: API_BOUND_MS + 5000 }).then(
          (res): [string, HttpResult | RequestFailure] => [path, res],
          (err: RequestFailure): [string, HttpResult | RequestFailure] => [path, err],
        ),
      ),
    );
    const wrong = results
      .filter(([, r]) => r instanceof RequestFailure || r.status !== 503 || r.ms >= API_BOUND_MS)
      .map(([path, r]) =>
        r instanceof RequestFailure ? `${path}: ${r.message}` : `${path}: ${r.status} after ${r.ms} ms`,
      );
    assert.equal(wrong, [], "every request answered 503 within the bound");
  }),
);

test(
  "when the stall ends, the service serves again without a restart",
  within(30_000, async (state: State) => {
    await ready(state);
    state.proxy.resume();
    await waitFor("/ready 200", async () => (await request(state.server.url, "GET", "/ready")).status === 200, 10_000);
    const list = await request(state.server.url, "GET", "/api/loans");
    assert.is(list.status, 200, list.text);
    const created = await request(state.server.url, "POST", "/api/loans", {
      json: { borrower_id: "usr_after_stall", amount: "75.00", currency: "GHS" },
    });
    assert.is(created.status, 201, created.text);
    assert.not.ok(state.server.hasExited);
  }),
);

test.run();
