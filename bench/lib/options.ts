/** The benchmark's settings, from the environment (and `--quick`), each with a default that suits two cores. */
import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { ROOT } from "./service.js";

export interface Mode {
  /** keepalive / close: wrk (close sends `Connection: close`); ab: ApacheBench, a connection per request. */
  name: "keepalive" | "close" | "ab";
  connections: number;
}

export interface Variant {
  name: string;
  /** The variant's variables (BENCH_SERVICE_DIR and BENCH_REFERENCE are the harness's; the rest go to the service). */
  env: Record<string, string>;
  /** The Node binary that runs this variant's service: its BENCH_NODE, else the global BENCH_NODE, else the harness's. */
  node: string;
}

export const ENDPOINTS = ["health", "list", "by-id", "stats", "deep-page", "create"] as const;
export type Endpoint = (typeof ENDPOINTS)[number];

export const CEILINGS = ["select-only", "loan-pk", "insert-plain", "insert-loan"] as const;

export interface Options {
  quick: boolean;
  durationS: number;
  warmupS: number;
  sizes: number[];
  modes: Mode[];
  endpoints: Endpoint[];
  variants: Variant[];
  ceilings: (typeof CEILINGS)[number][];
  serviceEnv: Record<string, string>;
  durable: boolean;
  sharedBuffers: string;
  /** Count SQL statements per request with pg_stat_statements (BENCH_PG_STATEMENTS=1; off by default). */
  statements: boolean;
  threads: number;
  deepPageLimit: number;
  /** Before each measurement, wait (at most quietWaitS) until the machine's CPU use is under quietMaxPct. */
  quietMaxPct: number;
  quietWaitS: number;
  /** Each size's measurements are repeated this many times, variants interleaved; tables show the median. */
  rounds: number;
  /** Measurements disturbed by other work (CPU "other" > quietMaxPct) are taken again, this many times at most. */
  retries: number;
  outDir: string;
}

export const BENCH_USAGE = `usage: npm run bench [-- --quick | --help]

  npm run bench                  3 data sizes × 6 endpoints × 2 modes × variants, + pgbench ceilings (~25-35 min)
  npm run bench -- --quick       smoke test of the harness: 20 and 10,000 rows, 2 s per measurement
  npm run bench:soak [-- --quick]  mixed workload soak (60 s; quick: 10 s)

Settings are environment variables (BENCH_SIZES, BENCH_ENDPOINTS, BENCH_MODES, BENCH_VARIANTS, BENCH_DURATION,
BENCH_ROUNDS, BENCH_NODE, …): see bench/README.md. For example, a short before/after at 20 rows:

  BENCH_SIZES=20 BENCH_MODES=keepalive:32 BENCH_ENDPOINTS=list,by-id,create BENCH_ROUNDS=3 \\
  BENCH_VARIANTS='before:BENCH_SERVICE_DIR=/tmp/before;after:' npm run bench
`;

/**
 * `--help` prints the usage and exits 0 before anything starts; an unknown option prints it and exits 2
 * (a mistyped `--quick` must not start a 35-minute run).
 */
export function handleArgs(argv: string[], known: readonly string[], usage = BENCH_USAGE): void {
  if (argv.includes("--help") || argv.includes("-h")) {
    process.stdout.write(usage);
    process.exit(0);
  }
  const unknown = argv.filter((a) => !known.includes(a));
  if (unknown.length > 0) {
    process.stderr.write(`unknown argument ${unknown.join(" ")}\n\n${usage}`);
    process.exit(2);
  }
}

/** A variable name; a list splits only before one followed by `=`. */
const NAME = "[A-Za-z_][A-Za-z0-9_]*";
const ENV_NAME = new RegExp(`^${NAME}$`);
const BEFORE_NAME = new RegExp(`[\\s,]+(?=${NAME}=)`);

/**
 * `A=1 B=2` or `A=1,B=2` → { A: "1", B: "2" }. Split only at a space or comma followed by `NAME=` (a variable
 * name, then `=`): a value may hold spaces and commas as long as no part of it looks like `NAME=`, e.g.
 * `NODE_OPTIONS=--max-old-space-size=384 --max-semi-space-size=16,WEB_CONCURRENCY=1`.
 */
export function parseEnvList(text: string): Record<string, string> {
  const env: Record<string, string> = {};
  const trimmed = text.replace(/^[\s,]+|[\s,]+$/g, "");
  if (!trimmed) return env;
  for (const part of trimmed.split(BEFORE_NAME)) {
    const eq = part.indexOf("=");
    if (eq < 1 || !ENV_NAME.test(part.slice(0, eq))) throw new Error(`not NAME=value: "${part}"`);
    env[part.slice(0, eq)] = part.slice(eq + 1);
  }
  return env;
}

/**
 * The Node binary that runs the service: `variantValue` (a variant's BENCH_NODE), else the environment's
 * BENCH_NODE, else the harness's own. A path with a slash is made absolute (the service starts in the repository
 * root); a bare name is looked up on PATH.
 */
export function serviceNode(variantValue: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  const value = variantValue || env.BENCH_NODE;
  if (!value) return process.execPath;
  return value.includes("/") ? resolve(value) : value;
}

/** `list` as it is, or an error when it holds BENCH_NODE (the binary, never a variable of the service). */
export function refuseBenchNode(list: Record<string, string>, where: string): Record<string, string> {
  if ("BENCH_NODE" in list) {
    throw new Error(`${where}: BENCH_NODE is not a service variable; set it on its own or in a BENCH_VARIANTS variant`);
  }
  return list;
}

