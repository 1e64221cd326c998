/**
 * The data the benchmark reads: the schema (the service's own migrations), the five seed loans plus generated
 * rows up to the size asked for, in one INSERT … SELECT generate_series (the stats trigger maintains loan_stats
 * row by row, as it would in production), then VACUUM ANALYZE.
 *
 * Generated ids are md5('loan-' || i)::uuid: random-looking (like the service's gen_random_uuid()), yet the
 * harness and pgbench can name any existing row without asking the database.
 */
import { createHash } from "node:crypto";
import { writeFileSync } from "node:fs";
import pg from "pg";
import { SEED_LOANS, seedLoans } from "../../service/seeds/loans.js";
import { encodeCursor } from "../../service/src/data/cursor.js";
import { createDb, migrateLatest } from "../../service/src/db.js";

export const SEED_COUNT = SEED_LOANS.length;

export async function migrate(url: string): Promise<void> {
  const db = createDb({
    databaseUrl: url,
    dbPoolMin: 0,
    dbPoolMax: 2,
    dbAcquireTimeoutMs: 10_000,
    dbStatementTimeoutMs: 0,
  });
  try {
    await migrateLatest(db);
  } finally {
    await db.destroy();
  }
}

export function generatedId(i: number): string {
  const h = createHash("md5").update(`loan-${i}`).digest("hex");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

export interface Loaded {
  rows: number;
  generated: number;
  loadSeconds: number;
  tableMiB: number;
}

/**
 * Empties the tables, then the seeds and `rows - 5` generated loans spread over two years, statuses and currencies.
 *
 * The generated rows go in with the table's triggers disabled, and loan_stats is then rebuilt from one aggregate
 * (as the migration does for rows that predate it), all in one transaction. Through the row-level stats trigger,
 * one big INSERT is quadratic: every row updates one of a few loan_stats rows again, and the versions that one
 * transaction leaves behind cannot be pruned while it runs (measured: 100,000 rows 14 s, 200,000 rows 41 s,
 * 1,000,000 rows more than 20 minutes; see RESULTS.md).
 */
export async function loadData(url: string, rows: number): Promise<Loaded> {
  const generated = Math.max(0, rows - SEED_COUNT);
  const started = performance.now();
  const db = createDb({
    databaseUrl: url,
    dbPoolMin: 0,
    dbPoolMax: 1,
    dbAcquireTimeoutMs: 10_000,
    dbStatementTimeoutMs: 0,
  });
  try {
    await db.raw("TRUNCATE loans, idempotency_keys, loan_stats");
    await seedLoans(db);
  } finally {
    await db.destroy();
  }
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query("BEGIN");
    await client.query("ALTER TABLE loans DISABLE TRIGGER USER");
    // Reproducible spread: setseed, then one statement in the same session.
    await client.query("SELECT setseed(0.42)");
    await client.query(
      `INSERT INTO loans (id, borrower_id, amount, currency, status, term_months, interest_rate_apr,
                          created_at, updated_at)
       SELECT md5('loan-' || i)::uuid,
              'usr_' || lpad((1 + (i::bigint * 7919) % 200000)::text, 6, '0'),
              round((50 + 49950 * random() ^ 3)::numeric, 2),
              (ARRAY['KES','KES','KES','NGN','NGN','INR','INR','PHP','VND','GHS','UGX','TZS'])[1 + floor(random() * 12)::int],
              CASE WHEN r < 0.15 THEN 'pending' WHEN r < 0.25 THEN 'approved' WHEN r < 0.35 THEN 'rejected'
                   WHEN r < 0.60 THEN 'disbursed' WHEN r < 0.93 THEN 'repaid' ELSE 'defaulted' END,
              CASE WHEN random() < 0.05 THEN NULL ELSE (ARRAY[3,6,6,9,12,12,18,24])[1 + floor(random() * 8)::int] END,
              CASE WHEN random() < 0.05 THEN NULL ELSE round((12 + 24 * random())::numeric, 2) END,
              t, t + make_interval(days => floor(random() * 30)::int)
       FROM (SELECT i, random() AS r,
                    date_trunc('milliseconds', now() - interval '1 day' - random() * interval '730 days') AS t
             FROM generate_series(1, $1::int) AS i) AS g`,
      [generated],
    );
    await client.query("DELETE FROM loan_stats");
    await client.query(
      `INSERT INTO loan_stats (status, currency, shard, loan_count, amount_sum)
       SELECT status, currency, 0, count(*), sum(amount) FROM loans GROUP BY status, currency`,
    );
    await client.query("ALTER TABLE loans ENABLE TRIGGER USER");
    await client.query("COMMIT");
    await client.query("VACUUM ANALYZE loans");
    await client.query("VACUUM ANALYZE loan_stats");
    const { rows: r } = await client.query<{ n: string; mib: string; counted: string }>(
      `SELECT count(*) AS n, pg_total_relation_size('loans') / 1048576 AS mib,
              (SELECT sum(loan_count) FROM loan_stats) AS counted FROM loans`,
    );
    if (r[0]?.n !== r[0]?.counted)
      throw new Error(`loan_stats counts ${r[0]?.counted} loans, the table has ${r[0]?.n}`);
    return {
      rows: Number(r[0]?.n),
      generated,
      loadSeconds: Math.round((performance.now() - started) / 100) / 10,
      tableMiB: Number(r[0]?.mib),
    };
  } catch (err) {
    await client.query("ROLLBACK").catch(() => {});
    throw err;
  } finally {
    await client.end();
  }
}

export async function tableSize(url: string): Promise<{ rows: number; tableMiB: number }> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query<{ n: string; mib: string }>(
      "SELECT count(*) AS n, pg_total_relation_size('loans') / 1048576 AS mib FROM loans",
    );
    return { rows: Number(rows[0]?.n), tableMiB: Number(rows[0]?.mib) };
  } finally {
    await client.end();
  }
}

/** A file of existing ids (seeds and up to `sample` generated ones, shuffled) for the get-by-id script. */
export function writeIdsFile(path: string, generated: number, sample = 10_000): number {
  const ids: string[] = SEED_LOANS.map((l) => l.id);
  if (generated <= sample) {
    for (let i = 1; i <= generated; i++) ids.push(generatedId(i));
  } else {
    // Evenly spread over the table, so index pages across the whole key range are read.
    const step = generated / sample;
    for (let k = 0; k < sample; k++) ids.push(generatedId(1 + Math.floor(k * step)));
  }
  for (let i = ids.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [ids[i], ids[j]] = [ids[j] as string, ids[i] as string];
  }
  writeFileSync(path, `${ids.join("\n")}\n`);
  return ids.length;
}

/**
 * The cursor of the deepest page: `limit` rows from the bottom of the newest-first order (the last page), the page
 * that costs OFFSET pagination the most. The same payload at every size (20 rows: the older half).
 */
export async function deepPageCursor(url: string, limit: number): Promise<{ cursor: string; position: number }> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows: count } = await client.query<{ n: string }>("SELECT count(*) AS n FROM loans");
    const n = Number(count[0]?.n);
    const position = Math.max(0, n - limit - 1);
    const { rows } = await client.query<{ created_at: Date; id: string }>(
      "SELECT created_at, id FROM loans ORDER BY created_at DESC, id DESC OFFSET $1 LIMIT 1",
      [position],
    );
    const row = rows[0];
    if (!row) throw new Error("no row for the deep page cursor");
    return { cursor: encodeCursor(row.created_at.toISOString(), row.id), position: position + 1 };
  } finally {
    await client.end();
  }
}
