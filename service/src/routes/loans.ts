import { Router } from "express";
import type { Knex } from "knex";
import { jsonObjectBody } from "../body.js";
import { createDataLayer } from "../data/index.js";
import { HttpProblem, methodNotAllowed } from "../errors.js";
import type { Metrics } from "../metrics.js";
import { IDEMPOTENCY_KEY, parseUuid, validateCreateLoan, validateListQuery, validatePatchLoan } from "../validation.js";

function loanId(raw: string): string {
  const id = parseUuid(raw);
  if (!id) throw HttpProblem.badRequest(`Invalid loan id: "${raw.slice(0, 64)}" is not a UUID.`);
  return id;
}

export function loansRouter(db: Knex, metrics?: Pick<Metrics, "loanCreated">): Router {
  const router = Router();
  // Every statement is built here, once, from the models bound to this knex instance.
  const data = createDataLayer(db);

  router
    .route("/loans")
    .get(async (req, res) => {
      const query = validateListQuery(req.query as Record<string, unknown>);
      const { loans, next } = await data.loans.list(query);
      if (next) {
        const params = new URLSearchParams();
        params.set("limit", String(query.limit));
        if (query.status) params.set("status", query.status);
        if (query.borrower_id) params.set("borrower_id", query.borrower_id);
        params.set("cursor", next);
        res.setHeader("Link", `<${req.baseUrl}${req.path}?${params}>; rel="next"`);
      }
      res.json(loans);
    })
    .post(...jsonObjectBody, async (req, res) => {
      const keyHeader = req.get("Idempotency-Key");
      if (keyHeader !== undefined && !IDEMPOTENCY_KEY.test(keyHeader)) {
        throw HttpProblem.validation(
          [{ field: "Idempotency-Key", message: "must be 1 to 255 visible ASCII characters" }],
          "headers",
        );
      }
      const input = validateCreateLoan(req.body as Record<string, unknown>);
      const { loan, replayed } = await data.creation.create(input, keyHeader);
      if (replayed) res.setHeader("Idempotent-Replayed", "true");
      else metrics?.loanCreated(loan.currency);
      res.status(201).json(loan);
    })
    .all(methodNotAllowed(["GET", "POST"]));

  router
    .route("/loans/:id")
    .get(async (req, res) => {
      const id = loanId(req.params.id);
      const loan = await data.loans.get(id);
      if (!loan) throw HttpProblem.notFound(`No loan with id ${id}.`);
      res.json(loan);
    })
    .patch(...jsonObjectBody, async (req, res) => {
      const id = loanId(req.params.id);
      const { status } = validatePatchLoan(req.body as Record<string, unknown>);
      res.json(await data.loans.transition(id, status));
    })
    .all(methodNotAllowed(["GET", "PATCH"]));

  router
    .route("/stats")
    .get(async (_req, res) => {
      res.json(await data.stats.get());
    })
    .all(methodNotAllowed(["GET"]));

  return router;
}
