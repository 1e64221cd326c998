/**
 * `npm run bench`: the service on a real PostgreSQL, every endpoint driven by wrk at fixed connections and
 * duration, at three data sizes, next to the database's own ceilings (pgbench) measured on the same server in
 * the same run. Settings: bench/README.md. Output: bench/out/<time>/ (report.md, results.json, logs).
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { runAb } from "./lib/ab.js";
import { deepPageCursor, loadData, migrate, tableSize, writeIdsFile } from "./lib/data.js";
import { type Endpoint, handleArgs, type Mode, type Options, readOptions, type Variant } from "./lib/options.js";
import { type Ceiling, type PgbenchResult, pgbenchInit, runPgbench } from "./lib/pgbench.js";
import { readStatements, resetStatements, type StatementCount, startPostgres } from "./lib/postgres.js";
import { type Observation, observe, waitForQuiet, watchPostgres } from "./lib/proc.js";
import { type CeilingRecord, type EndpointRecord, type Report, renderReport } from "./lib/report.js";
import { buildService, ROOT, type RunningService, startService } from "./lib/service.js";
import { describeMachine, requireNodes, requireTools, serviceRevision } from "./lib/tools.js";
import { buildScript, runWrk, type Script, type WrkResult } from "./lib/wrk.js";

/** What each reference app (bench/reference/) implements: plain Express + pg, the endpoints the anchor
 * measured; bare node:http, /health only (the ceiling of the stack on this machine). */
const REFERENCE_ENDPOINTS: Record<string, Endpoint[]> = {
  "plain-express": ["health", "list", "by-id"],
  "bare-http": ["health"],
};

handleArgs(process.argv.slice(2), ["--quick"]);
const opts: Options = readOptions();
requireTools(["wrk", "pgbench", ...(opts.modes.some((m) => m.name === "ab") ? ["ab"] : [])]);
// Which Node runs each variant (BENCH_NODE): asked once per binary, before anything starts.
const versions = requireNodes(opts.variants.map((v) => v.node));
mkdirSync(opts.outDir, { recursive: true });
const say = (text: string) => process.stdout.write(`${new Date().toISOString().slice(11, 19)} ${text}\n`);

const report: Report = {
  command: ["npm run bench", ...process.argv.slice(2)].join(" "),
  settings: Object.fromEntries(Object.entries(process.env).filter(([k]) => k.startsWith("BENCH_"))),
  started: new Date().toISOString(),
  machine: describeMachine(),
  nodeVersions: versions,
  revision: serviceRevision(ROOT),
  options: opts,
  postgres: {},
  sizes: [],
  endpoints: [],
  ceilings: [],
};
const save = () => {
  writeFileSync(join(opts.outDir, "results.json"), `${JSON.stringify(report, null, 2)}\n`);
  writeFileSync(join(opts.outDir, "report.md"), renderReport(report));
};

say(`output in ${opts.outDir}`);
say("building the service (npm run build)");
const entry = buildService(opts.outDir);
// A variant may name another source tree (BENCH_SERVICE_DIR, e.g. a patched copy): built once, apart.
const entries = new Map<string, string>();
for (const v of opts.variants) {
  const dir = v.env.BENCH_SERVICE_DIR;
  if (dir && !entries.has(dir)) {
    say(`building the service of ${dir}`);
    entries.set(dir, buildService(join(opts.outDir, `build-${entries.size + 1}`), resolve(dir)));
  }
}
const luaDir = join(opts.outDir, "lua");
const scripts = {
  get: buildScript(luaDir, "get"),
  "by-id": buildScript(luaDir, "by-id"),
  create: buildScript(luaDir, "create"),
} as Record<Script, string>;

say(`starting PostgreSQL (${opts.durable ? "durable: fsync on" : "fsync off"}, shared_buffers ${opts.sharedBuffers})`);
const pg = await startPostgres({
  durable: opts.durable,
  sharedBuffers: opts.sharedBuffers,
  statements: opts.statements,
});
watchPostgres(pg.pid);
let service: RunningService | undefined;
const cleanup = async () => {
  await service?.stop().catch(() => {});
  await pg.stop();
};
process.on("SIGINT", () => {
  void cleanup().then(() => process.exit(130));
});

