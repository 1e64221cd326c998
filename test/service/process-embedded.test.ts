/**
 * Process level: the zero-setup default. With DATABASE_URL unset the server starts its own embedded PostgreSQL,
 * migrates and seeds it, serves; SIGTERM stops both; the data survives into the next start on the same folder.
 */
import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { lockLoans } from "../support/db-lock.js";
import { acceptsConnections, type HttpResult, request } from "../support/http.js";
import { freePort } from "../support/postgres.js";
import { type ChildEnv, type Exit, type ServerProcess, startServer } from "../support/process.js";
import { within } from "../support/wait.js";

const SEED_IDS = [1, 2, 3, 4, 5].map((n) => `00000000-0000-0000-0000-00000000000${n}`);

interface State {
  dir: string;
  env: ChildEnv;
  pgPort: number;
  first?: ServerProcess;
  firstExit?: Exit;
  createdId?: string;
}

const test = suite<State>("process: embedded PostgreSQL when DATABASE_URL is unset", {} as State);

test.before(async (state) => {
  state.dir = mkdtempSync(join(tmpdir(), "loan-process-embedded-"));
  chmodSync(state.dir, 0o777);
  state.pgPort = await freePort();
  state.env = {
    DATABASE_URL: undefined,
    NODE_ENV: undefined, // the default: development
    EMBEDDED_PG_DIR: join(state.dir, "pg"),
    EMBEDDED_PG_PORT: String(state.pgPort),
  };
});

test.after((state) => {
  state.first?.kill();
  if (state.dir) rmSync(state.dir, { recursive: true, force: true });
});

test(
  "with DATABASE_URL unset, the server starts its own PostgreSQL, migrates, seeds and serves the 5 seed loans",
  within(40_000, async (state: State) => {
    const server = await startServer(state.env, 30_000);
    state.first = server;
    const starting = server.logs().find((l) => l.msg?.startsWith("starting embedded PostgreSQL"));
    assert.is(starting?.fresh, true, "a fresh cluster was created");
    assert.is(starting?.port, state.pgPort);
    assert.ok(await acceptsConnections(state.pgPort), "the embedded PostgreSQL listens on EMBEDDED_PG_PORT");

    const list = await request(server.url, "GET", "/api/loans");
    assert.is(list.status, 200, list.text);
    assert.equal((list.body as { id: string }[]).map((l) => l.id).sort(), SEED_IDS);
    const stats = await request(server.url, "GET", "/api/stats");
    assert.is(stats.body.total_loans, 5, stats.text);
    assert.is((await request(server.url, "GET", "/ready")).status, 200);

    const created = await request(server.url, "POST", "/api/loans", {
      json: { borrower_id: "usr_embedded_run1", amount: "1234.50", currency: "eur", term_months: 3 },
    });
    assert.is(created.status, 201, created.text);
    state.createdId = created.body.id;
  }),
);

test(
  "SIGTERM lets a request in flight finish, then stops the server with exit 0 and its embedded PostgreSQL too",
  within(25_000, async (state: State) => {
    const server = state.first;
    assert.ok(server, "the first run started");
    // A request held inside the server: a direct connection locks the loans table until after the signal.
    const lock = await lockLoans(`postgres://postgres:postgres@127.0.0.1:${state.pgPort}/loans`);
    let inFlight: Promise<HttpResult> | undefined;
    try {
      inFlight = request(server.url, "GET", `/api/loans/${SEED_IDS[0]}`, { timeoutMs: 10_000 });
      await lock.waitForWaiters();
      server.signal("SIGTERM");
      await server.waitForLog((l) => l.msg?.startsWith("shutting down") ?? false, 3000, '"shutting down"');
      await sleep(300);
      await lock.release();
    } finally {
      await lock.release();
    }
    const held = await inFlight;
    assert.is(held?.status, 200, `the request in flight at the signal: ${held?.status} ${held?.text}`);

    const exit = await server.waitForExit(15_000);
    state.firstExit = exit;
    assert.is(exit.code, 0, server.describe());
    assert.ok(
      server.logs().some((l) => l.msg === "shutdown complete"),
      "logs shutdown complete",
    );
    assert.ok(
      server.logs().some((l) => l.msg === "embedded PostgreSQL stopped"),
      "logs that the database stopped",
    );
    assert.not.ok(await acceptsConnections(state.pgPort), "nothing listens on the embedded PostgreSQL's port");
    assert.not.ok(await acceptsConnections(server.port), "nothing listens on the service's port");
  }),
);

test(
  "a second start on the same data folder keeps the data of the first: the loan created in run 1 is there",
  within(40_000, async (state: State) => {
    assert.ok(state.createdId && state.firstExit, "the first run created a loan and stopped");
    const server = await startServer(state.env, 30_000);
    let exit: Exit | undefined;
    try {
      const starting = server.logs().find((l) => l.msg?.startsWith("starting embedded PostgreSQL"));
      assert.is(starting?.fresh, false, "the existing cluster was reused");
      const loan = await request(server.url, "GET", `/api/loans/${state.createdId}`);
      assert.is(loan.status, 200, loan.text);
      assert.is(loan.body.borrower_id, "usr_embedded_run1");
      assert.is(loan.body.amount, "1234.50");
      assert.is(loan.body.currency, "EUR");
      const stats = await request(server.url, "GET", "/api/stats");
      assert.is(stats.body.total_loans, 6, "the seed ran again without duplicating anything");
    } finally {
      exit = await server.stop(15_000);
    }
    assert.is(exit.code, 0, server.describe());
    assert.not.ok(await acceptsConnections(state.pgPort), "the embedded PostgreSQL stopped again");
  }),
);

test.run();
