/**
 * The container's health check, run by the image's HEALTHCHECK as `node dist/src/healthcheck.js`: node itself,
 * so the image needs no curl. Exits 0 when GET /health on this container answers 200 within the timeout,
 * 1 otherwise (refused, timed out, any other status). Reads the same PORT and HOST as the server.
 */
import { request } from "node:http";

const port = Number(process.env.PORT || 8000);
const host = process.env.HOST && !["0.0.0.0", "::", ""].includes(process.env.HOST) ? process.env.HOST : "127.0.0.1";
const timeoutMs = Number(process.env.HEALTHCHECK_TIMEOUT_MS || 3000);

const req = request({ host, port, path: "/health", method: "GET", timeout: timeoutMs }, (res) => {
  res.resume();
  if (res.statusCode !== 200) process.stderr.write(`healthcheck: GET /health answered ${res.statusCode}\n`);
  process.exit(res.statusCode === 200 ? 0 : 1);
});
req.on("timeout", () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
req.on("error", (err) => {
  process.stderr.write(`healthcheck: ${err.message}\n`);
  process.exit(1);
});
req.end();
