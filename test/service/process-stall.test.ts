/**
 * Process level: a database that stops answering without going away — a network partition, a frozen host. Its
 * TCP connections stay open and new ones are accepted, but no byte comes back. The server reaches its database
 * through a proxy of this file's own that stalls all traffic on demand.
 *
 * Not here: API requests during a stall. Today some hang (queries on pooled connections wait forever: the
 * statement timeout is enforced by the unreachable server) and some get a 500 (pg's connect timeout error,
 * "timeout expired", is not recognised as the database being unavailable). Reported to be fixed in the service.
 */
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { startTestPostgres, type TestPostgres } from "../support/postgres.js";
import {
  request,
  type ServerProcess,
  type StallProxy,
  startServer,
  startStallProxy,
  waitFor,
  within,
} from "../support/server-process.js";

const ACQUIRE_TIMEOUT_MS = 1000;
const BOUND_MS = 3 * ACQUIRE_TIMEOUT_MS;

interface State {
  db: TestPostgres;
  proxy: StallProxy;
  server: ServerProcess;
}

const test = suite<State>("process: database stall (no answer, no refusal)", {} as State);

let setup: Promise<void> | undefined;
function ready(state: State) {
  setup ??= (async () => {
    state.db = await startTestPostgres({ database: "loans_stall" });
    state.proxy = await startStallProxy(state.db.port);
    const url = new URL(state.db.url);
    url.port = String(state.proxy.port);
    state.server = await startServer({
      DATABASE_URL: url.toString(),
      MIGRATE_ON_START: "true",
      SEED_ON_START: "true",
      DB_ACQUIRE_TIMEOUT_MS: String(ACQUIRE_TIMEOUT_MS),
      DB_STATEMENT_TIMEOUT_MS: "1000",
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
