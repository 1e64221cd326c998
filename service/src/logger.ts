import { pino } from "pino";

/**
 * JSON logs to stdout. Pretty output in development is a pipe (`npm run dev | npx pino-pretty`) or
 * LOG_PRETTY=true, never the production default. Credentials are redacted wherever they could appear.
 *
 * Lines are written synchronously (one write(2) per line, on the event loop's thread). pino's default
 * destination is asynchronous: every line is handed to libuv's thread pool and its completion signalled back,
 * about three futex calls and an eventfd read per line (strace, 3,000 requests). With a connection per request
 * nothing batches those lines, and the hand-off cost more than the rest of a `/health` request (bench/RESULTS.md,
 * issue 11). A synchronous line also survives a crash: nothing is left in a buffer. The price: a stdout that
 * stops draining (a stuck log collector) blocks the process instead of growing its memory.
 */
export function createLogger(options: { level: string; pretty?: boolean }) {
  const destination = options.pretty ? undefined : pino.destination({ dest: 1, sync: true });
  const settings = {
    level: options.level,
    base: { service: "loan-service", pid: process.pid },
    redact: {
      paths: [
        "req.headers.authorization",
        "req.headers.cookie",
        'req.headers["proxy-authorization"]',
        "databaseUrl",
        "*.password",
      ],
      censor: "***",
    },
    transport: options.pretty ? { target: "pino-pretty", options: { singleLine: true } } : undefined,
  };
  return destination ? pino(settings, destination) : pino(settings);
}

export type Logger = ReturnType<typeof createLogger>;
