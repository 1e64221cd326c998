/**
 * One error path: every error becomes an RFC 9457 problem document (`application/problem+json`) with the
 * status code the original API used. Nothing internal (SQL, stack, driver message) ever reaches a client.
 */
import { STATUS_CODES } from "node:http";
import type { ErrorRequestHandler, RequestHandler, Response } from "express";
import { DBError, NotFoundError, ValidationError } from "objection";
import pg from "pg";
import type { FieldError } from "./validation.js";

export const PROBLEM_CONTENT_TYPE = "application/problem+json; charset=utf-8";

export interface ProblemBody {
  type: string;
  title: string;
  status: number;
  detail?: string;
  instance?: string;
  errors?: FieldError[];
  [extension: string]: unknown;
}

export class HttpProblem extends Error {
  readonly status: number;
  readonly body: ProblemBody;
  readonly headers: Record<string, string>;

  constructor(status: number, detail?: string, extra: Partial<ProblemBody> = {}, headers: Record<string, string> = {}) {
    super(detail ?? STATUS_CODES[status] ?? "Error");
    this.status = status;
    this.headers = headers;
    this.body = { type: "about:blank", title: STATUS_CODES[status] ?? "Error", status, detail, ...extra };
  }

  static badRequest(detail: string) {
    return new HttpProblem(400, detail);
  }

  static validation(errors: FieldError[], where: string) {
    const detail = `The request ${where} is invalid: ${errors.map((e) => `${e.field} ${e.message}`).join("; ")}.`;
    return new HttpProblem(400, detail, { type: "/problems/validation-error", title: "Validation failed", errors });
  }

  static notFound(detail: string) {
    return new HttpProblem(404, detail);
  }

  static unavailable(detail = "The database is unavailable; try again shortly.") {
    return new HttpProblem(
      503,
      detail,
      { type: "/problems/database-unavailable", title: "Service Unavailable" },
      {
        "Retry-After": "1",
      },
    );
  }
}

/** Load shed before any work: too many requests already wait (for a database connection, or on one connection). */
export class OverloadedProblem extends HttpProblem {
  constructor(detail: string) {
    super(503, detail, { type: "/problems/overloaded", title: "Service Unavailable" }, { "Retry-After": "1" });
  }
}

export function sendProblem(res: Response, problem: HttpProblem, instance?: string) {
  for (const [name, value] of Object.entries(problem.headers)) res.setHeader(name, value);
  res.status(problem.status).type(PROBLEM_CONTENT_TYPE);
  res.send(JSON.stringify(instance ? { ...problem.body, instance } : problem.body));
}

/** Answers 405 with an `Allow` header for a path that exists but not with this method (OPTIONS lists them). */
export function methodNotAllowed(allowed: string[]): RequestHandler {
  const allow = [...new Set([...allowed, ...(allowed.includes("GET") ? ["HEAD"] : []), "OPTIONS"])].join(", ");
  return (req, res) => {
    res.setHeader("Allow", allow);
    if (req.method === "OPTIONS") {
      res.status(204).end();
      return;
    }
    sendProblem(res, new HttpProblem(405, `${req.method} is not allowed on ${req.path}; allowed: ${allow}.`));
  };
}

export const notFoundHandler: RequestHandler = (req, res) => {
  sendProblem(res, HttpProblem.notFound(`No route for ${req.method} ${req.path}.`));
};

