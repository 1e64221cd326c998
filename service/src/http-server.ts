/**
 * The HTTP listener around the Express app: bounded waits for every client, problem documents even for requests
 * Node's parser rejects, and a shutdown that no client can hold hostage.
 *
 * - `requestTimeout` (REQUEST_TIMEOUT_MS): the whole request, headers and body, must arrive within it, else 408
 *   and the connection closes (a body trickled a byte at a time is cut); headers within at most 10 s. Checked
 *   every second (Node's default check runs every 30 s).
 * - Pipelining: one connection may have PIPELINE_LIMIT requests in progress; past it, each further request is
 *   answered at once with a 503 problem and `Retry-After`, before the app runs (a canned answer: shedding 2,000
 *   pipelined requests costs milliseconds), counted in the metrics under its route and logged once per connection.
 *   A single client therefore cannot fill the database queue (db.ts bounds that queue for all clients together).
 * - Parser errors (broken request line, bad header, oversized header, timeout) get an
 *   `application/problem+json` answer with `Connection: close`.
 * - `drain()` (on SIGTERM): stops accepting and closes at once every connection that has sent nothing since its
 *   last response (idle keep-alive sockets, connections that sent nothing at all). A connection part-way through
 *   its next request's headers, or a request still receiving its body, gets at most `drainMs` more (half the
 *   grace period): a request that completes in time is answered (the app says `Connection: close` and /ready
 *   says 503), anything slower is closed. Before this, Node waited for such connections until its headers
 *   timeout (66 s), past any grace period. Connections with a request in progress close after its response.
 */
import http from "node:http";
import type { Socket } from "node:net";
import { PROBLEM_CONTENT_TYPE } from "./errors.js";
import type { Logger } from "./logger.js";
import type { Metrics } from "./metrics.js";

/** Requests one connection may have in progress (HTTP/1.1 pipelining); answers go out in order anyway. */
export const PIPELINE_LIMIT = 8;

export interface HttpServerOptions {
  requestTimeoutMs: number;
  /** Shed requests are counted here (the app's own requests are counted by its middleware). */
  metrics?: Pick<Metrics, "observe">;
  logger?: Logger;
  /** Idle keep-alive sockets are closed after this (longer than nginx's upstream keepalive_timeout, 60 s). */
  keepAliveTimeoutMs?: number;
}

export interface HttpServer {
  server: http.Server;
  /**
   * Stop accepting and close what can be closed now (see above). `closed` runs once every connection is gone.
   * Calling it again does nothing.
   */
  drain(options: { drainMs: number }, closed: () => void): void;
  /** Connections open right now (for tests and logs). */
  connections(): number;
}

interface SocketState {
  /** Requests whose response has not finished. */
  requests: Set<http.IncomingMessage>;
  /** `socket.bytesRead` when the connection last had nothing in progress (connected, or a response finished). */
  idleAtBytes: number;
  /** Requests answered 503 for pipelining past the limit on this connection. */
  shed: number;
}

const SHED_BODY = JSON.stringify({
  type: "/problems/overloaded",
  title: "Service Unavailable",
  status: 503,
  detail: `More than ${PIPELINE_LIMIT} requests are in progress on this connection: wait for the answers before sending more.`,
});
const SHED_HEADERS = {
  "Content-Type": PROBLEM_CONTENT_TYPE,
  "Content-Length": String(Buffer.byteLength(SHED_BODY)),
  "Retry-After": "1",
  "Cache-Control": "no-store",
};

const CLIENT_ERRORS: Record<string, [number, string]> = {
  ERR_HTTP_REQUEST_TIMEOUT: [408, "The request did not arrive completely in time."],
  HPE_HEADER_OVERFLOW: [431, "The request headers are too large."],
  HPE_CHUNK_EXTENSIONS_OVERFLOW: [400, "The request's chunk extensions are too large."],
};

function rawProblem(status: number, detail: string): string {
  const title = http.STATUS_CODES[status] ?? "Error";
  const body = JSON.stringify({ type: "about:blank", title, status, detail });
  return (
    `HTTP/1.1 ${status} ${title}\r\nContent-Type: ${PROBLEM_CONTENT_TYPE}\r\n` +
    `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`
  );
}

