/**
 * The database: one knex instance (pg driver). Models are bound to it explicitly where statements are built
 * (`Model.bindKnex(db)` in data/), never through a global.
 *
 * Waits are bounded so that an unreachable database gives fast 503s instead of hanging requests:
 * acquiring a pooled connection (DB_ACQUIRE_TIMEOUT_MS), connecting (same bound), and each statement
 * (DB_STATEMENT_TIMEOUT_MS, enforced by PostgreSQL itself; the driver's read timeout bounds a server that
 * stops answering). Two guards keep a bad moment from getting worse:
 *
 * - **Admission**: at most DB_QUEUE_MAX requests wait for a connection; one more is refused at once with a 503
 *   and `Retry-After` (OverloadedProblem) instead of joining a queue that only grows memory and latency.
 * - **A connection whose statement hit the read timeout is destroyed**, never handed out again: its statement may
 *   still be running (or its server gone behind a partition), and the next caller would wait behind it.
 */
import knexFactory, { type Knex } from "knex";
import type { Config } from "./config.js";
import { OverloadedProblem } from "./errors.js";
import { migrationSource } from "./migrations.js";

export type Db = Knex;

export const DEFAULT_DB_QUEUE_MAX = 50;

interface TarnPool {
  numPendingAcquires(): number;
}

interface PgConnection {
  query(...args: unknown[]): unknown;
  /** pg's wire connection; `stream` is its socket. */
  connection?: { stream?: { destroy(): void } };
  /** knex's mark for a connection that must not be used again: its pool destroys it instead of handing it out. */
  __knex__disposed?: unknown;
}

/** node-postgres' `query_timeout` error: the statement's answer did not arrive in time. */
export function isReadTimeout(err: unknown): boolean {
  return /Query read timeout/.test((err as Error | undefined)?.message ?? "");
}

/** Marks a connection whose statement hit the read timeout as disposed (the pool destroys it) and closes its socket. */
function disposeAfterReadTimeout(connection: PgConnection, err: unknown) {
  if (!isReadTimeout(err) || connection.__knex__disposed) return;
  connection.__knex__disposed = err;
  connection.connection?.stream?.destroy();
}

/**
 * Wraps a new connection's `query` (callback and promise forms: knex's runner uses one, the prepared-statement
 * runner the other) so that a read timeout disposes of the connection, whoever ran the statement.
 */
export function guardConnection(connection: PgConnection): void {
  const query = connection.query;
  connection.query = function guardedQuery(this: unknown, ...args: unknown[]) {
    const last = args[args.length - 1];
    if (typeof last === "function") {
      args[args.length - 1] = (err: unknown, result: unknown) => {
        if (err) disposeAfterReadTimeout(connection, err);
        (last as (err: unknown, result: unknown) => void)(err, result);
      };
      return query.apply(this, args);
    }
    const result = query.apply(this, args);
    if (result && typeof (result as Promise<unknown>).then === "function") {
      return (result as Promise<unknown>).catch((err: unknown) => {
        disposeAfterReadTimeout(connection, err);
        throw err;
      });
    }
    return result;
  };
}

export function createDb(
  config: Pick<Config, "databaseUrl" | "dbPoolMin" | "dbPoolMax" | "dbAcquireTimeoutMs" | "dbStatementTimeoutMs"> &
    Partial<Pick<Config, "dbQueueMax">>,
): Db {
  const db = knexFactory({
    client: "pg",
    connection: {
      connectionString: config.databaseUrl,
      connectionTimeoutMillis: config.dbAcquireTimeoutMs,
      statement_timeout: config.dbStatementTimeoutMs,
      // The statement timeout is enforced by the server; a server that stops answering needs a bound here too.
      query_timeout: config.dbStatementTimeoutMs + config.dbAcquireTimeoutMs,
      application_name: "loan-service",
      keepAlive: true,
    },
    pool: {
      min: config.dbPoolMin,
      max: config.dbPoolMax,
      // A failed connection attempt is retried until the acquire timeout, then the request gets a 503.
      createRetryIntervalMillis: 100,
      idleTimeoutMillis: 30000,
      afterCreate(connection: PgConnection, done: (err: Error | null, connection: PgConnection) => void) {
        guardConnection(connection);
        done(null, connection);
      },
    },
    acquireConnectionTimeout: config.dbAcquireTimeoutMs,
    migrations: { migrationSource, tableName: "knex_migrations" },
  });
  admitWithin(db, config.dbQueueMax ?? DEFAULT_DB_QUEUE_MAX);
  return db;
}

/**
 * Every connection knex hands out (queries, transactions, Objection, the prepared-statement runner) is acquired
 * through `client.acquireConnection`: past `queueMax` callers already waiting, refuse at once.
 */
function admitWithin(db: Db, queueMax: number) {
  const client = db.client as Knex.Client & { pool?: TarnPool; acquireConnection(): Promise<unknown> };
  const acquire = client.acquireConnection.bind(client);
  client.acquireConnection = () => {
    if ((client.pool?.numPendingAcquires() ?? 0) >= queueMax) {
      return Promise.reject(
        new OverloadedProblem("The service is at capacity: too many requests are waiting for the database."),
      );
    }
    return acquire();
  };
}

/** Runs pending migrations; knex's migration lock keeps several replicas starting at once safe. */
export async function migrateLatest(db: Db): Promise<string[]> {
  const [, applied] = (await db.migrate.latest()) as [number, string[]];
  return applied;
}
