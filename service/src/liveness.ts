/**
 * `GET /health` answered before Express: the liveness probe is the request that load balancers, orchestrators and
 * uptime checkers send most, often on a new connection each time, and Express's router and middleware chain cost
 * more than the rest of such a request (bench/RESULTS.md, "Liveness without Express"). The answer is the one the
 * Express route gives — the same body, helmet's headers (captured from the app's own helmet instance at start-up),
 * `X-Request-Id`, `Connection: close` while shutting down — and the request is logged and counted as any other:
 * the same access line (client address resolved through the same TRUST_PROXY setting; none for a successful
 * probe unless LOG_PROBES=true, as in access-log.ts) and the same duration histogram under the route `/health`.
 *
 * Only the exact `GET /health` takes this path. Every other spelling (`HEAD`, `/health/`, `/HEALTH`, a query
 * string) and every other method goes to Express, whose route answers the same way, or 405.
 */
import type { IncomingMessage, RequestListener, ServerResponse } from "node:http";
import type { Express, RequestHandler } from "express";
import proxyaddr from "proxy-addr";
import { logAccess, quietProbe, requestId } from "./access-log.js";
import type { Logger } from "./logger.js";
import type { Metrics } from "./metrics.js";
import type { Lifecycle } from "./routes/health.js";

export const LIVENESS_BODY = JSON.stringify({ status: "ok" });

/** The headers a helmet middleware sets, in its order: helmet only calls `setHeader` and `removeHeader`. */
export function headersOf(middleware: RequestHandler): string[] {
  const flat: string[] = [];
  const res = {
    setHeader(name: string, value: unknown) {
      flat.push(name, String(value));
      return res;
    },
    removeHeader() {},
  };
  let called = false;
  middleware({} as never, res as never, () => {
    called = true;
  });
  // A configuration that works asynchronously or per request (a CSP nonce function) cannot be captured once.
  if (!called) throw new Error("the security-headers middleware did not complete synchronously");
  return flat;
}

export function withLiveness(
  app: Express,
  deps: {
    security: RequestHandler;
    /** Where access lines go (accessLogger() of the app's logger). */
    logger: Logger;
    metrics: Pick<Metrics, "observe">;
    lifecycle: Lifecycle;
    /** LOG_PROBES: an access line for a successful probe too (default: only failed or aborted ones). */
    logProbes?: boolean;
  },
): RequestListener {
  const { logger, metrics, lifecycle } = deps;
  const logProbes = deps.logProbes ?? false;
  // As Express's res.json() sends it, after the security headers.
  const fixed = [
    ...headersOf(deps.security),
    "Content-Type",
    "application/json; charset=utf-8",
    "Content-Length",
    String(Buffer.byteLength(LIVENESS_BODY)),
  ];
  const closing = [...fixed, "Connection", "close"];
  // Express compiles TRUST_PROXY into this function when the app sets "trust proxy"; req.ip uses the same.
  const trust = app.get("trust proxy fn") as (addr: string, i: number) => boolean;

  return (req: IncomingMessage, res: ServerResponse) => {
    if (req.url !== "/health" || req.method !== "GET") {
      app(req, res);
      return;
    }
    const start = performance.now();
    const id = requestId(req.headers["x-request-id"]);
    const remoteAddress = req.socket.remoteAddress;
    const clientIp = proxyaddr(req, trust);
    res.once("close", () => {
      const finished = res.writableFinished;
      if (finished) {
        metrics.observe("GET", "/health", res.statusCode, (performance.now() - start) / 1000);
        if (quietProbe(logProbes, "GET", "/health", res.statusCode)) return;
      }
      logAccess(
        logger,
        {
          req: { id, method: "GET", url: "/health", remoteAddress },
          responseTime: Math.round(performance.now() - start),
          clientIp,
        },
        res.statusCode,
        finished,
        res.headersSent,
      );
    });
    res.writeHead(200, ["X-Request-Id", id, ...(lifecycle.shuttingDown ? closing : fixed)]);
    res.end(LIVENESS_BODY);
  };
}
