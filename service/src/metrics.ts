/**
 * Prometheus metrics (prom-client): request duration by route template and status, the process's own
 * metrics, connection-pool gauges and loans created by currency.
 *
 * The route label is the full route template as the code declares it (`/api/loans/:id`), whatever the outcome —
 * a 200, a 400 from a validator, a 503 from a database outage or from load shedding — and whatever the request's
 * casing (`/API/Loans/x` counts as `/api/loans/:id`): it is found by matching the request path against the
 * declared templates, not read from where routing happened to stop. A path no route matches is `unmatched`.
 * So the label set is bounded and an error-rate query by route sees every error.
 */
import type { RequestHandler } from "express";
import type { Knex } from "knex";
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";

interface TarnPool {
  numUsed(): number;
  numFree(): number;
  numPendingAcquires(): number;
  numPendingCreates(): number;
  max: number;
}

export interface Metrics {
  registry: Registry;
  middleware: RequestHandler;
  /** Declares the routes of a router mounted at `prefix`, so that their templates become route labels. */
  routes(prefix: string, router: unknown): void;
  /** The route label of a path (without the query string). */
  routeLabel(path: string): string;
  /** Records a request answered outside the app (shed by the HTTP server); `url` may carry a query string. */
  observe(method: string, url: string, status: number, seconds: number): void;
  loanCreated(currency: string): void;
}

export function createMetrics(db: Knex): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });

  const duration = new Histogram({
    name: "http_request_duration_seconds",
    help: "HTTP request duration in seconds, by method, route template and status code",
    labelNames: ["method", "route", "status_code"] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [registry],
  });

  const pool = () => (db.client as { pool?: TarnPool }).pool;
  const poolGauge = (name: string, help: string, read: (p: TarnPool) => number) =>
    new Gauge({
      name,
      help,
      registers: [registry],
      collect() {
        const p = pool();
        this.set(p ? read(p) : 0);
      },
    });
  poolGauge("db_pool_connections_used", "Database connections in use", (p) => p.numUsed());
  poolGauge("db_pool_connections_free", "Idle database connections in the pool", (p) => p.numFree());
  poolGauge("db_pool_pending_acquires", "Requests waiting for a database connection", (p) => p.numPendingAcquires());
  poolGauge("db_pool_pending_creates", "Database connections being opened", (p) => p.numPendingCreates());
  poolGauge("db_pool_connections_max", "Maximum size of the database pool", (p) => p.max);

  const created = new Counter({
    name: "loans_created_total",
    help: "Loans created, by currency",
    labelNames: ["currency"] as const,
    registers: [registry],
  });

  const templates: { template: string; pattern: RegExp }[] = [];
  const addTemplate = (template: string) => {
    if (templates.some((t) => t.template === template)) return;
    // As Express matches: case-insensitive, one optional trailing slash, a parameter is one non-empty segment.
    const source = template
      .split("/")
      .map((segment) => (segment.startsWith(":") ? "[^/]+" : segment.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")))
      .join("/");
    templates.push({ template, pattern: new RegExp(`^${source}/?$`, "i") });
  };
  const routes = (prefix: string, router: unknown) => {
    for (const layer of (router as { stack?: { route?: { path?: unknown } }[] }).stack ?? []) {
      const path = layer.route?.path;
      if (typeof path === "string") addTemplate(`${prefix}${path}`);
    }
  };
  const routeLabel = (path: string) => templates.find((t) => t.pattern.test(path))?.template ?? "unmatched";

  const middleware: RequestHandler = (req, res, next) => {
    const end = duration.startTimer();
    res.once("finish", () => {
      const url = req.originalUrl;
      const q = url.indexOf("?");
      end({
        method: req.method,
        route: routeLabel(q < 0 ? url : url.slice(0, q)),
        status_code: String(res.statusCode),
      });
    });
    next();
  };

  const observe = (method: string, url: string, status: number, seconds: number) => {
    const q = url.indexOf("?");
    duration.observe(
      { method, route: routeLabel(q < 0 ? url : url.slice(0, q)), status_code: String(status) },
      seconds,
    );
  };

  return { registry, middleware, routes, routeLabel, observe, loanCreated: (currency) => created.inc({ currency }) };
}