const UNAVAILABLE_ERRNOS = new Set(["ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "ENOTFOUND", "EAI_AGAIN", "EPIPE"]);

/** Whether an error means "the database cannot be reached right now" (→ 503), as opposed to a bug. */
export function isDatabaseUnavailable(err: unknown): boolean {
  const e = err as { name?: string; code?: string; message?: string; nativeError?: unknown } | undefined;
  if (!e) return false;
  if (e.nativeError && e.nativeError !== err && isDatabaseUnavailable(e.nativeError)) return true;
  if (e.name === "KnexTimeoutError") return true;
  const code = e.code ?? "";
  // 08: connection exception; 57P01-57P03: shutdown / cannot connect now; 53300: too many connections;
  // 57014: statement timeout.
  if (/^08/.test(code) || /^57P0[1-3]$/.test(code) || code === "53300" || code === "57014") return true;
  if (UNAVAILABLE_ERRNOS.has(code)) return true;
  // pg: "timeout expired" (connectionTimeoutMillis), "Query read timeout" (query_timeout).
  return /Connection terminated|connection timeout|timeout expired|Query read timeout|Client has encountered a connection error/i.test(
    e.message ?? "",
  );
}

/** A constraint or data error from PostgreSQL, raised through Objection (DBError) or by node-postgres directly. */
function mapDbError(err: InstanceType<typeof DBError> | pg.DatabaseError): HttpProblem {
  const code = (err instanceof DBError ? (err.nativeError as { code?: string } | undefined)?.code : err.code) ?? "";
  if (code === "23505" || code === "23503") return new HttpProblem(409, "The request conflicts with existing data.");
  if (code === "23514" || code === "23502" || code.startsWith("22")) {
    return new HttpProblem(400, "A value is outside what the database accepts.");
  }
  return new HttpProblem(500, "An unexpected error occurred.");
}

interface HttpError {
  type?: string;
  status?: unknown;
  statusCode?: unknown;
  expose?: boolean;
  limit?: number;
  message?: string;
}

/** The 4xx status an error carries, http-errors style (`status` or `statusCode`), as body-parser and the router raise. */
function clientStatus(err: HttpError): number | undefined {
  const status = Number(err.status ?? err.statusCode);
  return Number.isInteger(status) && status >= 400 && status < 500 ? status : undefined;
}

/** What a client-caused library error (body-parser, raw-body, the router) means, in words that are safe to send. */
function clientProblem(err: HttpError, status: number): HttpProblem {
  switch (err.type) {
    case "entity.too.large":
      return new HttpProblem(413, `The request body is larger than the limit of ${err.limit} bytes.`);
    case "encoding.unsupported":
      return new HttpProblem(
        415,
        "The request body's Content-Encoding is not supported: send it uncompressed, or as gzip, deflate or br.",
      );
    case "charset.unsupported":
      return new HttpProblem(415, "The request body must be UTF-8 (Content-Type: application/json; charset=utf-8).");
    case "request.size.invalid":
      return new HttpProblem(400, "The request body is shorter or longer than its Content-Length.");
  }
  if (err instanceof URIError) return HttpProblem.badRequest("The request path has broken percent-encoding.");
  if (/^Z_|ERR_BROTLI|ERR__ERROR_FORMAT_PADDING/.test(String((err as { code?: unknown }).code ?? ""))) {
    return HttpProblem.badRequest("The request body is not valid data for its Content-Encoding.");
  }
  const detail = err.expose && err.message ? err.message : undefined;
  return new HttpProblem(status, detail ?? `The request could not be processed (${STATUS_CODES[status] ?? status}).`);
}

export const errorHandler: ErrorRequestHandler = (err, req, res, _next) => {
  const e = (err ?? {}) as HttpError;
  // The client went away while sending its body: there is no one to answer (the access log says "aborted").
  if (e.type === "request.aborted") {
    res.destroy();
    return;
  }
  let problem: HttpProblem;
  const status = err instanceof HttpProblem ? undefined : clientStatus(e);
  if (err instanceof HttpProblem) problem = err;
  else if (status !== undefined) {
    // The client's fault, said by the library that found it: a problem document, logged without a stack.
    problem = clientProblem(e, status);
    req.log?.info({ err: { type: e.type, message: e.message }, status: problem.status }, "request rejected");
  } else if (err instanceof ValidationError) problem = new HttpProblem(400, "The loan is invalid.");
  else if (err instanceof NotFoundError) problem = HttpProblem.notFound("Not found.");
  else if (isDatabaseUnavailable(err)) problem = HttpProblem.unavailable();
  else if (err instanceof DBError || err instanceof pg.DatabaseError) problem = mapDbError(err);
  else problem = new HttpProblem(500, "An unexpected error occurred.");

  if (problem instanceof OverloadedProblem) {
    // Shed load: the access log has the line; one more per shed request would add to the overload.
  } else if (problem.status === 503)
    req.log?.warn({ err: { message: (err as Error).message } }, "database unavailable");
  else if (problem.status >= 500) req.log?.error({ err }, "request failed");
  if (res.headersSent) {
    res.destroy();
    return;
  }
  // Past the size limit the rest of the body is not read: the connection cannot carry another request.
  if (problem.status === 413) res.setHeader("Connection", "close");
  sendProblem(res, problem);
};
