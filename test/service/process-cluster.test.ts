/**
 * Process level: WEB_CONCURRENCY > 1 runs a Node cluster. The primary prepares the database once and forks the
 * workers that serve HTTP on the one port, replaces a worker that dies, and on SIGTERM drains every worker.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { lockLoans } from "../support/db-lock.js";
import { type HttpResult, request } from "../support/http.js";
import { type RunnerDatabase, runnerDatabase } from "../support/postgres.js";
import { type LogLine, type ServerProcess, spawnServer } from "../support/process.js";
import { waitFor, within } from "../support/wait.js";

const WORKERS = 2;

interface State {
  db: RunnerDatabase;
  server: ServerProcess;
  primaryPid: number;
}

const test = suite<State>("process: cluster of workers (WEB_CONCURRENCY)", {} as State);

const listening = (server: ServerProcess) => server.logs().filter((l) => l.msg === "listening");
const pidsOf = (lines: LogLine[]) => new Set(lines.map((l) => Number(l.pid)));

let setup: Promise<void> | undefined;
function ready(state: State) {
  setup ??= (async () => {
    state.db = await runnerDatabase();
    state.server = await spawnServer({
      DATABASE_URL: state.db.url,
      MIGRATE_ON_START: "true",
      SEED_ON_START: "true",
      WEB_CONCURRENCY: String(WORKERS),
      SHUTDOWN_GRACE_MS: "8000",
    });
    state.primaryPid = state.server.child.pid ?? 0;
    await waitFor(`${WORKERS} workers listening`, () => listening(state.server).length >= WORKERS, 30_000);
  })();
  return setup;
}

test.after(async (state) => {
  state.server?.kill();
  await state.db?.stop();
});

/** Requests on fresh connections (the cluster spreads connections, not requests), and the pids that served them. */
async function servedBy(server: ServerProcess, count: number) {
  const ids: string[] = [];
  for (let i = 0; i < count; i++) {
    const id = `cluster-${Date.now()}-${i}`;
    const res = await request(server.url, "GET", "/api/loans?limit=1", { headers: { "X-Request-Id": id } });
    assert.is(res.status, 200, res.text);
    ids.push(id);
  }
  await sleep(100);
  const lines = server.logs().filter((l) => ids.includes((l.req as { id?: string } | undefined)?.id ?? ""));
  assert.is(lines.length, count, "each request is logged once");
  return pidsOf(lines);
}

test(
  "with WEB_CONCURRENCY=2 the primary prepares the database once and starts two workers that share the port",
  within(45_000, async (state: State) => {
    await ready(state);
    const { server } = state;
    const workers = pidsOf(listening(server));
    assert.is(workers.size, WORKERS, "two distinct worker processes listen");
    assert.not.ok(workers.has(state.primaryPid), "the primary does not serve");
    assert.ok(
      server.logs().some((l) => l.msg === "cluster started" && l.workers === WORKERS),
      "the primary logs the cluster",
    );
    const migrated = server.logs().filter((l) => l.msg === "migrations applied" || l.msg === "schema up to date");
    assert.is(migrated.length, 1, "migrations ran once, in the primary");
    assert.is(Number(migrated[0]?.pid), state.primaryPid);

    const served = await servedBy(server, 16);
    assert.equal([...served].sort(), [...workers].sort(), "both workers served requests");
  }),
);

test(
  "a worker that dies is replaced, and the service keeps serving",
  within(30_000, async (state: State) => {
    await ready(state);
    const { server } = state;
    const before = pidsOf(listening(server));
    const victim = [...before][0] ?? 0;
    process.kill(victim, "SIGKILL");
    await server.waitForLog((l) => l.msg === "worker died" && l.pid === victim, 5000, '"worker died"');
    await waitFor("a replacement worker listening", () => listening(server).length > before.size, 15_000);
    const now = pidsOf(listening(server));
    now.delete(victim);
    assert.is(now.size, WORKERS, `workers now: ${[...now]}`);
    const served = await servedBy(server, 12);
    assert.not.ok(served.has(victim), "the dead worker serves nothing");
    assert.ok(served.size >= 1);
    assert.not.ok(server.hasExited, "the primary stays up");
  }),
);

test(
  "SIGTERM to the primary drains every worker — a request in flight is answered 200 — and exits 0",
  within(40_000, async (state: State) => {
    await ready(state);
    const { server, db } = state;
    const lock = await lockLoans(db.url);
    let inFlight: Promise<HttpResult> | undefined;
    try {
      inFlight = request(server.url, "GET", "/api/loans?limit=2", { timeoutMs: 15_000 });
      await lock.waitForWaiters();
      server.signal("SIGTERM");
      await server.waitForLog((l) => l.msg === "cluster shutting down", 3000, '"cluster shutting down"');
      await sleep(300);
      await lock.release();
    } finally {
      await lock.release();
    }
    const held = await inFlight;
    assert.is(held?.status, 200, `the request in flight at the signal: ${held?.status} ${held?.text}`);
    const exit = await server.waitForExit(15_000);
    assert.is(exit.code, 0, server.describe());
    const done = server.logs().find((l) => l.msg === "cluster shutdown complete");
    assert.is(done?.failedExits, 0, "every worker exited cleanly");
    const workersDone = server.logs().filter((l) => l.msg === "shutdown complete");
    assert.is(workersDone.length, WORKERS, "each worker completed its own graceful shutdown");
  }),
);

test.run();
