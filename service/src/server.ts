/**
 * The process: config, database (embedded in development when DATABASE_URL is unset), migrations and seed
 * where configured, HTTP listener (http-server.ts: bounded request times, problem answers to malformed requests),
 * the Prometheus listener on METRICS_PORT (apart from the public port), and a graceful shutdown on SIGTERM/SIGINT:
 * stop accepting, close connections with no request in progress at once, finish in-flight requests, close the
 * pool, stop the embedded database, exit 0 — or exit 1 when in-flight work outlasts the grace period.
 *
 * With WEB_CONCURRENCY > 1 (or `auto`: one per core) the process is a Node cluster: the primary prepares the
 * database once (embedded server, migrations, seed), forks the workers that serve HTTP, restarts a worker that
 * dies, serves the metrics of all workers together (prom-client's AggregatorRegistry) on METRICS_PORT, and on
 * SIGTERM/SIGINT forwards the signal and exits 0 once every worker has finished gracefully.
 */
import cluster from "node:cluster";
import http from "node:http";
import { setTimeout as sleep } from "node:timers/promises";
import { getHeapStatistics } from "node:v8";
import { AggregatorRegistry, type Registry } from "prom-client";
import { seedLoans } from "../seeds/loans.js";
import { createApp } from "./app.js";
import { loadConfig, redactUrl } from "./config.js";
import { purgeIdempotencyKeys } from "./data/idempotency.js";
import { createDb, type Db, migrateLatest } from "./db.js";
import { type EmbeddedDatabase, startEmbeddedPostgres } from "./embedded.js";
import { createHttpServer } from "./http-server.js";
import { createLogger } from "./logger.js";
import { createMetrics } from "./metrics.js";
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

/**
 * The Prometheus endpoint on its own listener (METRICS_HOST:METRICS_PORT, default 127.0.0.1:9464): `GET /metrics`
 * only. Not on the public port, so nothing outside reaches it unless the operator publishes it.
 */
async function listenMetrics(
  scrape: () => Promise<{ contentType: string; body: string }>,
): Promise<http.Server | undefined> {
  if (config.metricsPort === 0) return undefined;
  const server = http.createServer(async (req, res) => {
    const path = (req.url ?? "").split("?")[0];
    if (path !== "/metrics") {
      res
        .writeHead(404, { "Content-Type": "text/plain; charset=utf-8" })
        .end("Not found: the metrics are at /metrics\n");
      return;
    }
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { Allow: "GET, HEAD", "Content-Type": "text/plain; charset=utf-8" }).end("GET only\n");
      return;
    }
    try {
      const { contentType, body } = await scrape();
      res.writeHead(200, { "Content-Type": contentType }).end(req.method === "HEAD" ? undefined : body);
    } catch (err) {
      logger.warn({ err: { message: (err as Error).message } }, "metrics scrape failed");
      res.writeHead(503, { "Content-Type": "text/plain; charset=utf-8" }).end("metrics unavailable\n");
    }
  });
  server.keepAliveTimeout = 65_000;
  await new Promise<void>((resolve, reject) => {
    server.once("listening", resolve);
    server.once("error", (err: NodeJS.ErrnoException) =>
      reject(
        new Error(
          `the metrics listener cannot use ${config.metricsHost}:${config.metricsPort} (${err.code ?? err.message}): ` +
            "set METRICS_PORT to a free port, or METRICS_PORT=0 for no metrics listener",
        ),
      ),
    );
    server.listen(config.metricsPort, config.metricsHost);
  });
  logger.info({ port: config.metricsPort, host: config.metricsHost }, "metrics listening");
  return server;
}

const registryScrape = (registry: Registry) => async () => ({
  contentType: registry.contentType,
  body: await registry.metrics(),
});

/** Serves HTTP until SIGTERM/SIGINT; `onClosed` runs after the pool is closed, before exit. */
async function serve(databaseUrl: string, onClosed?: () => Promise<void>) {
  const db: Db = createDb({ ...config, databaseUrl });
  logger.info({ database: redactUrl(databaseUrl), poolMax: config.dbPoolMax }, "database configured");

  const lifecycle: Lifecycle = { shuttingDown: false };
  const metrics = createMetrics(db);
  const app = createApp({ db, logger, config, lifecycle, metrics });
  // In a cluster worker the primary serves the metrics of every worker; this worker answers its requests.
  if (cluster.isWorker) {
    AggregatorRegistry.setRegistries([metrics.registry]);
    new AggregatorRegistry();
  }
  const metricsServer = cluster.isWorker ? undefined : await listenMetrics(registryScrape(metrics.registry));
  // Keep-alive longer than nginx's upstream keepalive_timeout (60 s), so the proxy never reuses a socket we close.
  const web = createHttpServer(app, {
    requestTimeoutMs: config.requestTimeoutMs,
    keepAliveTimeoutMs: 65_000,
    metrics,
    logger,
  });
  const server = web.server;
  server.listen(config.port, config.host);
  await new Promise<void>((resolve, reject) => {
    server.once("listening", resolve);
    server.once("error", reject);
  });
  // The heap bound in force (--max-old-space-size from NODE_OPTIONS or the command line; see the README's RSS notes).
  const heapLimitMiB = Math.round(getHeapStatistics().heap_size_limit / 2 ** 20);
  logger.info({ port: config.port, host: config.host, env: config.nodeEnv, heapLimitMiB }, "listening");

  const purge = setInterval(() => {
    purgeIdempotencyKeys(db, config.idempotencyTtlHours).catch((err: Error) =>
      logger.warn({ err: { message: err.message } }, "idempotency key purge failed"),
    );
  }, 3_600_000);
  purge.unref();

  const shutdown = (signal: string) => {
    if (lifecycle.shuttingDown) return;
    lifecycle.shuttingDown = true;
    logger.info(
      { signal, graceMs: config.shutdownGraceMs, connections: web.connections() },
      "shutting down: finishing in-flight requests",
    );
    clearInterval(purge);
    metricsServer?.close();
    metricsServer?.closeAllConnections();
    const force = setTimeout(() => {
      logger.error("grace period over: closing remaining connections");
      server.closeAllConnections();
      process.exit(1);
    }, config.shutdownGraceMs);
    force.unref();
    // Connections without a request in progress close now; busy ones after their response (Connection: close); a
    // request still receiving its body gets half the grace period (bounded by the request timeout anyway).
    web.drain({ drainMs: Math.min(config.requestTimeoutMs, Math.floor(config.shutdownGraceMs / 2)) }, async () => {
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
  const aggregator = new AggregatorRegistry();
  const metricsServer = await listenMetrics(async () => ({
    contentType: aggregator.contentType,
    body: await aggregator.clusterMetrics(),
  }));
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
    metricsServer?.close();
    metricsServer?.closeAllConnections();
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

main().catch((err: unknown) => {
  logger.fatal({ err: { message: err instanceof Error ? err.message : String(err) } }, "failed to start");
  process.exit(1);
});
