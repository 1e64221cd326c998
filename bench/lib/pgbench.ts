/**
 * The database's own ceilings, on the same server at the same moment: pgbench's built-in select-only script
 * (`-S`, primary-key reads on pgbench_accounts) and one-row insert scripts, at the benchmark's connection counts.
 */
import { spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";

export interface PgbenchResult {
  tps: number;
  latencyAvgMs: number;
  transactions: number;
  failed: number;
}

function pgEnv(url: string): NodeJS.ProcessEnv {
  const u = new URL(url);
  return {
    ...process.env,
    PGHOST: u.hostname,
    PGPORT: u.port || "5432",
    PGUSER: decodeURIComponent(u.username),
    PGPASSWORD: decodeURIComponent(u.password),
    PGDATABASE: u.pathname.slice(1),
  };
}

function exec(url: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn("pgbench", args, { env: pgEnv(url), stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (c: Buffer) => {
      out += c.toString();
    });
    child.stderr.on("data", (c: Buffer) => {
      out += c.toString();
    });
    child.on("close", (code) =>
      code === 0 ? resolve(out) : reject(new Error(`pgbench ${args.join(" ")} failed (exit ${code}):\n${out}`)),
    );
  });
}

/** pgbench's tables at scale 10 (1,000,000 accounts), once per server. */
export async function pgbenchInit(url: string, scale = 10): Promise<void> {
  await exec(url, ["-i", "-q", "-s", String(scale)]);
}

export type Ceiling = "select-only" | "loan-pk" | "insert-plain" | "insert-loan";

/**
 * - select-only: pgbench -S, built in: `SELECT abalance FROM pgbench_accounts WHERE aid = :aid` (1M rows).
 * - loan-pk: the service's get-by-id statement on the loans table itself, a random existing id.
 * - insert-plain: a one-row insert into pgbench_history (no index, no trigger): the classic one-row insert.
 * - insert-loan: the service's create statement (`INSERT … RETURNING *` into loans: 4 indexes, the stats trigger).
 */
export function scriptFor(kind: Ceiling, dir: string, generatedRows: number): string[] {
  if (kind === "select-only") return ["-S"];
  const path = join(dir, `${kind}.sql`);
  const scripts: Record<Exclude<Ceiling, "select-only">, string> = {
    "loan-pk": `\\set i random(1, ${Math.max(1, generatedRows)})
SELECT * FROM loans WHERE id = md5('loan-' || :i)::uuid;
`,
    "insert-plain": `\\set aid random(1, 1000000)
\\set delta random(-5000, 5000)
INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (1, 1, :aid, :delta, CURRENT_TIMESTAMP);
`,
    "insert-loan": `\\set cents random(10000, 5000000)
INSERT INTO loans (borrower_id, amount, currency, status, term_months, interest_rate_apr)
VALUES ('pgbench_' || :client_id, :cents / 100.0, 'KES', 'pending', 12, 20.50) RETURNING *;
`,
  };
  writeFileSync(path, scripts[kind]);
  return ["-f", path];
}

export async function runPgbench(
  url: string,
  opts: { kind: Ceiling; clients: number; threads: number; durationS: number; dir: string; generatedRows: number },
): Promise<PgbenchResult> {
  const args = [
    "-n",
    "-c",
    String(opts.clients),
    "-j",
    String(opts.threads),
    "-T",
    String(opts.durationS),
    ...scriptFor(opts.kind, opts.dir, opts.generatedRows),
  ];
  const out = await exec(url, args);
  const tps = Number(/tps = ([\d.]+) \(without initial connection time\)/.exec(out)?.[1] ?? Number.NaN);
  const latency = Number(/latency average = ([\d.]+) ms/.exec(out)?.[1] ?? Number.NaN);
  const transactions = Number(/number of transactions actually processed: (\d+)/.exec(out)?.[1] ?? 0);
  const failed = Number(/number of failed transactions: (\d+)/.exec(out)?.[1] ?? 0);
  if (!Number.isFinite(tps)) throw new Error(`pgbench output not understood:\n${out}`);
  return { tps: Math.round(tps), latencyAvgMs: latency, transactions, failed };
}
