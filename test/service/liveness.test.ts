/**
 * `GET /health` answered before Express (service/src/liveness.ts): only that exact request takes the short path,
 * and its answer, access line and metric are the ones the Express route gives.
 */
import { once } from "node:events";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { Writable } from "node:stream";
import express from "express";
import helmet from "helmet";
import { pino } from "pino";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { createApp } from "../../service/src/app.js";
import { createDb } from "../../service/src/db.js";
import { headersOf, withLiveness } from "../../service/src/liveness.js";
import type { Logger } from "../../service/src/logger.js";
import { createMetrics } from "../../service/src/metrics.js";

interface Raw {
  status: number;
  /** Header names and values in the order they were sent. */
  raw: [string, string][];
  body: string;
}

async function listen(listener: http.RequestListener) {
  const server = http.createServer(listener).listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as AddressInfo;
  return {
    get: (path: string, method = "GET", headers: Record<string, string> = {}) =>
      new Promise<Raw>((resolve, reject) => {
        const req = http.request({ host: "127.0.0.1", port, path, method, headers, agent: false }, (res) => {
          let body = "";
          res.setEncoding("utf8");
          res.on("data", (c: string) => {
            body += c;
          });
          res.on("end", () => {
            const raw: [string, string][] = [];
            for (let i = 0; i < res.rawHeaders.length; i += 2)
              raw.push([String(res.rawHeaders[i]), String(res.rawHeaders[i + 1])]);
            resolve({ status: res.statusCode ?? 0, raw, body });
          });
        });
        req.on("error", reject);
        req.end();
      }),
    close: () => {
      server.closeAllConnections();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A logger whose lines are kept in memory. */
function capturingLogger() {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString().split("\n")) if (l.trim()) lines.push(JSON.parse(l));
      done();
    },
  });
  return { logger: pino({ level: "info" }, stream) as unknown as Logger, lines };
}

/** The app with a database that is never reached: /health must not need one. */
function appWith(logger: Logger, lifecycle = { shuttingDown: false }, logProbes?: boolean) {
  const db = createDb({
    databaseUrl: "postgresql://loans@127.0.0.1:1/loans",
    dbPoolMin: 0,
    dbPoolMax: 1,
    dbAcquireTimeoutMs: 500,
    dbStatementTimeoutMs: 1000,
  });
  const metrics = createMetrics(db);
  const app = createApp({
    db,
    logger,
    config: { trustProxy: 1, dbAcquireTimeoutMs: 500, logProbes },
    metrics,
    lifecycle,
  });
  return { app, metrics, db, lifecycle };
}

const without = (raw: [string, string][], names: string[]) => raw.filter(([n]) => !names.includes(n.toLowerCase()));

const test = suite("liveness");

test("only the exact GET /health is answered before Express; every other request reaches the app", async () => {
  const seen: string[] = [];
  const app = express();
  app.set("trust proxy", 1);
  app.use((req, res) => {
    seen.push(`${req.method} ${req.url}`);
    res.status(299).end();
  });
  const { logger } = capturingLogger();
  const server = await listen(
    withLiveness(app, { security: helmet(), logger, metrics: { observe() {} }, lifecycle: { shuttingDown: false } }),
  );
  try {
    const health = await server.get("/health");
    assert.is(health.status, 200);
    assert.is(health.body, '{"status":"ok"}');
    assert.equal(seen, [], "GET /health did not reach Express");
    const others: [string, string][] = [
      ["HEAD", "/health"],
      ["POST", "/health"],
      ["GET", "/health/"],
      ["GET", "/HEALTH"],
      ["GET", "/health?probe=1"],
      ["GET", "/ready"],
      ["GET", "/api/loans"],
    ];
    for (const [method, path] of others) assert.is((await server.get(path, method)).status, 299, `${method} ${path}`);
    assert.equal(
      seen,
      others.map(([m, p]) => `${m} ${p}`),
    );
  } finally {
    await server.close();
  }
});

