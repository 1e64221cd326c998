/**
 * The replay: the pipeline's own code (`ci/main.ts` → `ci/src/pipeline.ts`) runs against the recording engine,
 * and every chain it asks the engine to evaluate (`stdout`, `sync`, `file.contents`) is executed for real on
 * this machine's container runtime by executor.ts, with the stand-ins of standins.ts for the pinned images.
 * The answers the pipeline gets are the real ones (real output, real ExecErrors), so its own control flow
 * (ci's concurrency, a build failure skipping the scan) runs on real outcomes.
 *
 * What is replayed is whatever the pipeline asks for: nothing here names an image, a command or a flag of
 * the pipeline. Each evaluation is classified into a step by its own chain (the last command it runs, or an
 * image build). Trivy's image has no stand-in, so the scan evaluation stops as NOT RUN.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { type Chain, RecordingEngine } from "../../ci/test/support/recording-engine.js";
import { root } from "../nginx/support.js";
import { type Evaluation, Replayer } from "./executor.js";
import { standIns } from "./standins.js";

export type Outcome = "PASS" | "FAIL" | "NOT RUN";

export interface Step {
  name: string;
  outcome: Outcome;
  /** Its own command's (or build's) run time. */
  seconds: number;
  /** From the pipeline's request to the answer (includes shared work such as `npm ci`, and queueing). */
  wallSeconds: number;
  evaluation: Evaluation;
  /** A one-line note: test counts, exit code, or why it did not run. */
  note: string;
}

export interface ReplayResult {
  /** ci/main.ts's exit code. */
  code: number | null;
  stdout: string;
  stderr: string;
  steps: Step[];
  replayer: Replayer;
  engine: RecordingEngine;
  /** Wall time of the whole replay, seconds. */
  seconds: number;
}

/** The host's CA bundle (this machine reaches registries through a TLS-intercepting proxy). */
export function hostCaFile(): string | undefined {
  return [
    process.env.NPM_CA_FILE,
    process.env.SSL_CERT_FILE,
    process.env.NODE_EXTRA_CA_CERTS,
    "/etc/ssl/certs/ca-certificates.crt",
  ]
    .filter((f): f is string => !!f)
    .find((f) => existsSync(f));
}

/** The step an evaluated chain is: named by its last command (`npm run lint` → lint), or `build` for an image build. */
export function stepName(chain: Chain): string {
  const execs = chain.filter((s) => s.field === "withExec").map((s) => s.args.args as string[]);
  const last = execs[execs.length - 1];
  if (last) {
    if (last[0] === "npm" && last[1] === "run" && last[2]) return last[2];
    if (last[0] === "npm" && last[1] === "test") return "test";
    if (last[0] === "trivy") return "scan";
    return last.join(" ");
  }
  if (JSON.stringify(chain).includes('"dockerBuild"')) return "build";
  return chain.map((s) => s.field).join(".");
}

/** `N passed, N failed` from a test run's output (the project's closing line), if present. */
export function testCounts(output: string): { passed: number; failed: number } | undefined {
  const lines = [...output.matchAll(/^(\d+) passed, (\d+) failed/gm)];
  const last = lines[lines.length - 1];
  return last ? { passed: Number(last[1]), failed: Number(last[2]) } : undefined;
}

function note(step: Omit<Step, "note">): string {
  const e = step.evaluation;
  const counts = testCounts(`${e.stdout}\n${e.stderr}`);
  if (step.outcome === "NOT RUN") return `not run: ${e.reason?.replace(/^NotRunnable: /, "") ?? ""}`;
  const parts: string[] = [];
  if (counts) parts.push(`${counts.passed} passed, ${counts.failed} failed in the container`);
  if (e.exitCode !== undefined) parts.push(`exit code ${e.exitCode}`);
  if (e.reason) parts.push(e.reason.split("\n")[0] ?? "");
  if (step.name === "build" && e.image) parts.push(`image ${e.image}`);
  return parts.join("; ");
}

/**
 * Runs `npx tsx ci/main.ts <command>` of the tree at `sourceRoot` (its own main.ts and pipeline, uploading
 * that tree) in this process against a recording engine whose evaluations execute for real.
 */
export async function replay(
  command: string,
  options: { sourceRoot?: string; log?: (line: string) => void; jobs?: number } = {},
): Promise<ReplayResult> {
  const started = Date.now();
  const sourceRoot = options.sourceRoot ?? root;
  const images = await standIns();
  const replayer = new Replayer({
    images: { [images.node.pinned]: images.node.tag, [images.postgres.pinned]: images.postgres.tag },
    caFile: hostCaFile(),
    log: options.log,
    jobs: options.jobs ?? Number(process.env.REPLAY_JOBS ?? 1),
  });
  const engine = await new RecordingEngine({ execute: replayer.execute, onContents: replayer.contents }).start();
  const saved = { port: process.env.DAGGER_SESSION_PORT, token: process.env.DAGGER_SESSION_TOKEN };
  Object.assign(process.env, engine.sessionEnv());
  let stdout = "";
  let stderr = "";
  const sink = (write: (s: string) => void) => ({
    write: (chunk: string | Uint8Array) => {
      write(chunk.toString());
      return true;
    },
  });
  try {
    const { main } = (await import(
      pathToFileURL(join(sourceRoot, "ci", "main.ts")).href
    )) as typeof import("../../ci/main.js");
    const code = await main(
      [command],
      {},
      {
        stdout: sink((s) => {
          stdout += s;
        }),
        stderr: sink((s) => {
          stderr += s;
        }),
      },
    );
    const steps = replayer.evaluations.map((evaluation): Step => {
      const step = {
        name: stepName(evaluation.chain),
        outcome: evaluation.outcome,
        seconds: evaluation.ownSeconds,
        wallSeconds: evaluation.seconds,
        evaluation,
      };
      return { ...step, note: note(step) };
    });
    return { code, stdout, stderr, steps, replayer, engine, seconds: (Date.now() - started) / 1000 };
  } finally {
    for (const [name, value] of [
      ["DAGGER_SESSION_PORT", saved.port],
      ["DAGGER_SESSION_TOKEN", saved.token],
    ] as const) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
    await engine.stop();
  }
}

/** One line per step: `PASS  test  212.4 s  (150 passed, 0 failed in the container)`. */
export function stepLines(steps: Step[]): string[] {
  const width = Math.max(...steps.map((s) => s.name.length));
  return steps.map(
    (s) =>
      `replay: ${s.outcome.padEnd(7)}  ${s.name.padEnd(width)}  ${s.seconds.toFixed(1).padStart(6)} s` +
      (s.note ? `  (${s.note})` : ""),
  );
}

/**
 * ci's verdict from the real outcomes: FAIL if a step failed, NOT PASSED if a step could not run here (the
 * gate is not known to pass), PASS only if every step ran and passed.
 */
export function ciVerdict(steps: Step[]): string {
  const failed = steps.filter((s) => s.outcome === "FAIL").map((s) => s.name);
  const notRun = steps.filter((s) => s.outcome === "NOT RUN").map((s) => s.name);
  if (failed.length)
    return `ci: FAIL (${failed.join(", ")} failed${notRun.length ? `; ${notRun.join(", ")} not run` : ""})`;
  if (notRun.length) return `ci: NOT PASSED (every step that ran passed; ${notRun.join(", ")} not run here)`;
  return "ci: PASS";
}
