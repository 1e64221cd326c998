import { loadConfig, redactUrl } from "../src/config.js";
import { createDb, type Db } from "../src/db.js";

/** Runs `fn` against DATABASE_URL (required: `npm start` migrates and seeds its embedded database itself). */
export async function withDatabase(name: string, fn: (db: Db) => Promise<string>): Promise<void> {
  const config = loadConfig();
  if (!config.databaseUrl) {
    process.stderr.write(
      `npm run ${name}: set DATABASE_URL (e.g. postgresql://user:password@localhost:5432/loans).\n` +
        "Without it, `npm start` uses an embedded PostgreSQL and migrates and seeds it by itself.\n",
    );
    process.exit(2);
  }
  const db = createDb(config);
  try {
    process.stdout.write(`${await fn(db)} (${redactUrl(config.databaseUrl)})\n`);
  } catch (err) {
    process.stderr.write(`npm run ${name} failed: ${(err as Error).message}\n`);
    process.exitCode = 1;
  } finally {
    await db.destroy();
  }
}