test("the short path's answer is the Express route's: status, body, the same headers in the same order", async () => {
  const { logger } = capturingLogger();
  // Every Express app copies `handle` from express.application when it is created: count the requests it sees.
  type Handle = (this: unknown, req: { url?: string }, ...rest: unknown[]) => unknown;
  const proto = express.application as unknown as { handle: Handle };
  const handle = proto.handle;
  const handled: string[] = [];
  proto.handle = function (this: unknown, req, ...rest) {
    handled.push(String(req.url));
    return handle.call(this, req, ...rest);
  };
  let built: ReturnType<typeof appWith>;
  try {
    built = appWith(logger);
  } finally {
    proto.handle = handle;
  }
  const { app, db } = built;
  const server = await listen(app);
  try {
    const fast = await server.get("/health");
    // `/health/` is the same route to Express, and does not take the short path.
    const routed = await server.get("/health/");
    assert.equal(handled, ["/health/"], "the service's app answers GET /health without Express");
    assert.is(fast.status, 200);
    assert.is(fast.body, routed.body);
    const volatile = ["x-request-id", "date"];
    assert.equal(without(fast.raw, volatile), without(routed.raw, volatile));
    assert.ok(
      fast.raw.some(([n, v]) => n === "Content-Security-Policy" && v.includes("default-src 'self'")),
      "helmet's headers are there",
    );
    const id = (r: Raw) => r.raw.find(([n]) => n.toLowerCase() === "x-request-id")?.[1];
    assert.match(String(id(fast)), /^[0-9a-f-]{36}$/);
    assert.is.not(id(fast), id(routed));
    const given = await server.get("/health", "GET", { "X-Request-Id": "probe-7" });
    assert.is(id(given), "probe-7", "a safe caller id is echoed");
    const unsafe = await server.get("/health", "GET", { "X-Request-Id": "a b" });
    assert.match(String(id(unsafe)), /^[0-9a-f-]{36}$/, "an unsafe one is replaced");
  } finally {
    await server.close();
    await db.destroy();
  }
});

/** The access line of the request with this id, once written. */
async function lineOf(lines: Record<string, unknown>[], id: string) {
  for (let i = 0; i < 100; i++) {
    const line = lines.find((l) => (l.req as { id?: string } | undefined)?.id === id && l.res !== undefined);
    if (line) return line;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`no access line for ${id}`);
}

test("with LOG_PROBES it is logged and counted as the Express route: the same access line, the duration under route /health", async () => {
  const { logger, lines } = capturingLogger();
  const { app, db, metrics } = appWith(logger, { shuttingDown: false }, true);
  const server = await listen(app);
  try {
    await server.get("/health", "GET", { "X-Request-Id": "fast-1", "X-Forwarded-For": "203.0.113.9" });
    await server.get("/health/", "GET", { "X-Request-Id": "routed-1", "X-Forwarded-For": "203.0.113.9" });
    const fast = await lineOf(lines, "fast-1");
    const routed = await lineOf(lines, "routed-1");
    const shape = (l: Record<string, unknown>) => {
      const { time: _t, responseTime: _r, req, ...rest } = l;
      const { id: _i, url: _u, ...reqRest } = req as Record<string, unknown>;
      return { ...rest, req: reqRest, keys: Object.keys(l) };
    };
    assert.equal(shape(fast), shape(routed));
    assert.is((fast.req as { url: string }).url, "/health");
    assert.is(fast.clientIp, "203.0.113.9", "TRUST_PROXY applies as for req.ip (one hop trusted here)");
    assert.is(fast.level, 30);
    const histogram = await metrics.registry.getSingleMetricAsString("http_request_duration_seconds");
    assert.match(histogram, /http_request_duration_seconds_count\{method="GET",route="\/health",status_code="200"\} 2/);
  } finally {
    await server.close();
    await db.destroy();
  }
});