try {
  report.postgres = { ...pg.settings, embedded: String(pg.embedded) };
  say(`PostgreSQL ${pg.settings.server_version}; pgbench tables (scale 10)`);
  await pgbenchInit(pg.url);
  await migrate(pg.url);

  for (const size of opts.sizes) {
    say(`── ${size.toLocaleString("en")} rows: loading`);
    const loaded = await loadData(pg.url, size);
    say(`   loaded ${loaded.rows} rows in ${loaded.loadSeconds} s (${loaded.tableMiB} MiB with indexes)`);
    const idsFile = join(opts.outDir, `ids-${size}.txt`);
    const idCount = writeIdsFile(idsFile, loaded.generated);
    const deep = await deepPageCursor(pg.url, opts.deepPageLimit);
    const sizeInfo = { size, ...loaded, idsInRotation: idCount, deepPagePosition: deep.position, afterWrites: {} };
    report.sizes.push(sizeInfo);

    const paths: Partial<Record<Endpoint, { script: Script; env: Record<string, string> }>> = {
      health: { script: "get", env: { BENCH_PATH: "/health" } },
      list: { script: "get", env: { BENCH_PATH: "/api/loans?limit=20" } },
      "by-id": { script: "by-id", env: { BENCH_IDS_FILE: idsFile } },
      stats: { script: "get", env: { BENCH_PATH: "/api/stats" } },
      "deep-page": {
        script: "get",
        env: { BENCH_PATH: `/api/loans?limit=${opts.deepPageLimit}&cursor=${deep.cursor}` },
      },
      create: { script: "create", env: {} },
    };
    const reads = opts.endpoints.filter((e) => e !== "create");
    const writes = opts.endpoints.filter((e) => e === "create");

    // The database alone, reads first (writes grow the table).
    await ceilings(size, loaded.generated, ["select-only", "loan-pk"]);
    // Rounds (BENCH_ROUNDS) interleave the variants, so a slow spell of the machine does not land on one of them.
    for (let round = 1; round <= opts.rounds; round++) {
      for (const variant of opts.variants) await endpoints(size, variant, reads, paths, round);
    }
    await ceilings(size, loaded.generated, ["insert-plain", "insert-loan"]);
    for (let round = 1; round <= opts.rounds; round++) {
      for (const variant of opts.variants) await endpoints(size, variant, writes, paths, round);
    }
    sizeInfo.afterWrites = await tableSize(pg.url);
    save();
  }
  report.finished = new Date().toISOString();
  save();
  process.stdout.write(`\n${renderReport(report)}`);
  say(`report: ${join(opts.outDir, "report.md")}`);
} finally {
  await cleanup();
}
process.exit(0);

async function ceilings(size: number, generated: number, kinds: Ceiling[]) {
  for (const kind of kinds.filter((k) => opts.ceilings.includes(k))) {
    for (const mode of opts.modes) {
      let best: { result: PgbenchResult; seen: Observation; background: number } | undefined;
      for (let attempt = 0; attempt <= opts.retries; attempt++) {
        const background = await waitForQuiet(opts.quietMaxPct, opts.quietWaitS, say);
        const { result, seen } = await observe(undefined, () =>
          runPgbench(pg.url, {
            kind,
            clients: mode.connections,
            threads: opts.threads,
            durationS: opts.durationS,
            dir: opts.outDir,
            generatedRows: generated,
          }),
        );
        if (!best || seen.cpu.other < best.seen.cpu.other) best = { result, seen, background };
        if (seen.cpu.other <= opts.quietMaxPct) break;
        if (attempt < opts.retries) say(`   disturbed (CPU other ${seen.cpu.other} %): measuring again`);
      }
      const { result, seen, background } = best as NonNullable<typeof best>;
      const record: CeilingRecord = { size, kind, clients: mode.connections, ...result, cpu: seen.cpu, background };
      report.ceilings.push(record);
      say(`   pgbench ${kind} -c ${mode.connections}: ${result.tps} tps`);
    }
  }
}

async function endpoints(
  size: number,
  variant: Variant,
  which: Endpoint[],
  paths: Partial<Record<Endpoint, { script: Script; env: Record<string, string> }>>,
  round: number,
) {
  const { BENCH_SERVICE_DIR: dir, BENCH_REFERENCE: reference, ...variantEnv } = variant.env;
  const measured = reference ? which.filter((e) => (REFERENCE_ENDPOINTS[reference] ?? []).includes(e)) : which;
  if (measured.length === 0) return;
  const env = { ...opts.serviceEnv, ...variantEnv, DATABASE_URL: pg.url };
  service = await startService({
    entry: reference ? join(ROOT, "bench/reference", `${reference}.ts`) : (dir && entries.get(dir)) || entry,
    nodeArgs: reference ? ["--import", "tsx"] : [],
    node: variant.node,
    env,
    logFile: join(opts.outDir, `service-${size}-${variant.name}.log`),
  });
  say(
    `   service "${variant.name}" up (pid ${service.pid}, Node ${versions[variant.node]}) ${JSON.stringify(variant.env)}`,
  );
  try {
    for (const mode of opts.modes) {
      for (const endpoint of measured) {
        const target = paths[endpoint];
        if (!target) continue;
        await measure(size, variant, mode, endpoint, target, round);
      }
    }
  } finally {
    const code = await service.stop();
    if (code !== 0) say(`   service "${variant.name}" exited with code ${code} on SIGTERM`);
    service = undefined;
  }
}

