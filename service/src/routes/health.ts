import { Router } from "express";
import type { Knex } from "knex";
import { HttpProblem, methodNotAllowed, sendProblem } from "../errors.js";

export interface Lifecycle {
  shuttingDown: boolean;
}

export function healthRouter(db: Knex, lifecycle: Lifecycle, readyTimeoutMs: number): Router {
  const router = Router();

  // Liveness: the process answers. Never touches the database.
  router
    .route("/health")
    .get((_req, res) => {
      res.json({ status: "ok" });
    })
    .all(methodNotAllowed(["GET"]));

  // Readiness: the database answers (bounded wait), and the process is not shutting down.
  router
    .route("/ready")
    .get(async (req, res) => {
      if (lifecycle.shuttingDown) {
        sendProblem(res, new HttpProblem(503, "The service is shutting down."));
        return;
      }
      let timer: NodeJS.Timeout | undefined;
      try {
        await Promise.race([
          db.raw("select 1"),
          new Promise((_, reject) => {
            timer = setTimeout(() => reject(new Error("readiness check timed out")), readyTimeoutMs);
          }),
        ]);
        res.json({ status: "ready" });
      } catch (err) {
        req.log?.warn({ err: { message: (err as Error).message } }, "not ready");
        sendProblem(res, HttpProblem.unavailable("The database is not reachable."));
      } finally {
        clearTimeout(timer);
      }
    })
    .all(methodNotAllowed(["GET"]));

  return router;
}
