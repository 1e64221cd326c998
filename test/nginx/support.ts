/**
 * Helpers for the runtime checks (test/nginx, test/image): required tools, child processes, waiting, and an
 * HTTP(S) client that never throws on a status and can pick its local address (127.0.0.0/8).
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { request as httpRequest, type IncomingHttpHeaders } from "node:http";
import { request as httpsRequest } from "node:https";
import { createConnection, createServer, type Server, type Socket } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";

export const root = fileURLToPath(new URL("../..", import.meta.url));

/** Fails (never skips) when a tool is missing, saying how to install it. */
export async function requireTool(command: string, versionArgs: string[], install: string): Promise<string> {
  try {
    const { stdout, stderr } = await run(command, versionArgs, { timeoutMs: 30_000 });
    return (stdout || stderr).trim().split("\n")[0] ?? "";
  } catch (err) {
    throw new Error(
      `'${command}' is required for this check but is not usable (${(err as Error).message.split("\n")[0]}). ` +
        `Install it: ${install} (or run: sudo bash scripts/runtime/setup-tools.sh)`,
    );
  }
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion; rejects on a non-zero exit unless `allowFailure`. */
export function run(
  command: string,
  args: string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv; input?: string; timeoutMs?: number; allowFailure?: boolean } = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      command,
      args,
      {
        cwd: options.cwd ?? root,
        env: options.env ?? process.env,
        timeout: options.timeoutMs ?? 120_000,
        maxBuffer: 64 * 1024 * 1024,
        encoding: "utf8",
      },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === "number" ? error.code : 1) : 0;
        if (error && !options.allowFailure) {
          const detail = `${stderr}\n${stdout}`.trim().split("\n").slice(-20).join("\n");
          reject(new Error(`${command} ${args.join(" ")} exited ${error.code ?? error.signal}:\n${detail}`));
          return;
        }
        resolve({ code, stdout, stderr });
      },
    );
    if (options.input !== undefined) child.stdin?.end(options.input);
    else child.stdin?.end();
  });
}

/** A long-running child whose output is kept (and echoed when DEBUG_RUNTIME is set). */
export interface Background {
  child: ChildProcess;
  output(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<void>;
}

export function background(command: string, args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv }) {
  const child = spawn(command, args, {
    cwd: options.cwd ?? root,
    env: options.env ?? process.env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  const keep = (chunk: Buffer) => {
    out += chunk.toString();
    if (out.length > 4_000_000) out = out.slice(-2_000_000);
    if (process.env.DEBUG_RUNTIME) process.stderr.write(chunk);
  };
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("exit", (code, signal) => resolve({ code, signal })),
  );
  const bg: Background = {
    child,
    output: () => out,
    exited,
    async stop(signal: NodeJS.Signals = "SIGTERM", timeoutMs = 10_000) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill(signal);
      const done = await Promise.race([exited.then(() => true), sleep(timeoutMs).then(() => false)]);
      if (!done) {
        child.kill("SIGKILL");
        await exited;
      }
    },
  };
  return bg;
}

/** Polls `probe` until it returns a value (not undefined) or the deadline passes. */
export async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (err) {
      last = err;
    }
    await sleep(200);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${(last as Error).message}` : ""}`);
}

export interface HttpAnswer {
  status: number;
  headers: IncomingHttpHeaders;
  rawHeaders: string[];
  body: Buffer;
  text: string;
}

export interface HttpOptions {
  method?: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
  /** Local source address, e.g. 127.0.0.7: a distinct client as far as nginx can tell. */
  localAddress?: string;
  /** For https: the CA to trust and the name to verify (SNI). */
  ca?: string | Buffer;
  servername?: string;
  agent?: import("node:http").Agent | import("node:https").Agent | false;
  timeoutMs?: number;
}

/** One request; resolves with the status whatever it is. The body is not decompressed. */
export function fetchRaw(url: string, options: HttpOptions = {}): Promise<HttpAnswer> {
  const u = new URL(url);
  const secure = u.protocol === "https:";
  const requester = secure ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = requester(
      {
        protocol: u.protocol,
        hostname: u.hostname,
        port: u.port,
        path: `${u.pathname}${u.search}`,
        method: options.method ?? "GET",
        headers: options.headers,
        localAddress: options.localAddress,
        agent: options.agent ?? false,
        timeout: options.timeoutMs ?? 10_000,
        ...(secure ? { ca: options.ca, servername: options.servername } : {}),
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          const body = Buffer.concat(chunks);
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            rawHeaders: res.rawHeaders,
            body,
            text: body.toString("utf8"),
          });
        });
        res.on("error", reject);
      },
    );
    req.on("timeout", () => req.destroy(new Error(`request to ${url} timed out`)));
    req.on("error", reject);
    req.end(options.body);
  });
}

/** How many times a header appears in a raw header list (case-insensitive). */
export function headerCount(rawHeaders: string[], name: string): number {
  let n = 0;
  for (let i = 0; i < rawHeaders.length; i += 2) if (rawHeaders[i]?.toLowerCase() === name.toLowerCase()) n++;
  return n;
}

/**
 * A transparent TCP relay between nginx and the service that records what nginx sends upstream and counts
 * upstream connections: what reaches the service, on the wire.
 */
export interface Tap {
  port: number;
  connections(): number;
  /** Everything nginx sent to the service so far (request heads and bodies), as text. */
  sent(): string;
  reset(): void;
  close(): Promise<void>;
}

export async function startTap(targetPort: number): Promise<Tap> {
  let connections = 0;
  let sent = "";
  const sockets = new Set<Socket>();
  const server: Server = createServer((inbound) => {
    connections++;
    const outbound = createConnection({ host: "127.0.0.1", port: targetPort });
    sockets.add(inbound);
    sockets.add(outbound);
    inbound.on("data", (chunk: Buffer) => {
      if (sent.length < 8_000_000) sent += chunk.toString("latin1");
    });
    inbound.pipe(outbound);
    outbound.pipe(inbound);
    const close = () => {
      inbound.destroy();
      outbound.destroy();
      sockets.delete(inbound);
      sockets.delete(outbound);
    };
    inbound.on("error", close);
    outbound.on("error", close);
    inbound.on("close", close);
    outbound.on("close", close);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;
  return {
    port,
    connections: () => connections,
    sent: () => sent,
    reset() {
      connections = 0;
      sent = "";
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
