import { pino } from "pino";

/**
 * JSON logs to stdout. Pretty output in development is a pipe (`npm run dev | npx pino-pretty`) or
 * LOG_PRETTY=true, never the production default. Credentials are redacted wherever they could appear.
 */
export function createLogger(options: { level: string; pretty?: boolean }) {
  return pino({
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
  });
}

export type Logger = ReturnType<typeof createLogger>;
