/**
 * The OpenAPI 3.1 description, generated from the same schemas that validate requests (schemas.ts): the
 * project's `x-decimal` / `x-integer` keywords become plain JSON Schema here, everything else is used as is.
 */
import {
  createLoanSchema,
  LIMITS,
  listQuerySchema,
  loanSchema,
  patchLoanSchema,
  problemSchema,
  statsSchema,
} from "./schemas.js";

type Json = Record<string, unknown>;

const NUMERIC_TEXT = "^\\s*[+-]?(\\d+(\\.\\d*)?|\\.\\d+)([eE][+-]?\\d{1,6})?\\s*$";

function withNull(schema: Json, nullable: unknown): Json {
  return nullable ? { oneOf: [...(schema.oneOf as Json[]), { type: "null" }] } : schema;
}

/** Rewrites the project's keywords into standard JSON Schema 2020-12 and drops ajv-only `$id`s. */
export function toStandardSchema(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(toStandardSchema);
  if (!schema || typeof schema !== "object") return schema;
  const out: Json = {};
  for (const [key, value] of Object.entries(schema as Json)) {
    if (key === "$id") continue;
    if (key === "x-decimal") {
      const r = value as Json;
      const number: Json = { type: "number", multipleOf: 10 ** -Number(r.scale) };
      if (r.exclusiveMinimum !== undefined) number.exclusiveMinimum = Number(r.exclusiveMinimum);
      if (r.minimum !== undefined) number.minimum = Number(r.minimum);
      if (r.maximum !== undefined) number.maximum = Number(r.maximum);
      Object.assign(out, withNull({ oneOf: [number, { type: "string", pattern: NUMERIC_TEXT }] }, r.nullable));
      const bounds = `${r.exclusiveMinimum !== undefined ? `> ${r.exclusiveMinimum}` : `≥ ${r.minimum}`} and ≤ ${r.maximum}`;
      out.description = `Exact decimal, as a JSON number or a numeric string: ${bounds}, at most ${r.scale} decimal places. Read without floating point; stored as NUMERIC.`;
      continue;
    }
    if (key === "x-integer") {
      const r = value as Json;
      const integer = { type: "integer", minimum: r.minimum, maximum: r.maximum };
      Object.assign(out, withNull({ oneOf: [integer, { type: "string", pattern: "^\\s*\\d+\\s*$" }] }, r.nullable));
      out.description = `Integer ${r.minimum}–${r.maximum}, as a JSON number or a string of digits.`;
      continue;
    }
    out[key] = toStandardSchema(value);
  }
  return out;
}

const problem = (description: string) => ({
  description,
  content: { "application/problem+json": { schema: { $ref: "#/components/schemas/Problem" } } },
});
const json = (description: string, schema: Json, headers?: Json) => ({
  description,
  ...(headers ? { headers } : {}),
  content: { "application/json": { schema } },
});
const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });

export function openApiDocument(): Json {
  const listParams = Object.entries(listQuerySchema.properties).map(([name, schema]) => ({
    name,
    in: "query",
    required: false,
    schema: toStandardSchema(schema),
    description: {
      limit: `Page size (default ${LIMITS.pageDefault}, at most ${LIMITS.pageMax}).`,
      cursor: 'Opaque cursor from the previous page\'s `Link: <…>; rel="next"` header.',
      status: "Only loans in this status.",
      borrower_id: "Only this borrower's loans.",
    }[name],
  }));
  const loanId = {
    name: "id",
    in: "path",
    required: true,
    description: "Loan id: a UUID, hyphenated or 32 hex digits, optionally in braces or as `urn:uuid:…`, any case.",
    schema: { type: "string" },
  };
  const common = {
    "400": problem("Invalid request: every failing field is listed in `errors`."),
    "405": problem("Method not allowed on this path; see the `Allow` header."),
    "503": problem(
      "The database is unavailable, or the service is at capacity (`type` `/problems/overloaded`); retry after `Retry-After` seconds.",
    ),
  };
  return {
    openapi: "3.1.0",
    info: {
      title: "Loan service",
      version: "0.1.0",
      description:
        "Microloans API, compatible with the original Flask starter on every success path. Errors are RFC 9457 problem documents.",
    },
    paths: {
      "/health": {
        get: {
          operationId: "health",
          summary: "Liveness (no database access)",
          responses: {
            "200": json("Alive", { type: "object", properties: { status: { const: "ok" } }, required: ["status"] }),
          },
        },
      },
      "/ready": {
        get: {
          operationId: "ready",
          summary: "Readiness: the database answers",
          responses: {
            "200": json("Ready", { type: "object", properties: { status: { const: "ready" } }, required: ["status"] }),
            "503": problem("The database is unreachable or the service is shutting down."),
          },
        },
      },
      "/openapi.json": {
        get: {
          operationId: "openapi",
          summary: "This document",
          responses: { "200": json("OpenAPI 3.1", { type: "object" }) },
        },
      },
      "/api/loans": {
        get: {
          operationId: "listLoans",
          summary: "Loans, newest first (keyset pagination)",
          parameters: listParams,
          responses: {
            "200": json(
              "A page of loans",
              { type: "array", items: ref("Loan") },
              {
                Link: {
                  description: 'Next page: `<…>; rel="next"`; absent on the last page.',
                  schema: { type: "string" },
                },
              },
            ),
            ...common,
          },
        },
        post: {
          operationId: "createLoan",
          summary: "Create a loan (status pending)",
          parameters: [
            {
              name: "Idempotency-Key",
              in: "header",
              required: false,
              description:
                "Retries with the same key and body return the original 201 response and create nothing (kept 24 h).",
              schema: { type: "string", pattern: `^[\\x21-\\x7E]{1,${LIMITS.idempotencyKeyMaxLength}}$` },
            },
          ],
          requestBody: {
            required: true,
            content: {
              "application/json": {
                schema: ref("CreateLoan"),
                example: {
                  borrower_id: "usr_ghana_006",
                  amount: 12000.5,
                  currency: "ghs",
                  term_months: 12,
                  interest_rate_apr: 21.5,
                },
              },
            },
          },
          responses: {
            "201": json("The stored loan", ref("Loan"), {
              "Idempotent-Replayed": {
                description: "`true` when this is the replay of an earlier response",
                schema: { type: "string" },
              },
            }),
            ...common,
            "413": problem(`Body larger than ${LIMITS.bodyBytes} bytes.`),
            "415": problem("A charset other than UTF-8, or a Content-Encoding other than gzip, deflate or br."),
            "422": problem("Idempotency-Key already used with a different body."),
          },
        },
      },
      "/api/loans/{id}": {
        get: {
          operationId: "getLoan",
          parameters: [loanId],
          responses: { "200": json("The loan", ref("Loan")), ...common, "404": problem("No such loan.") },
        },
        patch: {
          operationId: "transitionLoan",
          summary: "Change status: pending → approved|rejected, approved → disbursed, disbursed → repaid|defaulted",
          parameters: [loanId],
          requestBody: {
            required: true,
            content: { "application/json": { schema: ref("PatchLoan"), example: { status: "approved" } } },
          },
          responses: {
            "200": json("The updated loan", ref("Loan")),
            ...common,
            "404": problem("No such loan."),
            "409": problem("Illegal transition from the current status (`current_status`)."),
            "413": problem(`Body larger than ${LIMITS.bodyBytes} bytes.`),
            "415": problem("A charset other than UTF-8, or a Content-Encoding other than gzip, deflate or br."),
          },
        },
      },
      "/api/stats": {
        get: {
          operationId: "stats",
          responses: { "200": json("Totals and counts", ref("Stats")), "405": common["405"], "503": common["503"] },
        },
      },
    },
    components: {
      schemas: {
        Loan: toStandardSchema(loanSchema),
        CreateLoan: toStandardSchema(createLoanSchema),
        PatchLoan: toStandardSchema(patchLoanSchema),
        Stats: toStandardSchema(statsSchema),
        Problem: toStandardSchema(problemSchema),
      },
    },
  };
}
