/**
 * The service in-process for HTTP tests: the real app on port 0 against the real PostgreSQL named by
 * DATABASE_URL (the test runner provides one), migrated and seeded once per process.
 */
import { randomUUID } from "node:crypto";
import type { AddressInfo } from "node:net";
import type { Knex } from "knex";
import { seedLoans } from "../../service/seeds/loans.js";
import { createApp } from "../../service/src/app.js";
import { createDb, migrateLatest } from "../../service/src/db.js";
import { createHttpServer } from "../../service/src/http-server.js";
import { createLogger, type Logger } from "../../service/src/logger.js";
import { createMetrics, type Metrics } from "../../service/src/metrics.js";

export interface TestApp {
  url: string;
  db: Knex;
  port: number;
  /** The app's metrics (served on the metrics listener in production, not on the app). */
  metrics: Metrics;
  close(): Promise<void>;
}

let shared: Promise<{ db: Knex }> | undefined;
let users = 0;

/** Lets the process exit once the last app of a test file is closed (an open pool keeps it alive). */
async function release() {
  users -= 1;
  if (users > 0 || !shared) return;
  const { db } = await shared;
  shared = undefined;
  await db.destroy();
}

function database() {
  shared ??= (async () => {
    const url = process.env.DATABASE_URL;
    if (!url) throw new Error("DATABASE_URL is not set: run the tests with `npm test`");
    const db = createDb({
      databaseUrl: url,
      dbPoolMin: 0,
      dbPoolMax: 20,
      dbAcquireTimeoutMs: 5000,
      dbStatementTimeoutMs: 10000,
    });
    await migrateLatest(db);
    await seedLoans(db);
    return { db };
  })();
  return shared;
}

/** The app behind the same HTTP server as in production (http-server.ts: timeouts, problem answers to bad HTTP). */
export async function startApp(options: { requestTimeoutMs?: number; logger?: Logger } = {}): Promise<TestApp> {
  users += 1;
  const { db } = await database();
  const logger = options.logger ?? createLogger({ level: process.env.LOG_LEVEL ?? "silent" });
  const metrics = createMetrics(db);
  const app = createApp({ db, logger, config: { trustProxy: 1, dbAcquireTimeoutMs: 2000 }, metrics });
  const { server } = createHttpServer(app, { requestTimeoutMs: options.requestTimeoutMs ?? 15_000, metrics, logger });
  server.listen(0, "127.0.0.1");
  await new Promise<void>((resolve) => server.once("listening", () => resolve()));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    db,
    port,
    metrics,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }).then(release),
  };
}

export interface Res<T = unknown> {
  status: number;
  headers: Headers;
  body: T;
  text: string;
}

/** An HTTP call that never throws on a 4xx/5xx, so tests assert statuses. JSON bodies are parsed when present. */
export async function http<T = any>(
  base: string,
  method: string,
  path: string,
  options: { json?: unknown; body?: string; headers?: Record<string, string> } = {},
): Promise<Res<T>> {
  const headers: Record<string, string> = { ...options.headers };
  let body: string | undefined = options.body;
  if (options.json !== undefined) {
    body = JSON.stringify(options.json);
    headers["content-type"] ??= "application/json";
  }
  const res = await fetch(base + path, { method, headers, body });
  const text = await res.text();
  let parsed: unknown = text;
  if (/json/.test(res.headers.get("content-type") ?? "") && text) parsed = JSON.parse(text);
  return { status: res.status, headers: res.headers, body: parsed as T, text };
}

export async function countLoans(db: Knex): Promise<number> {
  const [{ n }] = (await db("loans").count({ n: "*" })) as [{ n: string }];
  return Number(n);
}

/** A borrower id unique to one test, so tests act on their own records. */
export function uniqueBorrower(prefix = "t"): string {
  return `${prefix}_${Date.now().toString(36)}_${randomUUID().slice(0, 8)}`;
}
