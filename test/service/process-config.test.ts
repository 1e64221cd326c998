/**
 * Process level: the configuration is validated once at start-up. A bad setting stops the real process at once
 * with a non-zero exit and a message on stderr naming the variable; a good one starts it.
 */
import { stripVTControlCharacters as stripAnsi } from "node:util";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { request } from "../support/http.js";
import { startTestPostgres, type TestPostgres } from "../support/postgres.js";
import { type ChildEnv, type Exit, runUntilExit, startServer } from "../support/process.js";
import { within } from "../support/wait.js";

const test = suite("process: configuration at start-up");

/**
 * A rejected configuration stops the process before it logs or connects anything. Node + tsx + config take
 * about a second on an idle machine; the bound leaves room for a busy one, and is far below what a process that
 * got further would take (it would retry its database for half a minute).
 */
const QUICK_MS = 15_000;
const UNREACHABLE = "postgres://u:p@127.0.0.1:1/x";
const LEAKED_PASSWORD = "Sekr3t-not-in-logs-7781";

/** The rejected configurations; their processes run side by side (started by the first test that needs one). */
const REJECTED = {
  port: { PORT: "abc", DATABASE_URL: UNREACHABLE },
  portRange: { PORT: "70000", DATABASE_URL: UNREACHABLE },
  logLevel: { LOG_LEVEL: "loud", DATABASE_URL: UNREACHABLE },
  production: { NODE_ENV: "production", DATABASE_URL: undefined },
  scheme: { DATABASE_URL: `mysql://app:${LEAKED_PASSWORD}@127.0.0.1:3306/loans` },
  number: { DB_ACQUIRE_TIMEOUT_MS: "soon", DATABASE_URL: UNREACHABLE },
  workers: { WEB_CONCURRENCY: "many", DATABASE_URL: UNREACHABLE },
} satisfies Record<string, ChildEnv>;

let runs: Map<string, ReturnType<typeof runUntilExit>> | undefined;

/** Runs the rejected configurations two at a time (the machine has few cores; each run is timed from its spawn). */
function startAll() {
  const all = new Map<string, ReturnType<typeof runUntilExit>>();
  let chain: Promise<unknown>[] = [Promise.resolve(), Promise.resolve()];
  Object.entries(REJECTED).forEach(([key, env], i) => {
    const lane = i % chain.length;
    const run = (chain[lane] as Promise<unknown>).then(() => runUntilExit(env, 30_000));
    chain = chain.map((c, j) => (j === lane ? run.catch(() => {}) : c));
    all.set(key, run);
  });
  return all;
}

async function expectRejected(name: keyof typeof REJECTED, variable: string, message: RegExp) {
  runs ??= startAll();
  const { exit, stdout, stderr } = (await runs.get(name)) as Awaited<ReturnType<typeof runUntilExit>>;
  const err = stripAnsi(stderr);
  assert.is(exit.code, 1, `exit code (stderr: ${err})`);
  assert.ok(exit.ms < QUICK_MS, `exited after ${exit.ms} ms, expected < ${QUICK_MS} ms`);
  assert.match(err, variable, `stderr names ${variable}`);
  assert.match(err, message);
  assert.is(stdout, "", "nothing logged: it stopped before starting anything");
  return err;
}

test(
  "when PORT is not a number, the process exits 1 at once and stderr names PORT",
  within(25_000, async () => {
    await expectRejected("port", "PORT", /abc/);
  }),
);

test(
  "when PORT is out of range, the process exits 1 and stderr names PORT",
  within(25_000, async () => {
    await expectRejected("portRange", "PORT", /70000/);
  }),
);

test(
  "when LOG_LEVEL is not a known level, the process exits 1 and stderr names LOG_LEVEL and the choices",
  within(25_000, async () => {
    await expectRejected("logLevel", "LOG_LEVEL", /info/);
  }),
);

test(
  "when NODE_ENV=production and DATABASE_URL is unset, the process exits 1 saying DATABASE_URL is required",
  within(25_000, async () => {
    await expectRejected("production", "DATABASE_URL", /required/);
  }),
);

test(
  "when DATABASE_URL is not a PostgreSQL URL, the process exits 1 naming DATABASE_URL and the scheme, without echoing its password",
  within(25_000, async () => {
    const err = await expectRejected("scheme", "DATABASE_URL", /postgresql:\/\/ scheme.*mysql/);
    assert.not.ok(err.includes(LEAKED_PASSWORD), "the password is not printed");
  }),
);

test(
  "when a number setting is not a number (DB_ACQUIRE_TIMEOUT_MS=soon), the process exits 1 naming it",
  within(25_000, async () => {
    await expectRejected("number", "DB_ACQUIRE_TIMEOUT_MS", /soon/);
  }),
);

test(
  "when WEB_CONCURRENCY is neither a worker count nor auto, the process exits 1 naming it",
  within(25_000, async () => {
    await expectRejected("workers", "WEB_CONCURRENCY", /many/);
  }),
);

test(
  "a postgresql+psycopg2:// DATABASE_URL (the original's setting) is accepted: the server starts and serves the seed loans",
  within(40_000, async () => {
    let own: TestPostgres | undefined;
    let base = process.env.DATABASE_URL;
    if (!base) {
      own = await startTestPostgres();
      base = own.url;
    }
    const url = base.replace(/^postgres(?:ql)?:\/\//, "postgresql+psycopg2://");
    assert.match(url, /^postgresql\+psycopg2:\/\//);
    const server = await startServer({ DATABASE_URL: url, MIGRATE_ON_START: "true", SEED_ON_START: "true" });
    let exit: Exit | undefined;
    try {
      const configured = server.logs().find((l) => l.msg === "database configured");
      assert.match(String(configured?.database), /^postgresql:\/\//, "logged as a plain postgresql:// URL");
      const ready = await request(server.url, "GET", "/ready");
      assert.is(ready.status, 200, ready.text);
      const seed = await request(server.url, "GET", "/api/loans/00000000-0000-0000-0000-000000000001");
      assert.is(seed.status, 200, seed.text);
      assert.is(seed.body.borrower_id, "usr_kenya_001");
    } finally {
      exit = await server.stop();
      await own?.stop();
    }
    assert.is(exit.code, 0, server.describe());
  }),
);

test.run();
