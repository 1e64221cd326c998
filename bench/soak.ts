/**
 * `npm run bench:soak`: a minute (SOAK_DURATION) of a mixed workload at fixed concurrency (SOAK_CONNECTIONS,
 * keep-alive) against the compiled service on a real PostgreSQL: reads, creates and status changes together.
 * Passes when there is no error at all (every non-2xx counts), RSS growth between the first and the last part of
 * the run stays bounded, the maintained statistics still equal a full scan of the table afterwards, and the
 * service shuts down cleanly (exit 0 on SIGTERM). Output: bench/out/soak-<time>/ (soak.md, soak.json, service log).
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import pg from "pg";
import { deepPageCursor, loadData, migrate, tableSize, writeIdsFile } from "./lib/data.js";
import { handleArgs, parseEnvList, refuseBenchNode, serviceNode } from "./lib/options.js";
import { startPostgres } from "./lib/postgres.js";
import { observe, processTree, rssKiB, waitForQuiet, watchPostgres } from "./lib/proc.js";
import { buildService, ROOT, startService } from "./lib/service.js";
import { describeMachine, requireNodes, requireTools } from "./lib/tools.js";
import { buildScript, runWrk } from "./lib/wrk.js";

const env = process.env;
handleArgs(process.argv.slice(2), ["--quick"]);
const quick = process.argv.includes("--quick");
const durationS = Number(env.SOAK_DURATION ?? (quick ? 10 : 60));
const connections = Number(env.SOAK_CONNECTIONS ?? 32);
const rows = Number(env.SOAK_ROWS ?? 10_000);
/** Allowed RSS growth, last tenth of the run vs the first tenth after warm-up, in MiB per process. */
const maxGrowthMiB = Number(env.SOAK_MAX_RSS_GROWTH_MIB ?? 30);
const serviceEnv = {
  NODE_ENV: "production",
  LOG_LEVEL: "info",
  DB_POOL_MAX: "20",
  MIGRATE_ON_START: "true",
  ...refuseBenchNode(parseEnvList(env.SOAK_SERVICE_ENV ?? ""), "SOAK_SERVICE_ENV"),
};
/** The Node binary that runs the service (BENCH_NODE; default the harness's), its version asked before anything starts. */
const node = serviceNode(undefined, env);
const nodeVersion = requireNodes([node])[node];
const stamp = new Date().toISOString().replace(/[:.]/g, "-").slice(0, 19);
const outDir = resolve(env.BENCH_OUT ?? join(ROOT, "bench/out", `soak-${stamp}`));
const say = (text: string) => process.stdout.write(`${new Date().toISOString().slice(11, 19)} ${text}\n`);

