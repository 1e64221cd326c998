/**
 * The defaults a production user expects, and start-up refusals that name what to do: no proxy trusted unless
 * configured, metrics on a loopback listener apart from the public port, bounded request time and database
 * queue; LOG_PRETTY=true where pino-pretty is not installed (the production image) is a configuration error
 * at start, not a crash in a logging transport.
 */
import { execFileSync, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { loadConfig } from "../../service/src/config.js";
import { freePort } from "../support/postgres.js";
import { ROOT } from "../support/process.js";

const test = suite("defaults and start-up refusals");

test("defaults: TRUST_PROXY 0, metrics on 127.0.0.1:9464, 15 s request timeout, 50 requests may wait for the database", () => {
  const config = loadConfig({ DATABASE_URL: "postgres://u:p@127.0.0.1:5432/x" });
  assert.is(config.trustProxy, 0);
  assert.is(config.metricsPort, 9464);
  assert.is(config.metricsHost, "127.0.0.1");
  assert.is(config.requestTimeoutMs, 15_000);
  assert.is(config.dbQueueMax, 50);
  const tuned = loadConfig({
    DATABASE_URL: "postgres://u:p@127.0.0.1:5432/x",
    TRUST_PROXY: "1",
    METRICS_PORT: "0",
    METRICS_HOST: "0.0.0.0",
    REQUEST_TIMEOUT_MS: "30000",
    DB_QUEUE_MAX: "10",
  });
  assert.equal(
    [tuned.trustProxy, tuned.metricsPort, tuned.metricsHost, tuned.requestTimeoutMs, tuned.dbQueueMax],
    [1, 0, "0.0.0.0", 30_000, 10],
  );
});

/**
 * Runs the service (`node --import tsx [--import hook] service/src/server.ts`) until it exits, or `ms` pass, or
 * its stdout matches `until` (then it is killed: `killed` tells it was still running).
 */
function run(env: Record<string, string>, hook: string | undefined, ms: number, until?: RegExp) {
  return new Promise<{ code: number | null; stdout: string; stderr: string; killed: boolean }>((resolve) => {
    const args = ["--import", "tsx", ...(hook ? ["--import", hook] : []), "service/src/server.ts"];
    const base: NodeJS.ProcessEnv = { ...process.env };
    for (const k of Object.keys(base)) if (/^(LOG_|DATABASE_|METRICS_|PORT$|HOST$|NODE_ENV$)/.test(k)) delete base[k];
    const child = spawn(process.execPath, args, {
      cwd: ROOT,
      env: { ...base, ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c: Buffer) => {
      stdout += c;
      if (until?.test(stdout) && !killed) {
        killed = true;
        child.kill("SIGKILL");
      }
    });
    child.stderr.on("data", (c: Buffer) => (stderr += c));
    let killed = false;
    const timer = setTimeout(() => {
      killed = true;
      child.kill("SIGKILL");
    }, ms);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, killed });
    });
  });
}

test("LOG_PRETTY=true without pino-pretty installed stops at start with a sentence saying what to do", async () => {
  const env = {
    NODE_ENV: "production",
    LOG_PRETTY: "true",
    DATABASE_URL: "postgres://u:p@127.0.0.1:1/x",
    PORT: String(await freePort()),
    METRICS_PORT: "0",
  };
  const hidden = await run(env, "./test/support/hide-pino-pretty.mjs", 20_000);
  assert.is(hidden.code, 1, hidden.stderr);
  assert.not.ok(hidden.killed);
  assert.match(hidden.stderr, /Invalid configuration/);
  assert.match(hidden.stderr, /LOG_PRETTY=true needs the pino-pretty package/);
  assert.match(hidden.stderr, /unset LOG_PRETTY/);
  assert.not.match(hidden.stderr + hidden.stdout, /transport|worker thread|unable to determine transport target/i);
  // Control: with pino-pretty resolvable the same configuration passes: the process logs, pretty, that it listens
  // (and is still running until killed then).
  const present = await run(env, undefined, 20_000, /INFO.*listening/);
  assert.ok(present.killed, `still running until killed: ${present.stderr}`);
  assert.match(present.stdout, /INFO.*listening/, "logged through pino-pretty");
  assert.not.match(present.stderr, /Invalid configuration/);
});

