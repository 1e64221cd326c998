/** Drives one endpoint with wrk (closed loop: fixed connections, fixed duration) and reads its summary. */
import { spawn } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const LUA_DIR = fileURLToPath(new URL("../lua/", import.meta.url));

export interface WrkResult {
  requests: number;
  durationS: number;
  rps: number;
  bytes: number;
  errors: { connect: number; read: number; write: number; status: number; timeout: number };
  errorCount: number;
  latencyMs: { mean: number; p50: number; p90: number; p99: number; p999: number; max: number };
}

export type Script = "get" | "by-id" | "create" | "soak";

/** The script wrk runs: common.lua (close mode, the JSON summary) followed by the endpoint's own. */
export function buildScript(outDir: string, script: Script): string {
  mkdirSync(outDir, { recursive: true });
  const path = join(outDir, `${script}.lua`);
  const common = readFileSync(join(LUA_DIR, "common.lua"), "utf8");
  writeFileSync(path, `${common}\n${readFileSync(join(LUA_DIR, `${script}.lua`), "utf8")}`);
  return path;
}

export interface WrkRun {
  url: string;
  script: string;
  connections: number;
  threads: number;
  durationS: number;
  close: boolean;
  env?: Record<string, string>;
}

/** Runs a load generator to its end and returns its exit code and output (never rejects on a failure). */
export function capture(command: string, args: string[], env: NodeJS.ProcessEnv = process.env) {
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    const child = spawn(command, args, { env, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout.on("data", (c: Buffer) => {
      out += c.toString();
    });
    child.stderr.on("data", (c: Buffer) => {
      err += c.toString();
    });
    child.on("close", (c) => resolve({ code: c, stdout: out, stderr: err }));
  });
}

export async function runWrk(run: WrkRun): Promise<WrkResult> {
  const args = [
    `-t${run.threads}`,
    `-c${run.connections}`,
    `-d${run.durationS}s`,
    "--timeout",
    "5s",
    "-s",
    run.script,
    run.url,
  ];
  const env = { ...process.env, ...run.env, BENCH_CLOSE: run.close ? "1" : "0" };
  const { code, stdout, stderr } = await capture("wrk", args, env);
  const line = stdout.split("\n").find((l) => l.startsWith("BENCH_JSON "));
  if (code !== 0 || !line) {
    throw new Error(`wrk ${args.join(" ")} failed (exit ${code})\n${stdout}\n${stderr}`);
  }
  const j = JSON.parse(line.slice("BENCH_JSON ".length));
  const durationS = j.duration_us / 1e6;
  const ms = (us: number) => Math.round(us / 10) / 100;
  const errorCount = Object.values(j.errors as Record<string, number>).reduce((a, b) => a + b, 0);
  return {
    requests: j.requests,
    durationS,
    rps: Math.round(j.requests / durationS),
    bytes: j.bytes,
    errors: j.errors,
    errorCount,
    latencyMs: {
      mean: ms(j.latency_us.mean),
      p50: ms(j.latency_us.p50),
      p90: ms(j.latency_us.p90),
      p99: ms(j.latency_us.p99),
      p999: ms(j.latency_us.p999),
      max: ms(j.latency_us.max),
    },
  };
}
