/**
 * The process: config, database (embedded in development when DATABASE_URL is unset), migrations and seed
 * where configured, HTTP listener, and a graceful shutdown on SIGTERM/SIGINT: stop accepting, finish in-flight
 * requests, close the pool, stop the embedded database, exit 0 — or exit 1 when the grace period runs out.
 *
 * With WEB_CONCURRENCY > 1 (or `auto`: one per core) the process is a Node cluster: the primary prepares the
 * database once (embedded server, migrations, seed), forks the workers that serve HTTP, restarts a worker that
 * dies, and on SIGTERM/SIGINT forwards the signal and exits 0 once every worker has finished gracefully.
 */
import cluster from "node:cluster";
import { setTimeout as sleep } from "node:timers/promises";
import { seedLoans } from "../seeds/loans.js";
import { createApp } from "./app.js";
import { loadConfig, redactUrl } from "./config.js";
import { purgeIdempotencyKeys } from "./data/idempotency.js";
import { createDb, type Db, migrateLatest } from "./db.js";
import { type EmbeddedDatabase, startEmbeddedPostgres } from "./embedded.js";
import { createLogger } from "./logger.js";
import type { Lifecycle } from "./routes/health.js";

const config = loadConfig();
const logger = createLogger({ level: config.logLevel, pretty: config.logPretty });

async function retry<T>(what: string, fn: () => Promise<T>, attempts = 30): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await fn();
    } catch (err) {
      if (i >= attempts) throw err;
      logger.warn({ attempt: i, err: { message: (err as Error).message } }, `${what} failed; retrying`);
      await sleep(Math.min(1000, 100 * i));
    }
  }
}

/** Embedded database when DATABASE_URL is unset; migrations and seed where configured (always when embedded). */
async function prepareDatabase(): Promise<{ url: string; embedded?: EmbeddedDatabase }> {
  let embedded: EmbeddedDatabase | undefined;
  let url = config.databaseUrl;
  if (!url) {
    embedded = await startEmbeddedPostgres({ dir: config.embeddedPgDir, port: config.embeddedPgPort, logger });
    url = embedded.url;
  }
  if (config.migrateOnStart || config.seedOnStart || embedded) {
    const db = createDb({ ...config, databaseUrl: url });
    try {
      if (config.migrateOnStart || embedded) {
        const applied = await retry("migration", () => migrateLatest(db));
        logger.info({ applied }, applied.length ? "migrations applied" : "schema up to date");
      }
      if (config.seedOnStart || embedded) {
        const inserted = await retry("seed", () => seedLoans(db));
        logger.info({ inserted }, "seed loans present");
      }
    } finally {
      await db.destroy();
    }
  }
  return { url, embedded };
}

/** Serves HTTP until SIGTERM/SIGINT; `onClosed` runs after the pool is closed, before exit. */
async function serve(databaseUrl: string, onClosed?: () => Promise<void>) {
  const db: Db = createDb({ ...config, databaseUrl });
  logger.info({ database: redactUrl(databaseUrl), poolMax: config.dbPoolMax }, "database configured");

  const lifecycle: Lifecycle = { shuttingDown: false };
  const app = createApp({ db, logger, config, lifecycle });
  const server = app.listen(config.port, config.host);
  await new Promise<void>((resolve, reject) => {
    server.once("listening", resolve);
    server.once("error", reject);
  });
  // Longer than nginx's upstream keepalive_timeout (60 s), so the proxy never reuses a socket we are closing.
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 66_000;
  logger.info({ port: config.port, host: config.host, env: config.nodeEnv }, "listening");

  const purge = setInterval(() => {
    purgeIdempotencyKeys(db, config.idempotencyTtlHours).catch((err: Error) =>
      logger.warn({ err: { message: err.message } }, "idempotency key purge failed"),
    );
  }, 3_600_000);
  purge.unref();

  const shutdown = (signal: string) => {
    if (lifecycle.shuttingDown) return;
    lifecycle.shuttingDown = true;
    logger.info({ signal, graceMs: config.shutdownGraceMs }, "shutting down: finishing in-flight requests");
    clearInterval(purge);
    const force = setTimeout(() => {
      logger.error("grace period over: closing remaining connections");
      server.closeAllConnections();
      process.exit(1);
    }, config.shutdownGraceMs);
    force.unref();
    server.close(async () => {
      try {
        await db.destroy();
        await onClosed?.();
        logger.info("shutdown complete");
        process.exit(0);
      } catch (err) {
        logger.error({ err }, "error during shutdown");
        process.exit(1);
      }
    });
    // Idle keep-alive sockets are closed now; busy ones close after their response (Connection: close).
    server.closeIdleConnections();
  };
  process.on("SIGTERM", () => shutdown("SIGTERM"));
  process.on("SIGINT", () => shutdown("SIGINT"));
}

async function primary() {
  const { url, embedded } = await prepareDatabase();
  // Workers inherit the environment plus the prepared database; they neither migrate nor seed again.
  const env = { DATABASE_URL: url, MIGRATE_ON_START: "false", SEED_ON_START: "false", WEB_CONCURRENCY: "1" };
  let shuttingDown = false;
  let failedExits = 0;
  const restarts: number[] = [];
  const fork = () => cluster.fork(env);
  for (let i = 0; i < config.webConcurrency; i++) fork();
  logger.info({ workers: config.webConcurrency }, "cluster started");

  cluster.on("exit", (worker, code, signal) => {
    if (shuttingDown) {
      // A worker still starting has no handler yet and ends by the forwarded SIGTERM itself: not a failure.
      if (code !== 0 && signal !== "SIGTERM") failedExits += 1;
      return;
    }
    const now = Date.now();
    restarts.push(now);
    while (restarts.length && (restarts[0] ?? 0) < now - 10_000) restarts.shift();
    logger.error({ pid: worker.process.pid, code, signal }, "worker died");
    if (restarts.length > 5) {
      logger.fatal("workers keep dying: giving up");
      process.exit(1);
    }
    fork();
  });

  const shutdown = async (signal: string) => {
    if (shuttingDown) return;
    shuttingDown = true;
    logger.info({ signal }, "cluster shutting down");
    const force = setTimeout(() => {
      logger.error("grace period over: killing remaining workers");
      for (const w of Object.values(cluster.workers ?? {})) w?.process.kill("SIGKILL");
      process.exit(1);
    }, config.shutdownGraceMs + 1000);
    force.unref();
    const alive = Object.values(cluster.workers ?? {}).filter((w) => w && !w.isDead());
    await Promise.all(
      alive.map(
        (w) =>
          new Promise<void>((resolve) => {
            w?.once("exit", () => resolve());
            w?.process.kill("SIGTERM");
          }),
      ),
    );
    await embedded?.stop();
    logger.info({ failedExits }, "cluster shutdown complete");
    process.exit(failedExits ? 1 : 0);
  };
  process.on("SIGTERM", () => void shutdown("SIGTERM"));
  process.on("SIGINT", () => void shutdown("SIGINT"));
}

async function main() {
  if (config.webConcurrency > 1 && cluster.isPrimary) return primary();
  const { url, embedded } = await prepareDatabase();
  return serve(url, embedded ? () => embedded.stop() : undefined);
}

main().catch((err: Error) => {
  logger.fatal({ err: { message: err.message } }, "failed to start");
  process.exit(1);
});
