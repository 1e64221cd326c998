/**
 * The reference point of issue 5: "a plain Express 5 + pg service written the obvious way" (no logging, no
 * security headers, no metrics, no validation library, no ORM), measured in the same run as the service so the
 * machine can be compared with the anchors (6,300 /health, 3,600 get-by-id, 2,800 list with keep-alive at 32
 * connections) and the cost of the service's own stack read directly. Only what the anchor measured: /health,
 * GET /api/loans (first page), GET /api/loans/:id; /ready for the harness. Never used outside the benchmark.
 *
 * `node --import tsx bench/reference/plain-express.ts` with DATABASE_URL, HOST, PORT, DB_POOL_MAX, and
 * WEB_CONCURRENCY (> 1: Node's cluster, one worker per unit; `auto`: one per core).
 */
import cluster from "node:cluster";
import { availableParallelism } from "node:os";
import express from "express";
import pg from "pg";

const workers =
  process.env.WEB_CONCURRENCY === "auto" ? availableParallelism() : Number(process.env.WEB_CONCURRENCY || 1);

if (workers > 1 && cluster.isPrimary) {
  for (let i = 0; i < workers; i++) cluster.fork();
  const stop = () => {
    for (const w of Object.values(cluster.workers ?? {})) w?.process.kill("SIGTERM");
    cluster.on("exit", () => {
      if (Object.keys(cluster.workers ?? {}).length === 0) process.exit(0);
    });
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
} else {
  const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL, max: Number(process.env.DB_POOL_MAX || 10) });
  const app = express();
  app.get("/health", (_req, res) => {
    res.json({ status: "ok" });
  });
  app.get("/ready", async (_req, res) => {
    await pool.query("SELECT 1");
    res.json({ status: "ready" });
  });
  app.get("/api/loans", async (req, res) => {
    const limit = Math.min(Number(req.query.limit) || 100, 200);
    const { rows } = await pool.query("SELECT * FROM loans ORDER BY created_at DESC, id DESC LIMIT $1", [limit]);
    res.json(rows);
  });
  app.get("/api/loans/:id", async (req, res) => {
    const { rows } = await pool.query("SELECT * FROM loans WHERE id = $1", [req.params.id]);
    if (rows.length === 0) {
      res.status(404).json({ error: "not found" });
      return;
    }
    res.json(rows[0]);
  });
  const server = app.listen(Number(process.env.PORT || 8000), process.env.HOST || "127.0.0.1");
  const stop = () => server.close(() => pool.end().then(() => process.exit(0)));
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}
