/**
 * The database: one knex instance (pg driver). Models are bound to it explicitly where statements are built
 * (`Model.bindKnex(db)` in data/), never through a global.
 *
 * Waits are bounded so that an unreachable database gives fast 503s instead of hanging requests:
 * acquiring a pooled connection (DB_ACQUIRE_TIMEOUT_MS), connecting (same bound), and each statement
 * (DB_STATEMENT_TIMEOUT_MS, enforced by PostgreSQL itself).
 */
import knexFactory, { type Knex } from "knex";
import type { Config } from "./config.js";
import { migrationSource } from "./migrations.js";

export type Db = Knex;

export function createDb(
  config: Pick<Config, "databaseUrl" | "dbPoolMin" | "dbPoolMax" | "dbAcquireTimeoutMs" | "dbStatementTimeoutMs">,
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
    },
    acquireConnectionTimeout: config.dbAcquireTimeoutMs,
    migrations: { migrationSource, tableName: "knex_migrations" },
  });
  return db;
}

/** Runs pending migrations; knex's migration lock keeps several replicas starting at once safe. */
export async function migrateLatest(db: Db): Promise<string[]> {
  const [, applied] = (await db.migrate.latest()) as [number, string[]];
  return applied;
}
