/**
 * What one access line costs to write, with the service's own logger (service/src/logger.ts) and the child that
 * access lines go through (access-log.ts: the root's bindings without its redaction paths). Rounds interleave the
 * two, so each round's ratio is taken under the same machine load.
 *
 *   npm run bench:log-line [-- --lines N --rounds R]
 *
 * The lines go to /dev/null through pino's synchronous destination (the service writes to stdout through an
 * asynchronous one: this measures building and serializing a line, not the pipe behind it).
 */
import { parseArgs } from "node:util";
import { pino } from "pino";
import { accessLogger } from "../service/src/access-log.js";
import { createLogger } from "../service/src/logger.js";

const { values } = parseArgs({
  options: {
    lines: { type: "string", default: "200000" },
    rounds: { type: "string", default: "5" },
    help: { type: "boolean" },
  },
});
if (values.help) {
  process.stdout.write("usage: npm run bench:log-line [-- --lines N --rounds R]\n");
  process.exit(0);
}
const lines = Number(values.lines);
const rounds = Number(values.rounds);
if (!(Number.isInteger(lines) && lines > 0 && Number.isInteger(rounds) && rounds > 0)) {
  process.stderr.write("--lines and --rounds must be positive integers\n");
  process.exit(2);
}

// The service's logger, its destination swapped for /dev/null (pino.symbols.streamSym holds it; children made
// afterwards inherit it).
const root = createLogger({ level: "info" });
(root as unknown as Record<symbol, unknown>)[pino.symbols.streamSym] = pino.destination({
  dest: "/dev/null",
  sync: true,
});
const loggers = { "root (redacting)": root, "access child": accessLogger(root) };

const line = (i: number) => ({
  req: {
    id: `0b8f7c1e-2f49-4a5e-9d8e-${String(i).padStart(12, "0")}`,
    method: "GET",
    url: "/api/loans?limit=20",
    remoteAddress: "127.0.0.1",
  },
  res: { statusCode: 200 },
  responseTime: 1,
  clientIp: "127.0.0.1",
});

const results = new Map<string, number[]>();
for (let r = 0; r < rounds; r++) {
  for (const [name, logger] of Object.entries(loggers)) {
    const start = performance.now();
    for (let i = 0; i < lines; i++) logger.info(line(i), "request completed");
    const us = ((performance.now() - start) * 1000) / lines;
    results.set(name, [...(results.get(name) ?? []), us]);
  }
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
const [a, b] = [...results.values()].map(median) as [number, number];
process.stdout.write(`Node ${process.version}, ${lines} lines × ${rounds} rounds, median µs per line\n`);
for (const [name, xs] of results) {
  process.stdout.write(
    `  ${name.padEnd(18)} ${median(xs).toFixed(2)}  (rounds: ${xs.map((x) => x.toFixed(2)).join(", ")})\n`,
  );
}
process.stdout.write(`  access child ÷ root: ${(b / a).toFixed(2)}\n`);
