/**
 * Admission at the door, before any work: a request whose declared body is over the limit is answered 413 at once
 * (its body is never read, and the connection closes), and one connection cannot have more than PIPELINE_LIMIT
 * requests in progress — past it, pipelined requests get a 503 with `Retry-After` at once, so a single client
 * cannot fill the database queue (db.ts bounds that queue for all clients together).
 */
import type { Socket } from "node:net";
import type { RequestHandler } from "express";
import { HttpProblem, OverloadedProblem } from "./errors.js";

/** Requests one connection may have in progress (HTTP/1.1 pipelining); answers go out in order anyway. */
export const PIPELINE_LIMIT = 8;

/** How long a connection closed after a 413 keeps discarding what the client still sends, so it reads the answer. */
const LINGER_MS = 2000;

/**
 * After the response, close our side and discard the client's remaining bytes for a moment before destroying the
 * socket: destroying it with unread data would send a reset that can wipe the 413 from the client's buffer.
 * Node's HTTP server ends a `Connection: close` response with `socket.destroySoon()`; this replaces it on this
 * one socket.
 */
function lingerOnClose(socket: Socket) {
  (socket as Socket & { destroySoon(): void }).destroySoon = function lingeringClose(this: Socket) {
    this.end();
    const timer = setTimeout(() => this.destroy(), LINGER_MS);
    timer.unref();
    this.once("end", () => this.destroy());
    this.once("close", () => clearTimeout(timer));
  };
}

export function requestGuard(options: { bodyLimitBytes: number; pipelineLimit?: number }): RequestHandler {
  const pipelineLimit = options.pipelineLimit ?? PIPELINE_LIMIT;
  const inProgress = new WeakMap<Socket, number>();
  return (req, res, next) => {
    const socket = req.socket;
    const n = (inProgress.get(socket) ?? 0) + 1;
    inProgress.set(socket, n);
    res.once("close", () => inProgress.set(socket, (inProgress.get(socket) ?? 1) - 1));

    // Node's parser has checked that Content-Length is decimal digits (else it answered 400 itself).
    const declared = req.headers["content-length"];
    if (declared !== undefined && Number(declared) > options.bodyLimitBytes) {
      lingerOnClose(socket);
      res.setHeader("Connection", "close");
      next(new HttpProblem(413, `The request body is larger than the limit of ${options.bodyLimitBytes} bytes.`));
      return;
    }
    if (n > pipelineLimit) {
      next(
        new OverloadedProblem(
          `More than ${pipelineLimit} requests are in progress on this connection: wait for the answers before sending more.`,
        ),
      );
      return;
    }
    next();
  };
}