function list<T extends string>(text: string | undefined, all: readonly T[], name: string): T[] {
  if (!text) return [...all];
  const picked = text.split(",").map((s) => s.trim()) as T[];
  for (const p of picked) if (!all.includes(p)) throw new Error(`${name}: unknown "${p}" (known: ${all.join(", ")})`);
  return picked;
}

/** Whether the service under test reads WEB_CONCURRENCY (the cluster mode), judged from its configuration source. */
export function serviceSupportsCluster(): boolean {
  try {
    return readFileSync(join(ROOT, "service/src/config.ts"), "utf8").includes("WEB_CONCURRENCY");
  } catch {
    return false;
  }
}

/** The image's default NODE_OPTIONS (the heap bound), read from the Dockerfile's ENV; none in an older tree. */
export function imageNodeOptions(root = ROOT): { NODE_OPTIONS?: string } {
  try {
    const match = /^\s*NODE_OPTIONS=(?:"([^"]*)"|(\S+))/m.exec(readFileSync(join(root, "Dockerfile"), "utf8"));
    const value = match?.[1] ?? match?.[2];
    return value ? { NODE_OPTIONS: value } : {};
  } catch {
    return {};
  }
}

export function readOptions(argv = process.argv.slice(2), env = process.env): Options {
  const quick = argv.includes("--quick") || env.BENCH_QUICK === "1";
  const num = (name: string, fallback: number) => {
    const v = env[name];
    if (v === undefined || v === "") return fallback;
    const n = Number(v);
    if (!Number.isFinite(n) || n <= 0) throw new Error(`${name} must be a positive number (got "${v}")`);
    return n;
  };
  const sizes = (env.BENCH_SIZES ?? (quick ? "20,10000" : "20,10000,1000000"))
    .split(",")
    .map((s) => Number(s.trim().replace(/_/g, "")));
  for (const s of sizes) if (!Number.isInteger(s) || s < 20) throw new Error("BENCH_SIZES: integers ≥ 20");

  const modes: Mode[] = (env.BENCH_MODES ?? "keepalive:32,close:8,ab:8").split(",").map((m) => {
    const [name, c] = m.split(":");
    if ((name !== "keepalive" && name !== "close" && name !== "ab") || !Number(c)) {
      throw new Error(`BENCH_MODES: "${m}" is not keepalive:N, close:N or ab:N`);
    }
    return { name, connections: Number(c) };
  });

  // Variants of the service: "name:VAR=v,VAR=v;name2:…". Default: one process, one per core when the service
  // supports WEB_CONCURRENCY, and the plain-Express reference (BENCH_REFERENCE names a file in bench/reference/).
  let variants: Variant[];
  if (env.BENCH_VARIANTS) {
    variants = env.BENCH_VARIANTS.split(";")
      .filter(Boolean)
      .map((v) => {
        const colon = v.indexOf(":");
        const name = colon < 0 ? v : v.slice(0, colon);
        const { BENCH_NODE, ...variantEnv } = colon < 0 ? {} : parseEnvList(v.slice(colon + 1));
        return { name: name.trim(), env: variantEnv, node: serviceNode(BENCH_NODE, env) };
      });
  } else {
    const node = serviceNode(undefined, env);
    variants = [{ name: "single", env: { WEB_CONCURRENCY: "1" }, node }];
    if (serviceSupportsCluster()) variants.push({ name: "cluster", env: { WEB_CONCURRENCY: "auto" }, node });
    // The other anchor, measured in the same run: plain Express 5 + pg (health, list, get-by-id only).
    variants.push({ name: "plain-express", env: { WEB_CONCURRENCY: "1", BENCH_REFERENCE: "plain-express" }, node });
    // The ceiling of the stack on this machine: bare node:http answering /health (issue 11).
    variants.push({ name: "bare-http", env: { BENCH_REFERENCE: "bare-http" }, node });
  }

  const stamp = new Date().toISOString().replace(/[:.]/g, "-").slice(0, 19);
  return {
    quick,
    durationS: num("BENCH_DURATION", quick ? 2 : 10),
    warmupS: num("BENCH_WARMUP", quick ? 1 : 2),
    sizes,
    modes,
    endpoints: list(env.BENCH_ENDPOINTS, ENDPOINTS, "BENCH_ENDPOINTS"),
    variants,
    ceilings: list(env.BENCH_CEILINGS, CEILINGS, "BENCH_CEILINGS"),
    // Production-like: env/prod.env.example's NODE_ENV, LOG_LEVEL and pool; migrations on start and the heap bound
    // (NODE_OPTIONS) as in the image.
    serviceEnv: {
      ...imageNodeOptions(),
      NODE_ENV: "production",
      LOG_LEVEL: "info",
      DB_POOL_MAX: "20",
      MIGRATE_ON_START: "true",
      ...refuseBenchNode(parseEnvList(env.BENCH_SERVICE_ENV ?? ""), "BENCH_SERVICE_ENV"),
    },
    durable: env.BENCH_DURABLE !== "0",
    statements: env.BENCH_PG_STATEMENTS === "1",
    sharedBuffers: env.BENCH_PG_SHARED_BUFFERS ?? "256MB",
    threads: num("BENCH_THREADS", 2),
    deepPageLimit: 10,
    quietMaxPct: num("BENCH_QUIET_MAX", 25),
    quietWaitS: num("BENCH_QUIET_WAIT", 120),
    rounds: num("BENCH_ROUNDS", 1),
    retries: env.BENCH_RETRIES === "0" ? 0 : num("BENCH_RETRIES", 2),
    outDir: resolve(env.BENCH_OUT ?? join(ROOT, "bench/out", stamp)),
  };
}
