/**
 * Process level: graceful shutdown. SIGTERM while requests flow: what the server accepted is finished and
 * answered, new connections are refused, the process exits 0 within SHUTDOWN_GRACE_MS — and exits 1 when
 * in-flight work outlasts the grace period.
 *
 * To have requests that are certainly in flight at the signal, a direct connection holds an exclusive lock on
 * the loans table: requests touching it wait inside the server until the lock is released after the signal.
 */
import http from "node:http";
import { setTimeout as sleep } from "node:timers/promises";
import pg from "pg";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { lockLoans } from "../support/db-lock.js";
import { acceptsConnections, RequestFailure, request, startSplitRequest } from "../support/http.js";
import { type RunnerDatabase, runnerDatabase } from "../support/postgres.js";
import { type ChildEnv, type ServerProcess, startServer } from "../support/process.js";
import { waitFor, within } from "../support/wait.js";

const GRACE_MS = 8000;

interface State {
  db: RunnerDatabase;
  env: ChildEnv;
  servers: ServerProcess[];
}

const test = suite<State>("process: graceful shutdown", { servers: [] } as unknown as State);

let setup: Promise<void> | undefined;
function database(state: State) {
  setup ??= (async () => {
    state.db = await runnerDatabase();
    state.env = {
      DATABASE_URL: state.db.url,
      MIGRATE_ON_START: "true",
      SEED_ON_START: "true",
      SHUTDOWN_GRACE_MS: String(GRACE_MS),
    };
  })();
  return setup;
}

async function serve(state: State, env: ChildEnv = {}) {
  await database(state);
  const server = await startServer({ ...state.env, ...env });
  state.servers.push(server);
  return server;
}

test.after(async (state) => {
  for (const server of state.servers) server.kill();
  await state.db?.stop();
});

interface Sent {
  id: string;
  worker: number;
  keepAlive: boolean;
  method: string;
  borrower?: string;
  sentAt: number;
  doneAt?: number;
  status?: number;
  loanId?: string;
  failure?: RequestFailure;
}

