/**
 * The process: config, database (embedded in development when DATABASE_URL is unset), migrations and seed
 * where configured, HTTP listener, and a graceful shutdown on SIGTERM/SIGINT: stop accepting, finish in-flight
 * requests, close the pool, stop the embedded database, exit 0 — or exit 1 when the grace period runs out.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { seedLoans } from "../seeds/loans.js";
import { createApp } from "./app.js";
import { loadConfig, redactUrl } from "./config.js";
import { createDb, migrateLatest } from "./db.js";
import { type EmbeddedDatabase, startEmbeddedPostgres } from "./embedded.js";
import { purgeIdempotencyKeys } from "./loans.js";
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

async function main() {
  let embedded: EmbeddedDatabase | undefined;
  let databaseUrl = config.databaseUrl;
  if (!databaseUrl) {
    embedded = await startEmbeddedPostgres({ dir: config.embeddedPgDir, port: config.embeddedPgPort, logger });
    databaseUrl = embedded.url;
  }
  const db = createDb({ ...config, databaseUrl });
  logger.info({ database: redactUrl(databaseUrl), poolMax: config.dbPoolMax }, "database configured");

  if (config.migrateOnStart || embedded) {
    const applied = await retry("migration", () => migrateLatest(db));
    logger.info({ applied }, applied.length ? "migrations applied" : "schema up to date");
  }
  if (config.seedOnStart || embedded) {
    const inserted = await retry("seed", () => seedLoans(db));
    logger.info({ inserted }, "seed loans present");
  }

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
        await embedded?.stop();
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

main().catch((err: Error) => {
  logger.fatal({ err: { message: err.message } }, "failed to start");
  process.exit(1);
});
