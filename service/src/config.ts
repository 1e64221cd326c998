/**
 * Configuration: the environment, parsed and validated once at start-up into one typed, frozen object.
 * A bad value stops the process with a clear message and a non-zero exit (envalid's reporter).
 */
import { readFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { bool, cleanEnv, num, port, str } from "envalid";

export interface Config {
  nodeEnv: "development" | "test" | "production";
  isProduction: boolean;
  /** Empty when the service should start its own embedded PostgreSQL (development only). */
  databaseUrl: string;
  host: string;
  port: number;
  logLevel: string;
  logPretty: boolean;
  /** Access lines for successful liveness and readiness probes (they are counted in the metrics either way). */
  logProbes: boolean;
  dbPoolMin: number;
  dbPoolMax: number;
  dbAcquireTimeoutMs: number;
  dbStatementTimeoutMs: number;
  shutdownGraceMs: number;
  migrateOnStart: boolean;
  seedOnStart: boolean;
  trustProxy: number;
  /** Longest time to receive a whole request, headers and body; past it a 408 and the connection closes. */
  requestTimeoutMs: number;
  /** Requests that may wait for a database connection; past it a 503 with Retry-After at once. */
  dbQueueMax: number;
  /** The Prometheus listener, apart from the public port; 0 = no metrics listener. */
  metricsPort: number;
  metricsHost: string;
  idempotencyTtlHours: number;
  embeddedPgPort: number;
  embeddedPgDir: string;
  /** Worker processes (Node cluster); 1 = a single process. */
  webConcurrency: number;
}

export const DEFAULT_EMBEDDED_PG_DIR = ".data/postgres";

/** Accepts the original Flask app's SQLAlchemy URL (`postgresql+psycopg2://…`) as well as plain `postgres://`. */
export function normalizeDatabaseUrl(url: string): string {
  return url.trim().replace(/^postgres(?:ql)?\+[a-z0-9_]+:\/\//i, "postgresql://");
}

/** The URL with its password replaced by `***`, for logs. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    return u.toString();
  } catch {
    return "<unparseable DATABASE_URL>";
  }
}

/** Whether a package can be imported from here (a dev dependency may be absent, as in the production image). */
function resolvable(specifier: string): boolean {
  try {
    import.meta.resolve(specifier);
    return true;
  } catch {
    return false;
  }
}

function withPasswordFromFile(url: string, file: string): string {
  if (!file) return url;
  const password = readFileSync(file, "utf8").trim();
  const u = new URL(url);
  u.password = encodeURIComponent(password);
  return u.toString();
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Readonly<Config> {
  const e = cleanEnv(env, {
    NODE_ENV: str({ choices: ["development", "test", "production"], default: "development" }),
    DATABASE_URL: str({ default: "", desc: "PostgreSQL connection URL; unset in development = embedded PostgreSQL" }),
    DATABASE_PASSWORD_FILE: str({ default: "", desc: "file whose content replaces the password in DATABASE_URL" }),
    HOST: str({ default: "0.0.0.0" }),
    PORT: port({ default: 8000 }),
    LOG_LEVEL: str({ choices: ["fatal", "error", "warn", "info", "debug", "trace", "silent"], default: "info" }),
    LOG_PRETTY: bool({ default: false }),
    LOG_PROBES: bool({ default: false, desc: "access lines for successful GET/HEAD /health and /ready too" }),
    DB_POOL_MIN: num({ default: 0 }),
    DB_POOL_MAX: num({ default: 10 }),
    DB_ACQUIRE_TIMEOUT_MS: num({ default: 2000 }),
    DB_STATEMENT_TIMEOUT_MS: num({ default: 5000 }),
    SHUTDOWN_GRACE_MS: num({ default: 10000 }),
    MIGRATE_ON_START: bool({ default: false }),
    SEED_ON_START: bool({ default: false }),
    TRUST_PROXY: num({ default: 0, desc: "number of reverse-proxy hops to trust for X-Forwarded-* (0: none)" }),
    REQUEST_TIMEOUT_MS: num({ default: 15000, desc: "longest time to receive a whole request (headers and body)" }),
    DB_QUEUE_MAX: num({ default: 50, desc: "requests that may wait for a database connection before 503s" }),
    METRICS_PORT: num({ default: 9464, desc: "port of the Prometheus /metrics listener; 0 = none" }),
    METRICS_HOST: str({ default: "127.0.0.1", desc: "address of the Prometheus /metrics listener" }),
    IDEMPOTENCY_TTL_HOURS: num({ default: 24 }),
    EMBEDDED_PG_PORT: port({ default: 54329 }),
    EMBEDDED_PG_DIR: str({ default: DEFAULT_EMBEDDED_PG_DIR }),
    WEB_CONCURRENCY: str({ default: "1", desc: "worker processes: a number, or `auto` for one per core" }),
  });

  const problems: string[] = [];
  const positive = {
    DB_POOL_MAX: e.DB_POOL_MAX,
    DB_ACQUIRE_TIMEOUT_MS: e.DB_ACQUIRE_TIMEOUT_MS,
    SHUTDOWN_GRACE_MS: e.SHUTDOWN_GRACE_MS,
    REQUEST_TIMEOUT_MS: e.REQUEST_TIMEOUT_MS,
    DB_QUEUE_MAX: e.DB_QUEUE_MAX,
  };
  for (const [name, value] of Object.entries(positive)) {
    if (!Number.isInteger(value) || value < 1) problems.push(`${name} must be a positive integer (got ${value})`);
  }
  if (!Number.isInteger(e.DB_POOL_MIN) || e.DB_POOL_MIN < 0 || e.DB_POOL_MIN > e.DB_POOL_MAX) {
    problems.push(`DB_POOL_MIN must be an integer between 0 and DB_POOL_MAX (got ${e.DB_POOL_MIN})`);
  }
  if (!Number.isInteger(e.TRUST_PROXY) || e.TRUST_PROXY < 0) problems.push("TRUST_PROXY must be an integer ≥ 0");
  if (!Number.isInteger(e.METRICS_PORT) || e.METRICS_PORT < 0 || e.METRICS_PORT > 65535) {
    problems.push(`METRICS_PORT must be a port number, or 0 for no metrics listener (got ${e.METRICS_PORT})`);
  } else if (e.METRICS_PORT !== 0 && e.METRICS_PORT === e.PORT) {
    problems.push("METRICS_PORT must differ from PORT: metrics are not served on the public port");
  }
  if (e.LOG_PRETTY && !resolvable("pino-pretty")) {
    problems.push(
      "LOG_PRETTY=true needs the pino-pretty package, which is not installed here (it is a development dependency, " +
        "absent from the production image): unset LOG_PRETTY, or pipe the JSON logs through `npx pino-pretty` where it is installed",
    );
  }
  if (!(e.IDEMPOTENCY_TTL_HOURS >= 24)) problems.push("IDEMPOTENCY_TTL_HOURS must be at least 24");

  const webConcurrency = e.WEB_CONCURRENCY === "auto" ? availableParallelism() : Number(e.WEB_CONCURRENCY);
  if (!Number.isInteger(webConcurrency) || webConcurrency < 1 || webConcurrency > 64) {
    problems.push(`WEB_CONCURRENCY must be "auto" or an integer from 1 to 64 (got "${e.WEB_CONCURRENCY}")`);
  }

  let databaseUrl = e.DATABASE_URL ? normalizeDatabaseUrl(e.DATABASE_URL) : "";
  if (databaseUrl) {
    let parsed: URL | undefined;
    try {
      parsed = new URL(databaseUrl);
    } catch {
      problems.push("DATABASE_URL is not a valid URL (expected postgresql://user:password@host:5432/db)");
    }
    if (parsed && !/^postgres(ql)?:$/.test(parsed.protocol)) {
      problems.push(`DATABASE_URL must use the postgresql:// scheme (got ${parsed.protocol})`);
    }
    if (parsed && e.DATABASE_PASSWORD_FILE) {
      try {
        databaseUrl = withPasswordFromFile(databaseUrl, e.DATABASE_PASSWORD_FILE);
      } catch (err) {
        problems.push(`DATABASE_PASSWORD_FILE cannot be read: ${(err as Error).message}`);
      }
    }
  } else if (e.NODE_ENV === "production") {
    problems.push("DATABASE_URL is required when NODE_ENV=production (the embedded PostgreSQL is for development)");
  }

  if (problems.length > 0) {
    process.stderr.write(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join("\n")}\n`);
    process.exit(1);
  }

  return Object.freeze({
    nodeEnv: e.NODE_ENV as Config["nodeEnv"],
    isProduction: e.NODE_ENV === "production",
    databaseUrl,
    host: e.HOST,
    port: e.PORT,
    logLevel: e.LOG_LEVEL,
    logPretty: e.LOG_PRETTY,
    logProbes: e.LOG_PROBES,
    dbPoolMin: e.DB_POOL_MIN,
    dbPoolMax: e.DB_POOL_MAX,
    dbAcquireTimeoutMs: e.DB_ACQUIRE_TIMEOUT_MS,
    dbStatementTimeoutMs: e.DB_STATEMENT_TIMEOUT_MS,
    shutdownGraceMs: e.SHUTDOWN_GRACE_MS,
    migrateOnStart: e.MIGRATE_ON_START,
    seedOnStart: e.SEED_ON_START,
    trustProxy: e.TRUST_PROXY,
    requestTimeoutMs: e.REQUEST_TIMEOUT_MS,
    dbQueueMax: e.DB_QUEUE_MAX,
    metricsPort: e.METRICS_PORT,
    metricsHost: e.METRICS_HOST,
    idempotencyTtlHours: e.IDEMPOTENCY_TTL_HOURS,
    embeddedPgPort: e.EMBEDDED_PG_PORT,
    embeddedPgDir: e.EMBEDDED_PG_DIR,
    webConcurrency,
  });
}
