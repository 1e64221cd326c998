/**
 * Holds ACCESS EXCLUSIVE on `loans` from a direct connection, so that the service's statements on it wait:
 * a request held inside the service, for tests of what happens to requests in flight (shutdown, keep-alive).
 */
import pg from "pg";
import { waitFor } from "./wait.js";

export interface LoansLock {
  /** How many of the service's statements wait on a lock right now. */
  waiting(): Promise<number>;
  /** Resolves once at least `n` of the service's statements wait on the lock (rejects after `timeoutMs`). */
  waitForWaiters(n?: number, timeoutMs?: number): Promise<void>;
  /** Commits (the waiting statements go on) and closes the connection. Safe to call twice. */
  release(): Promise<void>;
}

export async function lockLoans(databaseUrl: string): Promise<LoansLock> {
  const client = new pg.Client(databaseUrl);
  client.on("error", () => {});
  await client.connect();
  try {
    await client.query("BEGIN");
    await client.query("LOCK TABLE loans IN ACCESS EXCLUSIVE MODE");
  } catch (err) {
    await client.end().catch(() => {});
    throw err;
  }
  let released = false;
  const waiting = async () => {
    // Inside a transaction, activity statistics are a snapshot taken at first access: take a fresh one.
    await client.query("SELECT pg_stat_clear_snapshot()");
    const r = await client.query<{ n: string }>(
      // This database's only: other test files' services run on the same server (test/run.ts).
      "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'loan-service' AND wait_event_type = 'Lock'",
    );
    return Number(r.rows[0]?.n);
  };
  return {
    waiting,
    async waitForWaiters(n = 1, timeoutMs = 5000) {
      await waitFor(`${n} request(s) waiting on the lock`, async () => (await waiting()) >= n, timeoutMs, 20);
    },
    async release() {
      if (released) return;
      released = true;
      await client.query("COMMIT").catch(() => {});
      await client.end().catch(() => {});
    },
  };
}