test("METRICS_PORT equal to PORT is refused: metrics never share the public port", async () => {
  const port = String(await freePort());
  const r = await run(
    { DATABASE_URL: "postgres://u:p@127.0.0.1:1/x", PORT: port, METRICS_PORT: port },
    undefined,
    20_000,
  );
  assert.is(r.code, 1);
  assert.match(r.stderr, /METRICS_PORT must differ from PORT/);
});

/** The young generation the shipped flags allow (`--max-semi-space-size=16`: V8 keeps three semi-spaces). */
const YOUNG_GENERATION_MIB = 48;

test("npm start bounds the heap: its --max-old-space-size is in force in the process it starts (the listening line)", async () => {
  const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { scripts: Record<string, string> };
  const start = /^node ((?:--\S+ )*)--import tsx service\/src\/server\.ts$/.exec(pkg.scripts.start ?? "");
  assert.ok(start, `npm start is "node [flags] --import tsx service/src/server.ts": ${pkg.scripts.start}`);
  const flags = (start?.[1] ?? "").trim().split(" ").filter(Boolean);
  const bound = Number(/^--max-old-space-size=(\d+)$/.exec(flags.find((f) => f.startsWith("--max-old")) ?? "")?.[1]);
  assert.ok(bound > 0, `a heap bound among ${flags.join(" ")}`);
  // Named, not only inferred from the limit below: Node 20's default young generation is already 48 MiB, so only a
  // newer Node (the image's) would show its absence there.
  assert.ok(flags.includes(`--max-semi-space-size=${YOUNG_GENERATION_MIB / 3}`), `the young generation bounded too`);
  const base: NodeJS.ProcessEnv = { ...process.env };
  for (const k of Object.keys(base)) if (/^(LOG_|METRICS_|PORT$|HOST$|NODE_OPTIONS$)/.test(k)) delete base[k];
  const child = spawn(process.execPath, [...flags, "--import", "tsx", "service/src/server.ts"], {
    cwd: ROOT,
    env: { ...base, LOG_LEVEL: "info", PORT: String(await freePort()), METRICS_PORT: "0", MIGRATE_ON_START: "false" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stderr.on("data", (c: Buffer) => (stderr += c));
  const listening = await new Promise<Record<string, unknown> | undefined>((resolve) => {
    const timer = setTimeout(() => resolve(undefined), 30_000);
    child.stdout.on("data", (c: Buffer) => {
      stdout += c;
      const line = stdout
        .split("\n")
        .filter((l) => l.startsWith("{"))
        .map((l) => JSON.parse(l) as Record<string, unknown>)
        .find((l) => l.msg === "listening");
      if (line) {
        clearTimeout(timer);
        resolve(line);
      }
    });
    child.on("exit", () => resolve(undefined));
  });
  child.kill("SIGKILL");
  assert.ok(listening, `the service listened: ${stderr.slice(-2000)}`);
  // V8's limit is the old space plus a young generation whose size depends on the Node version (Node 20: 48 MiB more
  // than the flag, Node 24: 192): compare with what this same Node reports with the flag and without it.
  const limitWith = (args: string[]) => {
    const out = execFileSync(
      process.execPath,
      [
        ...args,
        "-e",
        "process.stdout.write(String(Math.round(require('node:v8').getHeapStatistics().heap_size_limit / 2 ** 20)))",
      ],
      { env: { ...base }, encoding: "utf8" },
    );
    const value = Number(/(\d+)\s*$/.exec(out)?.[1]);
    assert.ok(value > 0, `node ${args.join(" ")} printed its heap limit: ${JSON.stringify(out)}`);
    return value;
  };
  const expected = limitWith(flags);
  assert.is(Number(listening?.heapLimitMiB), expected, `heap limit for ${flags.join(" ")}`);
  assert.is.not(limitWith([]), expected, "without the flags this Node's limit differs (the check is not vacuous)");
  // The young generation is bounded too, whatever the Node version: three semi-spaces of 16 MiB (Node 24 sizes 192 MiB
  // for the same old-space flag unless --max-semi-space-size caps it, which put RSS over 150 MiB).
  assert.ok(
    expected <= bound + YOUNG_GENERATION_MIB,
    `heap limit ${expected} MiB ≤ ${bound} + ${YOUNG_GENERATION_MIB}`,
  );
});

test.run();
