/**
 * Admission at the door, before any work: a request whose declared body is over the limit is answered 413 at once
 * (its body is never read, and the connection closes). The per-connection pipelining limit is enforced by the
 * HTTP server (http-server.ts), before the app, so that shedding a flood costs next to nothing.
 */
import type { Socket } from "node:net";
import type { RequestHandler } from "express";
import { HttpProblem } from "./errors.js";

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

export function requestGuard(options: { bodyLimitBytes: number }): RequestHandler {
  return (req, res, next) => {
    const socket = req.socket;
    // Node's parser has checked that Content-Length is decimal digits (else it answered 400 itself).
    const declared = req.headers["content-length"];
    if (declared !== undefined && Number(declared) > options.bodyLimitBytes) {
      lingerOnClose(socket);
      res.setHeader("Connection", "close");
      next(new HttpProblem(413, `The request body is larger than the limit of ${options.bodyLimitBytes} bytes.`));
      return;
    }
    next();
  };
}
