/**
 * Builds the application: the request listener that serves it (the Express app, with `GET /health` answered in
 * front of it by liveness.ts). It never listens: server.ts does, and tests start it on port 0.
 */
import { type RequestListener, ServerResponse } from "node:http";
import express from "express";
import helmet from "helmet";
import type { Knex } from "knex";
import { accessLog, accessLogger } from "./access-log.js";
import { requestGuard } from "./admission.js";
import type { Config } from "./config.js";
import { errorHandler, methodNotAllowed, notFoundHandler } from "./errors.js";
import { headersOf, withLiveness } from "./liveness.js";
import type { Logger } from "./logger.js";
import { createMetrics, type Metrics } from "./metrics.js";
import { openApiDocument } from "./openapi.js";
import { docsRouter } from "./routes/docs.js";
import { healthRouter, type Lifecycle } from "./routes/health.js";
import { loansRouter } from "./routes/loans.js";
import { LIMITS } from "./schemas.js";

export interface AppDeps {
  db: Knex;
  logger: Logger;
  /** `logProbes` (LOG_PROBES) defaults to false, as in production. */
  config: Pick<Config, "trustProxy" | "dbAcquireTimeoutMs"> & Partial<Pick<Config, "logProbes">>;
  lifecycle?: Lifecycle;
  /** Where request metrics go; server.ts serves them on the metrics listener (never on this app). */
  metrics?: Metrics;
}

export function createApp({
  db,
  logger,
  config,
  lifecycle = { shuttingDown: false },
  metrics,
}: AppDeps): RequestListener {
  const app = express();
  app.disable("x-powered-by");
  app.set("etag", false);
  app.set("trust proxy", config.trustProxy);
  app.set("query parser", "simple");

  const access = accessLogger(logger);
  const logProbes = config.logProbes ?? false;
  app.use(accessLog(app, logger, { access, logProbes }));
  // helmet's headers, computed once from its configuration and set on every response (helmet's own middleware
  // recomputes the same constant values per request through a chain of thirteen).
  const security = helmet();
  const securityHeaders = headersOf(security);
  app.use((_req, res, next) => {
    for (let i = 0; i < securityHeaders.length; i += 2)
      res.setHeader(securityHeaders[i] as string, securityHeaders[i + 1] as string);
    next();
  });
  // While shutting down, ask keep-alive clients to reconnect elsewhere after this response — decided when the
  // headers go out, so that requests already in flight at the signal close their connection too. On the app's
  // response prototype (every Express response inherits it): no per-request wrapper.
  const writeHead = ServerResponse.prototype.writeHead;
  (app.response as ServerResponse).writeHead = function (this: ServerResponse, ...args: Parameters<typeof writeHead>) {
    if (lifecycle.shuttingDown && !this.headersSent) this.setHeader("Connection", "close");
    return writeHead.apply(this, args);
  } as typeof writeHead;

  metrics ??= createMetrics(db);
  app.use(metrics.middleware);
  app.use(requestGuard({ bodyLimitBytes: LIMITS.bodyBytes }));
  const health = healthRouter(db, lifecycle, config.dbAcquireTimeoutMs);
  app.use(health);
  metrics.routes("", health);
  const openapi = JSON.stringify(openApiDocument());
  app
    .route("/openapi.json")
    .get((_req, res) => {
      res.type("application/json").send(openapi);
    })
    .all(methodNotAllowed(["GET"]));
  const loans = loansRouter(db, metrics);
  app.use("/api", loans);
  const docs = docsRouter();
  app.use(docs);
  metrics.routes("", app.router);
  metrics.routes("/api", loans);
  metrics.routes("", docs);
  app.use(notFoundHandler);
  app.use(errorHandler);
  return withLiveness(app, { security, logger: access, metrics, lifecycle, logProbes });
}