test(
  "on SIGTERM under a steady stream of keep-alive and one-shot requests, every request the server took is answered 2xx, /ready says 503 while draining, new connections are refused, and the process exits 0 within SHUTDOWN_GRACE_MS",
  within(45_000, async (state: State) => {
    const server = await serve(state);
    const run = `shut_${Date.now().toString(36)}`;
    const sent: Sent[] = [];
    const agents: http.Agent[] = [];
    let stopAt = Number.POSITIVE_INFINITY;
    const t0 = Date.now();

    async function worker(w: number) {
      const keepAlive = w % 2 === 0;
      const agent = keepAlive ? new http.Agent({ keepAlive: true, maxSockets: 1 }) : undefined;
      if (agent) agents.push(agent);
      for (let i = 0; i < 500 && Date.now() < stopAt; i++) {
        const post = i % 2 === 0;
        const s: Sent = {
          id: `${run}-${w}-${i}`,
          worker: w,
          keepAlive,
          method: post ? "POST" : "GET",
          sentAt: Date.now() - t0,
        };
        if (post) s.borrower = `${run}_${w}_${i}`;
        sent.push(s);
        try {
          const res = post
            ? await request(server.url, "POST", "/api/loans", {
                json: { borrower_id: s.borrower, amount: "99.99", currency: "PHP" },
                headers: { "X-Request-Id": s.id },
                agent,
              })
            : await request(server.url, "GET", "/api/loans?limit=3", { headers: { "X-Request-Id": s.id }, agent });
          s.status = res.status;
          if (res.status === 201) s.loanId = res.body.id;
        } catch (err) {
          if (!(err instanceof RequestFailure)) throw err;
          s.failure = err;
          // The listener is closed: this worker is done.
          if (err.phase === "connect") break;
        } finally {
          s.doneAt = Date.now() - t0;
        }
      }
    }

    // A request whose headers are only half sent: an open, not idle, connection across the signal.
    const readyProbe = await startSplitRequest(server.port, `GET /ready HTTP/1.1\r\nHost: 127.0.0.1\r\n`);
    const workers = Array.from({ length: 8 }, (_, w) => worker(w));
    // Bounded however the shutdown goes.
    const hardStop = setTimeout(() => {
      stopAt = 0;
    }, 20_000);

    let signalAt = 0;
    let readyDuringShutdown = "";
    let heldAtSignal = 0;
    try {
      // A steady stream first (polled: how long it takes depends on the machine's load).
      await waitFor(
        "more than 20 requests answered",
        () => sent.filter((s) => s.status !== undefined).length > 20,
        15_000,
        20,
      );
      const lock = await lockLoans(state.db.url);
      try {
        heldAtSignal = await waitFor(
          "requests waiting on the lock",
          async () => {
            const n = await lock.waiting();
            return n >= 4 ? n : 0;
          },
          5000,
          20,
        );
        signalAt = Date.now() - t0;
        server.signal("SIGTERM");
        await server.waitForLog((l) => l.msg?.startsWith("shutting down") ?? false, 3000, '"shutting down"');
        readyDuringShutdown = await readyProbe.finish("X-Request-Id: ready-probe\r\n\r\n", 3000);
        await sleep(300);
      } finally {
        await lock.release();
      }
      const exit = await server.waitForExit(GRACE_MS + 5000);
      stopAt = 0;
      await Promise.all(workers);

      const exitAfterSignal = exit.ms - (signalAt - (server.spawnedAt - t0));
      assert.is(exit.code, 0, server.describe());
      assert.ok(exitAfterSignal < GRACE_MS, `exited ${exitAfterSignal} ms after SIGTERM, grace ${GRACE_MS} ms`);
      assert.ok(
        server.logs().some((l) => l.msg === "shutdown complete"),
        "logs shutdown complete",
      );

      // /ready answered 503 while the server drained.
      assert.match(readyDuringShutdown, /^HTTP\/1\.1 503 /, readyDuringShutdown);
      assert.match(readyDuringShutdown, /application\/problem\+json/i);
      assert.match(readyDuringShutdown, /shutting down/);

      const logged = new Map(
        server
          .logs()
          .filter((l) => l.req && l.res)
          .map((l) => [(l.req as { id: string }).id, (l.res as { statusCode: number }).statusCode]),
      );
      const answered = sent.filter((s) => s.status !== undefined);
      const notOk = answered.filter((s) => !(s.status && s.status >= 200 && s.status < 300));
      assert.equal(
        notOk.map((s) => `${s.id} ${s.method}: ${s.status}`),
        [],
        "every answer is 2xx",
      );
      const cut = sent.filter((s) => s.failure && s.failure.phase !== "connect" && s.failure.phase !== "no-response");
      assert.equal(
        cut.map((s) => `${s.id}: ${s.failure?.message}`),
        [],
        "no response was cut off or timed out",
      );

      // Requests that got no answer must be requests the server never took: not logged, nothing stored.
      const unanswered = sent.filter((s) => s.failure);
      const taken = unanswered.filter((s) => logged.has(s.id));
      assert.equal(
        taken.map((s) => `${s.id}: ${s.failure?.message}`),
        [],
        "no request the server took went unanswered",
      );
      const client = new pg.Client(state.db.url);
      await client.connect();
      try {
        const rows = await client.query<{ id: string; borrower_id: string }>(
          "SELECT id, borrower_id FROM loans WHERE borrower_id LIKE $1",
          [`${run}_%`],
        );
        const byBorrower = new Map(rows.rows.map((r) => [r.borrower_id, r.id]));
        const phantom = unanswered.filter((s) => s.borrower && byBorrower.has(s.borrower));
        assert.equal(
          phantom.map((s) => s.id),
          [],
          "no unanswered creation was stored",
        );
        const created = answered.filter((s) => s.status === 201);
        const lost = created.filter((s) => byBorrower.get(s.borrower ?? "") !== s.loanId);
        assert.equal(
          lost.map((s) => s.id),
          [],
          "every 201 loan is stored",
        );
      } finally {
        await client.end();
      }

      // The requests held at the signal were answered after it: in-flight work was finished, not dropped.
      const finishedAfterSignal = answered.filter((s) => s.sentAt < signalAt && (s.doneAt ?? 0) > signalAt);
      assert.ok(heldAtSignal >= 4, `requests in flight at the signal: ${heldAtSignal}`);
      assert.ok(
        finishedAfterSignal.length >= heldAtSignal,
        `${finishedAfterSignal.length} requests sent before the signal were answered after it (${heldAtSignal} held)`,
      );
      for (const s of finishedAfterSignal) {
        assert.ok(logged.has(s.id), `${s.id} is in the log`);
      }
      // Late clients were refused (allowed: the listener is closed) or reset on an idle keep-alive socket before
      // the server read their request (allowed: checked above that the server never took them).
      const refused = unanswered.filter((s) => s.failure?.phase === "connect").length;
      assert.ok(answered.length > 20, `a steady stream: ${answered.length} answered, ${refused} refused`);
      assert.not.ok(await acceptsConnections(server.port), "nothing listens any more");
    } finally {
      clearTimeout(hardStop);
      stopAt = 0;
      readyProbe.close();
      for (const agent of agents) agent.destroy();
      await Promise.allSettled(workers);
    }
  }),
);

test(
  "SIGINT (Ctrl-C) shuts down as gracefully as SIGTERM: exit 0, shutdown complete, port closed",
  within(30_000, async (state: State) => {
    const server = await serve(state);
    assert.is((await request(server.url, "GET", "/health")).status, 200);
    server.signal("SIGINT");
    const exit = await server.waitForExit(GRACE_MS + 5000);
    assert.is(exit.code, 0, server.describe());
    const shutting = server.logs().find((l) => l.msg?.startsWith("shutting down"));
    assert.is(shutting?.signal, "SIGINT");
    assert.ok(
      server.logs().some((l) => l.msg === "shutdown complete"),
      "logs shutdown complete",
    );
    assert.not.ok(await acceptsConnections(server.port), "nothing listens any more");
  }),
);

test(
  "when in-flight work outlasts SHUTDOWN_GRACE_MS, the process gives up after the grace period: exit 1, logged",
  within(30_000, async (state: State) => {
    const grace = 1500;
    const server = await serve(state, { SHUTDOWN_GRACE_MS: String(grace) });
    const lock = await lockLoans(state.db.url);
    try {
      const stuck = request(server.url, "GET", "/api/loans", { timeoutMs: 10_000 }).catch((err: unknown) => err);
      await lock.waitForWaiters();
      const signalled = Date.now();
      server.signal("SIGTERM");
      const exit = await server.waitForExit(grace + 5000);
      const took = Date.now() - signalled;
      assert.is(exit.code, 1, server.describe());
      assert.ok(took >= grace - 100 && took < grace + 3000, `exited ${took} ms after SIGTERM (grace ${grace} ms)`);
      assert.ok(
        server.logs().some((l) => /grace period over/.test(l.msg)),
        "logs that the grace period is over",
      );
      const outcome = await stuck;
      assert.instance(outcome, RequestFailure, "the stuck request was cut off, not answered");
    } finally {
      await lock.release();
    }
  }),
);

test.run();
