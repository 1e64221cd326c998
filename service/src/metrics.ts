/**
 * Prometheus metrics (prom-client): request duration by route template and status, the process's own
 * metrics, connection-pool gauges and loans created by currency. Route labels are templates
 * (`/api/loans/:id`), never raw paths, so the label set stays bounded.
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

  const middleware: RequestHandler = (req, res, next) => {
    const end = duration.startTimer();
    res.once("finish", () => {
      const route = req.route?.path ? `${req.baseUrl}${req.route.path}` : "unmatched";
      end({ method: req.method, route, status_code: String(res.statusCode) });
    });
    next();
  };

  return { registry, middleware, loanCreated: (currency) => created.inc({ currency }) };
}
