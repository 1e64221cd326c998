/**
 * Drives one endpoint with ApacheBench, the way the original API was measured (issue 11: "the original's own
 * method"): `ab -c <connections>`, a new connection for every request (ab speaks HTTP/1.0 without keep-alive),
 * for a fixed time. ab cannot vary its request: get-by-id reads one fixed loan and create posts one fixed body
 * (a new loan each time, all for one borrower). Its result has the shape of wrk's, so the report treats both alike.
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { capture, type WrkResult } from "./wrk.js";

export interface AbRun {
  url: string;
  connections: number;
  durationS: number;
  /** A JSON body to POST (create); GET otherwise. */
  postJson?: string;
  /** Where ab's percentile file and the body go. */
  workDir: string;
}

/** The number after `label:` in ab's summary. */
function field(out: string, label: string): number {
  const m = new RegExp(`^${label}:\\s+([\\d.]+)`, "m").exec(out);
  if (!m?.[1]) throw new Error(`ab printed no "${label}"`);
  return Number(m[1]);
}

export async function runAb(run: AbRun): Promise<WrkResult> {
  mkdirSync(run.workDir, { recursive: true });
  const csv = join(run.workDir, "ab-percentiles.csv");
  // -t alone caps the run at 50,000 requests; -n after it lifts the cap, so the time limit decides.
  const args = ["-q", "-c", String(run.connections), "-t", String(run.durationS), "-n", "100000000", "-e", csv];
  if (run.postJson !== undefined) {
    const body = join(run.workDir, "ab-body.json");
    writeFileSync(body, run.postJson);
    args.push("-p", body, "-T", "application/json");
  }
  args.push(run.url);
  const { code, stdout, stderr } = await capture("ab", args);
  if (code !== 0) throw new Error(`ab ${args.join(" ")} failed (exit ${code})\n${stdout}\n${stderr}`);
  const requests = field(stdout, "Complete requests");
  const durationS = field(stdout, "Time taken for tests");
  const failed = field(stdout, "Failed requests");
  const non2xx = Number(/^Non-2xx responses:\s+(\d+)/m.exec(stdout)?.[1] ?? 0);
  // ab's percentile file: "percent,ms" for 0..100, in fractional milliseconds.
  const percentile = new Map<number, number>();
  for (const line of readFileSync(csv, "utf8").split("\n").slice(1)) {
    const [p, ms] = line.split(",");
    if (p !== undefined && ms !== undefined) percentile.set(Number(p), Number(ms));
  }
  const at = (p: number) => Math.round((percentile.get(p) ?? Number.NaN) * 100) / 100;
  return {
    requests,
    durationS,
    rps: Math.round(requests / durationS),
    bytes: field(stdout, "Total transferred"),
    // ab's "Failed requests" are connection, length and exception failures; a status other than 2xx is counted apart.
    errors: { connect: 0, read: failed, write: 0, status: non2xx, timeout: 0 },
    errorCount: failed + non2xx,
    latencyMs: {
      mean: field(stdout, "Time per request"),
      p50: at(50),
      p90: at(90),
      p99: at(99),
      // ab reports whole percentiles only: its 99.9th is not known, the maximum stands in for it.
      p999: at(100),
      max: at(100),
    },
  };
}
