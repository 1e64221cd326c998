/**
 * The request id and the access log: every request gets an id (the caller's `X-Request-Id` when it is safe to
 * echo, else a UUID) sent back in `X-Request-Id`, and one JSON line when its response is finished or the client
 * went away — info for 2xx/3xx, warn for 4xx and aborted requests, error for 5xx. `req.log` is a child logger
 * bound to the request id, created only when a handler logs something.
 *
 * Successful probes — `GET`/`HEAD` `/health` and `/ready` answered below 400 — get no line unless LOG_PROBES=true:
 * orchestrators and load balancers send them every few seconds per instance, the duration histogram counts each of
 * them, and on a new connection the line was the largest single cost of a probe after the socket writes (about 100
 * of 350 µs, bench/RESULTS.md). A failed or aborted probe is logged as any request.
 *
 * Access lines go through a child logger without the root logger's redaction: a line holds only the fields below
 * (no headers, no body), and the root's redaction (its wildcard path `*.password` clones every top-level object)
 * made each line cost about twice as much to write (`npm run bench:log-line`).
 *
 * Written here rather than with pino-http: the same line costs less per request without pino-http's per-request
 * child logger and serializer wrapping (measured before/after in bench/RESULTS.md). The line keeps pino-http's
 * shape (`req`, `res`, `responseTime`) so log queries written for it still work.
 */
import { randomUUID } from "node:crypto";
import type { Express, Request, RequestHandler } from "express";
import type { Logger } from "./logger.js";

declare module "express-serve-static-core" {
  interface Request {
    /** The request id, also sent as `X-Request-Id`. */
    id: string;
    /** A logger bound to this request's id. */
    log: Logger;
  }
}

const REQUEST_ID = /^[\w.:@/+=-]{1,128}$/;

/** The caller's `X-Request-Id` when it is safe to echo, else a new UUID. */
export function requestId(given: string | string[] | undefined): string {
  return typeof given === "string" && REQUEST_ID.test(given) ? given : randomUUID();
}

const PROBES = new Set(["/health", "/ready"]);

/** A liveness or readiness probe: GET or HEAD of `/health` or `/ready`, any casing, one optional trailing slash. */
export function isProbe(method: string | undefined, url: string): boolean {
  if (method !== "GET" && method !== "HEAD") return false;
  const q = url.indexOf("?");
  let path = (q < 0 ? url : url.slice(0, q)).toLowerCase();
  if (path.length > 1 && path.endsWith("/")) path = path.slice(0, -1);
  return PROBES.has(path);
}

/** Whether a finished response gets no access line: a successful probe, unless probes are logged. */
export function quietProbe(logProbes: boolean, method: string | undefined, url: string, statusCode: number): boolean {
  return !logProbes && statusCode < 400 && isProbe(method, url);
}

/**
 * The logger access lines are written with: the root's bindings and level, without its redaction paths (an access
 * line carries none of the fields they name; see above).
 */
export function accessLogger(logger: Logger): Logger {
  return logger.child({}, { redact: [] });
}

export interface AccessLine {
  req: { id: string; method: string | undefined; url: string; remoteAddress: string | undefined };
  res: { statusCode?: number };
  responseTime: number;
  clientIp: string | undefined;
}

/**
 * Writes the access line of a response whose connection closed: the level follows the outcome.
 * `finished`: the response was written completely; `headersSent`: its status went out.
 */
export function logAccess(
  logger: Logger,
  line: Omit<AccessLine, "res">,
  statusCode: number,
  finished: boolean,
  headersSent: boolean,
) {
  // No status for a request abandoned before its response began: none was sent.
  const full: AccessLine = {
    req: line.req,
    res: { statusCode: finished || headersSent ? statusCode : undefined },
    responseTime: line.responseTime,
    clientIp: line.clientIp,
  };
  if (!finished) logger.warn(full, "request aborted");
  else if (statusCode >= 500) logger.error(full, "request completed");
  else if (statusCode >= 400) logger.warn(full, "request completed");
  else logger.info(full, "request completed");
}

/**
 * `logger`: the root logger (handlers' `req.log` children keep its redaction); `access`: where the lines go
 * (accessLogger(logger)).
 */
export function accessLog(
  app: Express,
  logger: Logger,
  options: { access: Logger; logProbes: boolean },
): RequestHandler {
  const { access, logProbes } = options;
  // On the application's request prototype: no per-request closure, and no child logger unless one is used.
  const children = new WeakMap<Request, Logger>();
  Object.defineProperty(app.request, "log", {
    configurable: true,
    get(this: Request): Logger {
      let child = children.get(this);
      if (!child) {
        child = logger.child({ req: { id: this.id } });
        children.set(this, child);
      }
      return child;
    },
  });

  return (req, res, next) => {
    const id = requestId(req.headers["x-request-id"]);
    req.id = id;
    res.setHeader("X-Request-Id", id);
    const start = performance.now();
    // Read while the socket is open: after a client disconnects, its address is no longer available.
    const remoteAddress = req.socket.remoteAddress;
    // The client address as Express resolves it behind TRUST_PROXY hops (X-Forwarded-For from nginx).
    const clientIp = req.ip;
    res.once("close", () => {
      const finished = res.writableFinished;
      if (finished && quietProbe(logProbes, req.method, req.originalUrl, res.statusCode)) return;
      logAccess(
        access,
        {
          req: { id, method: req.method, url: req.originalUrl, remoteAddress },
          responseTime: Math.round(performance.now() - start),
          clientIp,
        },
        res.statusCode,
        finished,
        res.headersSent,
      );
    });
    next();
  };
}