/**
 * The one request ab repeats for an endpoint (it cannot vary it): the fixed path; for get-by-id the loan in the
 * middle of the rotation; for create one body (a new loan per request, all for the same borrower).
 */
function abRequest(base: string, target: { script: Script; env: Record<string, string> }, runId: string) {
  if (target.script === "get") return { url: `${base}${target.env.BENCH_PATH ?? "/health"}` };
  if (target.script === "by-id") {
    const ids = readFileSync(target.env.BENCH_IDS_FILE ?? "", "utf8")
      .split("\n")
      .filter(Boolean);
    return { url: `${base}/api/loans/${ids[Math.floor(ids.length / 2)]}` };
  }
  if (target.script === "create") {
    const body = { borrower_id: `bench_ab_${runId}`, amount: "1234.56", currency: "KES", term_months: 12 };
    return { url: `${base}/api/loans`, postJson: JSON.stringify(body) };
  }
  throw new Error(`ab cannot drive the ${target.script} script`);
}

async function measure(
  size: number,
  variant: Variant,
  mode: Mode,
  endpoint: Endpoint,
  target: { script: Script; env: Record<string, string> },
  round: number,
) {
  const svc = service as RunningService;
  const run = (durationS: number, runId: string) =>
    mode.name === "ab"
      ? runAb({
          ...abRequest(svc.url, target, runId),
          connections: mode.connections,
          durationS,
          workDir: join(opts.outDir, "ab"),
        })
      : runWrk({
          url: svc.url,
          script: scripts[target.script],
          connections: mode.connections,
          threads: Math.min(opts.threads, mode.connections),
          durationS,
          close: mode.name === "close",
          env: { ...target.env, BENCH_RUN_ID: runId },
        });
  // Warm-up: JIT, pool connections, caches; not recorded.
  await run(opts.warmupS, `${size}w${variant.name}${mode.name}`);
  await sleep(500);
  const before = endpoint === "create" ? await tableSize(pg.url) : undefined;
  // A measurement that someone else's work disturbed (CPU "other" over the threshold) is taken again, at most
  // BENCH_RETRIES times; the least disturbed one is kept.
  let best: { result: WrkResult; seen: Observation; background: number; statements?: StatementCount[] } | undefined;
  for (let attempt = 0; attempt <= opts.retries; attempt++) {
    const background = await waitForQuiet(opts.quietMaxPct, opts.quietWaitS, say);
    if (opts.statements) await resetStatements(pg.url);
    const { result, seen } = await observe(svc.pid, () =>
      run(opts.durationS, `${size}${variant.name}${mode.name}${attempt}`),
    );
    const statements = opts.statements ? await readStatements(pg.url) : undefined;
    if (!best || seen.cpu.other < best.seen.cpu.other) best = { result, seen, background, statements };
    if (seen.cpu.other <= opts.quietMaxPct) break;
    if (attempt < opts.retries) say(`   disturbed (CPU other ${seen.cpu.other} %): measuring again`);
  }
  const { result, seen, background, statements } = best as NonNullable<typeof best>;
  const record: EndpointRecord = {
    size,
    variant: variant.name,
    mode: mode.name,
    connections: mode.connections,
    endpoint,
    round,
    ...result,
    seen,
    background,
    rowsBefore: before?.rows,
    statements: statements?.map((st) => ({ ...st, perRequest: Math.round((st.calls / result.requests) * 100) / 100 })),
  };
  report.endpoints.push(record);
  say(
    `   ${variant.name} ${mode.name}:${mode.connections} ${endpoint}: ${result.rps} req/s ` +
      `p50 ${result.latencyMs.p50} ms p99 ${result.latencyMs.p99} ms errors ${result.errorCount} ` +
      `cpu svc ${seen.cpu.service}% pg ${seen.cpu.postgres}% wrk ${seen.cpu.loadgen}% other ${seen.cpu.other}% rss ${seen.rssMaxMiB} MiB`,
  );
  await sleep(500);
}
