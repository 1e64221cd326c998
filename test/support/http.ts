/**
 * HTTP for process-level tests, on node:http: a client that never throws on a status and tells *where* a failed
 * request failed (could not connect / sent but no response / response cut off), a TCP probe, and a request sent
 * in two parts (a connection that is not idle to the server).
 */
import http from "node:http";
import { connect } from "node:net";

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
