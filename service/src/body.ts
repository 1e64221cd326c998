import express, { type RequestHandler } from "express";
import { HttpProblem } from "./errors.js";
import { LIMITS } from "./schemas.js";
import { charsetProblem, parseJsonBody } from "./validation.js";

const raw = express.raw({ type: () => true, limit: LIMITS.bodyBytes });

/**
 * Reads a JSON object body: the raw bytes (bounded: over the limit is a 413), a JSON content type (as the
 * original, anything else is a 400), then a lossless parse into `req.body`.
 */
export const jsonObjectBody: RequestHandler[] = [
  raw,
  (req, _res, next) => {
    if (!req.is(["application/json", "application/*+json"])) {
      throw HttpProblem.badRequest("The request body must be JSON, sent with Content-Type: application/json.");
    }
    const charset = charsetProblem(req.headers["content-type"]);
    if (charset) throw charset;
    req.body = parseJsonBody(req.body as Buffer);
    next();
  },
];