test("by default a successful probe is counted but not logged, on either path; failed probes and other requests are logged", async () => {
  const { logger, lines } = capturingLogger();
  const { app, db, metrics } = appWith(logger);
  const server = await listen(app);
  try {
    assert.is((await server.get("/health", "GET", { "X-Request-Id": "fast-q" })).status, 200);
    assert.is((await server.get("/health/", "GET", { "X-Request-Id": "routed-q" })).status, 200);
    assert.is((await server.get("/HEALTH", "HEAD", { "X-Request-Id": "head-q" })).status, 200);
    // The database is unreachable here: /ready fails, and a failed probe is logged (5xx: error).
    assert.is((await server.get("/ready", "GET", { "X-Request-Id": "ready-503" })).status, 503);
    assert.is((await server.get("/health", "POST", { "X-Request-Id": "post-405" })).status, 405);
    assert.is((await server.get("/healthz", "GET", { "X-Request-Id": "other-404" })).status, 404);
    assert.is((await lineOf(lines, "ready-503")).level, 50);
    assert.is((await lineOf(lines, "post-405")).level, 40);
    assert.is((await lineOf(lines, "other-404")).level, 40);
    const ids = lines.filter((l) => l.res !== undefined).map((l) => (l.req as { id?: string } | undefined)?.id);
    for (const id of ["fast-q", "routed-q", "head-q"]) assert.not.ok(ids.includes(id), `no line for ${id}`);
    const histogram = await metrics.registry.getSingleMetricAsString("http_request_duration_seconds");
    assert.match(histogram, /http_request_duration_seconds_count\{method="GET",route="\/health",status_code="200"\} 2/);
    assert.match(
      histogram,
      /http_request_duration_seconds_count\{method="HEAD",route="\/health",status_code="200"\} 1/,
    );
  } finally {
    await server.close();
    await db.destroy();
  }
});

test("access lines carry no header: credentials sent by the client never reach them", async () => {
  const { logger, lines } = capturingLogger();
  const { app, db } = appWith(logger, { shuttingDown: false }, true);
  const server = await listen(app);
  const secret = "Bearer s3cr3t-token-value";
  try {
    for (const path of ["/health", "/healthz"]) {
      const id = `cred-${path.length}`;
      await server.get(path, "GET", { "X-Request-Id": id, Authorization: secret, Cookie: `sid=${secret}` });
      const line = await lineOf(lines, id);
      assert.equal(Object.keys(line.req as object).sort(), ["id", "method", "remoteAddress", "url"]);
      assert.not.ok(JSON.stringify(line).includes("s3cr3t"), `${path}: ${JSON.stringify(line)}`);
    }
  } finally {
    await server.close();
    await db.destroy();
  }
});

test("while shutting down, the short path asks the client to close the connection, as the Express route does", async () => {
  const { logger } = capturingLogger();
  const lifecycle = { shuttingDown: false };
  const { app, db } = appWith(logger, lifecycle);
  const server = await listen(app);
  try {
    const header = (r: Raw) => r.raw.find(([n]) => n.toLowerCase() === "connection")?.[1];
    // agent: false sends `Connection: close` itself; ask for keep-alive to see the server's own choice.
    const ask = { Connection: "keep-alive" };
    assert.is(header(await server.get("/health", "GET", ask)), "keep-alive");
    lifecycle.shuttingDown = true;
    const fast = await server.get("/health", "GET", ask);
    const routed = await server.get("/health/", "GET", ask);
    assert.is(fast.status, 200);
    assert.is(header(fast), "close");
    assert.is(header(routed), "close");
  } finally {
    await server.close();
    await db.destroy();
  }
});

test("security headers that cannot be computed once (an asynchronous middleware) are refused at start-up", () => {
  assert.equal(
    headersOf((_req, res, next) => {
      res.setHeader("X-A", "1");
      next();
    }),
    ["X-A", "1"],
  );
  assert.throws(() => headersOf((_req, _res, next) => void setTimeout(next, 1)), /did not complete synchronously/);
});

test.run();
