// test/run.ts: process-group service-light
/**
 * A connection whose statement hit the driver's read timeout (`query_timeout`) is destroyed, never handed out
 * again — through knex's own query path (Objection, db.raw) and through a raw connection from the pool as the
 * prepared-statement runner uses it. The fault is real: the session's statement_timeout is lifted and a
 * statement sleeps on the server past the client's read timeout, so the connection still has it running.
 */
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { createDb, type Db } from "../../service/src/db.js";

const test = suite<{ db: Db }>("pool: read timeouts", {} as { db: Db });

test.before(async (ctx) => {
  const url = process.env.DATABASE_URL;
  if (!url) throw new Error("DATABASE_URL is not set: run the tests with `npm test`");
  // query_timeout = statement + acquire = 600 ms; one connection, so a reused one would show the same backend.
  ctx.db = createDb({
    databaseUrl: url,
    dbPoolMin: 0,
    dbPoolMax: 1,
    dbAcquireTimeoutMs: 300,
    dbStatementTimeoutMs: 300,
  });
});
test.after(async (ctx) => {
  await ctx.db.destroy();
});

async function backendPid(db: Db): Promise<number> {
  const r = await db.raw("SELECT pg_backend_pid() AS pid");
  return Number(r.rows[0].pid);
}

interface RawConnection {
  query(q: { name?: string; text: string; values?: unknown[] }): Promise<{ rows: { pid?: number }[] }>;
}

test("knex path: after a read timeout the next statement runs on a new connection, not behind the old one", async ({
  db,
}) => {
  await db.raw("SET statement_timeout = 0");
  const first = await backendPid(db);
  const err = await db.raw("SELECT pg_sleep(3)").then(
    () => undefined,
    (e: Error) => e,
  );
  assert.match(String(err?.message), /Query read timeout/);
  const started = Date.now();
  const second = await backendPid(db);
  assert.is.not(second, first, "a new connection");
  assert.ok(Date.now() - started < 2500, "not queued behind the sleeping statement");
});

test("raw connection path (the prepared-statement runner): a read timeout disposes of the connection", async ({
  db,
}) => {
  const client = db.client as {
    acquireConnection(): Promise<RawConnection>;
    releaseConnection(c: RawConnection): Promise<void>;
  };
  let connection = await client.acquireConnection();
  let first: number | undefined;
  let err: Error | undefined;
  try {
    await connection.query({ text: "SET statement_timeout = 0" });
    first = (await connection.query({ name: "pid_of_backend", text: "SELECT pg_backend_pid() AS pid" })).rows[0]?.pid;
    err = await connection.query({ text: "SELECT pg_sleep(3)" }).then(
      () => undefined,
      (e: Error) => e,
    );
  } finally {
    await client.releaseConnection(connection);
  }
  assert.match(String(err?.message), /Query read timeout/);
  connection = await client.acquireConnection();
  try {
    const second = (await connection.query({ name: "pid_of_backend", text: "SELECT pg_backend_pid() AS pid" })).rows[0]
      ?.pid;
    assert.ok(first, "the first backend is known");
    assert.is.not(second, first, "a new connection");
  } finally {
    await client.releaseConnection(connection);
  }
});

test("the disposed connection's server session ends: its backend is gone", async ({ db }) => {
  await db.raw("SET statement_timeout = 0");
  const first = await backendPid(db);
  await db.raw("SELECT pg_sleep(1.5)").catch(() => {});
  // The socket was closed at the timeout; the backend notices when the sleep ends and exits.
  let alive = true;
  for (let i = 0; i < 40 && alive; i++) {
    await new Promise((r) => setTimeout(r, 100));
    const r = await db.raw("SELECT count(*)::int AS n FROM pg_stat_activity WHERE pid = ?", [first]);
    alive = r.rows[0].n > 0;
  }
  assert.not.ok(alive, `backend ${first} still exists`);
});

test.run();