export function createHttpServer(app: http.RequestListener, options: HttpServerOptions): HttpServer {
  const headersTimeout = Math.min(10_000, options.requestTimeoutMs);
  const server = http.createServer({
    requestTimeout: options.requestTimeoutMs,
    headersTimeout,
    keepAliveTimeout: options.keepAliveTimeoutMs ?? 65_000,
    connectionsCheckingInterval: 1000,
  });
  const sockets = new Map<Socket, SocketState>();
  let draining = false;
  let drainMs = 0;

  /** After its last response: end our side once the response is flushed, and do not wait long for the peer. */
  const closeIfIdle = (socket: Socket, state: SocketState) => {
    if (state.requests.size > 0 || socket.destroyed) return;
    socket.end();
    setTimeout(() => socket.destroy(), 1000).unref();
  };

  /** A request still receiving its body when the shutdown began gets `drainMs`, then its connection closes. */
  const boundBody = (req: http.IncomingMessage) => {
    if (req.complete) return;
    const timer = setTimeout(() => {
      if (!req.complete) req.socket.destroy();
    }, drainMs);
    timer.unref();
    req.once("end", () => clearTimeout(timer));
    req.once("close", () => clearTimeout(timer));
  };

  server.on("connection", (socket: Socket) => {
    if (draining) {
      socket.destroy();
      return;
    }
    const state: SocketState = { requests: new Set(), shed: 0, idleAtBytes: 0 };
    sockets.set(socket, state);
    socket.once("close", () => sockets.delete(socket));
  });

  server.on("request", (req: http.IncomingMessage, res: http.ServerResponse) => {
    const state = sockets.get(req.socket);
    if (!state) {
      app(req, res);
      return;
    }
    if (state.requests.size >= PIPELINE_LIMIT) {
      shed(req, res, state);
      return;
    }
    state.requests.add(req);
    if (draining) boundBody(req);
    res.once("close", () => {
      state.requests.delete(req);
      if (state.requests.size === 0) state.idleAtBytes = req.socket.bytesRead;
      if (draining) closeIfIdle(req.socket, state);
    });
    app(req, res);
  });

  const shed = (req: http.IncomingMessage, res: http.ServerResponse, state: SocketState) => {
    const started = performance.now();
    if (state.shed++ === 0) {
      options.logger?.warn(
        { remoteAddress: req.socket.remoteAddress, limit: PIPELINE_LIMIT },
        "connection pipelines past the limit: shedding its further requests with 503",
      );
    }
    res.writeHead(503, SHED_HEADERS).end(SHED_BODY);
    options.metrics?.observe(req.method ?? "GET", req.url ?? "/", 503, (performance.now() - started) / 1000);
  };

  server.on("clientError", (err: NodeJS.ErrnoException, socket: Socket) => {
    const inProgress = (socket as Socket & { _httpMessage?: http.ServerResponse })._httpMessage;
    if (err.code === "ECONNRESET" || !socket.writable || inProgress?.headersSent) {
      socket.destroy();
      return;
    }
    const [status, detail] = CLIENT_ERRORS[err.code ?? ""] ?? [400, "The request is not valid HTTP/1.1."];
    socket.end(rawProblem(status, detail));
    setTimeout(() => socket.destroy(), 1000).unref();
  });

  return {
    server,
    connections: () => sockets.size,
    drain(opts, closed) {
      if (draining) return;
      draining = true;
      drainMs = opts.drainMs;
      server.close(() => closed());
      for (const [socket, state] of sockets) {
        if (state.requests.size > 0) {
          for (const req of state.requests) boundBody(req);
        } else if (socket.bytesRead === state.idleAtBytes) {
          // Nothing sent since the last response (or ever): idle.
          socket.destroy();
        } else {
          // Part-way through the headers of a request: it may still complete within the bound.
          const timer = setTimeout(() => {
            if (state.requests.size === 0) socket.destroy();
          }, drainMs);
          timer.unref();
          socket.once("close", () => clearTimeout(timer));
        }
      }
    },
  };
}
