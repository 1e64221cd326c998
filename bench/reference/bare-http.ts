/**
 * The practical ceiling of this stack on this machine (issue 11): a bare `node:http` server answering `/health`
 * with a fixed JSON body — no framework, no logging, no headers beyond the body's. Measured in the same run as
 * the service, so each endpoint can be reported as a fraction of it. `/ready` answers too (the harness waits on it);
 * it does not touch the database. Never used outside the benchmark.
 *
 * `node --import tsx bench/reference/bare-http.ts` with HOST and PORT.
 */
import { createServer } from "node:http";

const body = JSON.stringify({ status: "ok" });
const headers = { "Content-Type": "application/json; charset=utf-8", "Content-Length": Buffer.byteLength(body) };
const server = createServer((req, res) => {
  if (req.url === "/health" || req.url === "/ready") {
    res.writeHead(200, headers);
    res.end(body);
    return;
  }
  res.writeHead(404).end();
});
server.listen(Number(process.env.PORT || 8000), process.env.HOST || "127.0.0.1");
const stop = () => server.close(() => process.exit(0));
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