requireTools(["wrk"]);
mkdirSync(outDir, { recursive: true });
say(`output in ${outDir}`);
const entry = buildService(outDir);
const script = buildScript(join(outDir, "lua"), "soak");
const db = await startPostgres({
  durable: env.BENCH_DURABLE !== "0",
  sharedBuffers: env.BENCH_PG_SHARED_BUFFERS ?? "256MB",
  statements: false,
});
watchPostgres(db.pid);
let exitCode = 1;
try {
  await migrate(db.url);
  const loaded = await loadData(db.url, rows);
  const idsFile = join(outDir, "ids.txt");
  writeIdsFile(idsFile, loaded.generated);
  const deep = await deepPageCursor(db.url, 10);
  say(`${loaded.rows} rows loaded; starting the service (Node ${nodeVersion}) ${JSON.stringify(serviceEnv)}`);
  const service = await startService({
    entry,
    node,
    env: { ...serviceEnv, DATABASE_URL: db.url },
    logFile: join(outDir, "service.log"),
  });
  const wrkEnv = { BENCH_IDS_FILE: idsFile, BENCH_DEEP_PATH: `/api/loans?limit=10&cursor=${deep.cursor}` };
  const run = (seconds: number) =>
    runWrk({ url: service.url, script, connections, threads: 2, durationS: seconds, close: false, env: wrkEnv });

  say("warm-up 5 s");
  await run(5);
  await waitForQuiet(Number(env.BENCH_QUIET_MAX ?? 25), Number(env.BENCH_QUIET_WAIT ?? 300), say);

  // RSS of every service process, once a second.
  const timeline: Array<{ t: number; perProcessMiB: number[] }> = [];
  const t0 = Date.now();
  const sample = () => {
    const pids = processTree(service.pid);
    timeline.push({
      t: Math.round((Date.now() - t0) / 1000),
      perProcessMiB: pids.map((p) => Math.round(rssKiB(p) / 1024)),
    });
  };
  sample();
  const timer = setInterval(sample, 1000);
  say(`soak: ${durationS} s, ${connections} connections, keep-alive`);
  const { result, seen } = await observe(service.pid, () => run(durationS));
  clearInterval(timer);
  sample();
  const after = await tableSize(db.url);

  // The maintained statistics against a full scan, after all those concurrent creates and transitions.
  const api = (await (await fetch(`${service.url}/api/stats`)).json()) as {
    total_loans: number;
    total_amount: number;
    by_status: Record<string, number>;
    by_currency: Record<string, number>;
  };
  const client = new pg.Client({ connectionString: db.url });
  await client.connect();
  const scan = await client.query<{ n: string; total: string }>(
    "SELECT count(*) AS n, sum(amount) AS total FROM loans",
  );
  const byStatus = await client.query<{ k: string; n: string }>(
    "SELECT status AS k, count(*) AS n FROM loans GROUP BY 1",
  );
  const byCurrency = await client.query<{ k: string; n: string }>(
    "SELECT currency AS k, count(*) AS n FROM loans GROUP BY 1",
  );
  const transitions = await client.query<{ status: string; n: string }>(
    "SELECT status, count(*) AS n FROM loans WHERE borrower_id LIKE 'soak\\_%' GROUP BY 1 ORDER BY 1",
  );
  await client.end();
  const asMap = (rs: Array<{ k: string; n: string }>) => Object.fromEntries(rs.map((r) => [r.k.trim(), Number(r.n)]));
  const same = (a: Record<string, number>, b: Record<string, number>) =>
    JSON.stringify(Object.entries(a).sort()) === JSON.stringify(Object.entries(b).sort());
  const statsExact =
    api.total_loans === Number(scan.rows[0]?.n) &&
    api.total_amount === Number(scan.rows[0]?.total) &&
    same(api.by_status, asMap(byStatus.rows)) &&
    same(api.by_currency, asMap(byCurrency.rows));

  const exit = await service.stop();

  // RSS growth: mean of the first tenth (after the warm-up) vs the last tenth, per process position.
  const tenth = Math.max(1, Math.floor(timeline.length / 10));
  const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0);
  const procs = Math.max(...timeline.map((s) => s.perProcessMiB.length));
  const growth: number[] = [];
  for (let i = 0; i < procs; i++) {
    const first = mean(timeline.slice(0, tenth).map((s) => s.perProcessMiB[i] ?? 0));
    const last = mean(timeline.slice(-tenth).map((s) => s.perProcessMiB[i] ?? 0));
    growth.push(Math.round(last - first));
  }
  const rssMax = Math.max(...timeline.flatMap((s) => s.perProcessMiB));
  const passed = result.errorCount === 0 && growth.every((g) => g <= maxGrowthMiB) && statsExact && exit === 0;

  const md = [
    `## Soak of ${new Date(t0).toISOString().slice(0, 16).replace("T", " ")} UTC`,
    "",
    `- Command: \`npm run bench:soak${quick ? " -- --quick" : ""}\`; ${durationS} s, ${connections} connections (keep-alive), wrk 2 threads`,
    `- Machine: ${describeMachine().cpus} cores, ${describeMachine().memoryGiB} GiB; Node ${process.version} (harness), ${nodeVersion}${node === process.execPath ? "" : ` at ${node}`} (service); PostgreSQL ${db.settings.server_version} (fsync=${db.settings.fsync}, synchronous_commit=${db.settings.synchronous_commit})`,
    `- Service: ${Object.entries(serviceEnv)
      .map(([k, v]) => `${k}=${v}`)
      .join(" ")}`,
    "- Mix: 35 % get-by-id, 25 % first page, 10 % deep page, 10 % stats, 15 % create, 5 % status change (legal transitions of loans the run created)",
    "",
    "| | |",
    "|---|---|",
    `| requests | ${result.requests.toLocaleString("en")} (${result.rps.toLocaleString("en")} req/s) |`,
    `| errors (connect/read/write/timeout/non-2xx) | ${result.errorCount}${result.errorCount ? ` ${JSON.stringify(result.errors)}` : ""} |`,
    `| latency p50 / p90 / p99 / max | ${result.latencyMs.p50} / ${result.latencyMs.p90} / ${result.latencyMs.p99} / ${result.latencyMs.max} ms |`,
    `| rows before → after | ${loaded.rows.toLocaleString("en")} → ${after.rows.toLocaleString("en")} |`,
    `| loans the run created, by status now | ${transitions.rows.map((r) => `${r.status} ${r.n}`).join(", ")} |`,
    `| service processes | ${procs} |`,
    `| RSS per process, first → last tenth of the run | ${growth.map((g, i) => `${mean(timeline.slice(0, tenth).map((s) => s.perProcessMiB[i] ?? 0)).toFixed(0)} → ${mean(timeline.slice(-tenth).map((s) => s.perProcessMiB[i] ?? 0)).toFixed(0)} MiB (${g >= 0 ? "+" : ""}${g})`).join("; ")} |`,
    `| RSS max (any process) | ${rssMax} MiB |`,
    `| CPU service / postgres / wrk / other | ${seen.cpu.service} / ${seen.cpu.postgres} / ${seen.cpu.loadgen} / ${seen.cpu.other} % of a core |`,
    `| /api/stats equals a full scan afterwards | ${statsExact ? "yes" : "**no**"} |`,
    `| exit code on SIGTERM | ${exit} |`,
    `| **result** | ${passed ? "pass" : "**FAIL**"} (zero errors, RSS growth ≤ ${maxGrowthMiB} MiB per process, exact stats, clean exit) |`,
    "",
    `RSS timeline (s: MiB per process): ${timeline
      .filter((_, i) => i % 5 === 0 || i === timeline.length - 1)
      .map((s) => `${s.t}: ${s.perProcessMiB.join("/")}`)
      .join(", ")}`,
    "",
  ].join("\n");
  writeFileSync(join(outDir, "soak.md"), md);
  writeFileSync(
    join(outDir, "soak.json"),
    `${JSON.stringify({ result, seen, timeline, growth, statsExact, api, exit, passed }, null, 2)}\n`,
  );
  process.stdout.write(`\n${md}`);
  exitCode = passed ? 0 : 1;
} finally {
  await db.stop();
}
process.exit(exitCode);
