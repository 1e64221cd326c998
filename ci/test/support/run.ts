/**
 * Runs the two entry points against a recording engine, as child processes, bounded in time:
 * - the module, the way the engine's TypeScript runtime starts it for `dagger call` (tsx on the runtime's
 *   start file in the module directory, session variables set, no arguments), one process per call;
 * - the standalone client, `ci/main.ts`.
 * Nothing is executed by the engine: see recording-engine.ts.
 */
import { spawn } from "node:child_process";
import { join } from "node:path";
import { type EngineOptions, RecordingEngine } from "./recording-engine.js";
import { type ModuleSandbox, repoRoot, tsxCli } from "./sandbox.js";

export interface ProcessResult {
  code: number | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

/** The environment a child gets: the host's PATH and HOME only, plus what the test adds. */
export function childEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: process.env.HOME, NO_COLOR: "1" };
  if (process.env.TMPDIR) env.TMPDIR = process.env.TMPDIR;
  return { ...env, ...extra };
}

export function runProcess(
  args: string[],
  options: { cwd: string; env: NodeJS.ProcessEnv; timeoutMs?: number },
): Promise<ProcessResult> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, args, {
      cwd: options.cwd,
      env: options.env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    let timedOut = false;
    child.stdout.on("data", (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    child.stderr.on("data", (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, options.timeoutMs ?? 180_000); // generous: three module runtimes start at once on a loaded 2-core machine
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, timedOut });
    });
  });
}

/** One run of the module runtime against `engine`: what the engine does for each function call. */
export function runModuleRuntime(sandbox: ModuleSandbox, engine: RecordingEngine): Promise<ProcessResult> {
  return runProcess([tsxCli, "--no-deprecation", "--tsconfig", sandbox.tsconfig, sandbox.entrypoint], {
    cwd: sandbox.dir,
    env: childEnv(engine.sessionEnv()),
  });
}

/**
 * The registration run: what the engine does when it loads the module (before `dagger functions` or the
 * first `dagger call`): the runtime is started with an empty parent name and registers the module's types.
 */
export async function registerModule(sandbox: ModuleSandbox): Promise<{ engine: RecordingEngine; run: ProcessResult }> {
  const engine = await new RecordingEngine({
    functionCall: { moduleName: "loan-ci", parentName: "", name: "", parent: "null", args: {} },
  }).start();
  try {
    return { engine, run: await runModuleRuntime(sandbox, engine) };
  } finally {
    await engine.stop();
  }
}

export interface DaggerCallResult {
  /** The constructor's run of the runtime, when the module registered a constructor. */
  constructorRun?: { engine: RecordingEngine; run: ProcessResult };
  /** The parent state the function was called with. */
  parent: string;
  engine: RecordingEngine;
  run: ProcessResult;
}

/**
 * What `dagger call <fn> …` does with a loaded module: construct the main object, then call the function
 * with that object's state as its parent.
 *
 * Construction: a module that registered a constructor gets a runtime run for it (name "", parent "null"),
 * and its returned state becomes the parent. A module without one (like loan-ci) is constructed by the
 * engine itself as an empty object — dagger/dagger core/object.go, installConstructor: "if no constructor
 * defined, install a basic one that initializes an empty object" — so the parent is "{}" and the runtime
 * runs once, for the function.
 */
export async function daggerCall(
  sandbox: ModuleSandbox,
  registration: { hasConstructor: boolean },
  fn: string,
  args: Record<string, string>,
  options: Omit<EngineOptions, "functionCall"> = {},
): Promise<DaggerCallResult> {
  let parent = "{}";
  let constructorRun: DaggerCallResult["constructorRun"];
  if (registration.hasConstructor) {
    const engine = await new RecordingEngine({
      functionCall: { moduleName: "loan-ci", parentName: "LoanCi", name: "", parent: "null", args: {} },
    }).start();
    try {
      constructorRun = { engine, run: await runModuleRuntime(sandbox, engine) };
    } finally {
      await engine.stop();
    }
    parent = engine.returnedValue ?? "null";
  }
  const engine = await new RecordingEngine({
    ...options,
    functionCall: { moduleName: "loan-ci", parentName: "LoanCi", name: fn, parent, args },
  }).start();
  try {
    return { constructorRun, parent, engine, run: await runModuleRuntime(sandbox, engine) };
  } finally {
    await engine.stop();
  }
}

/** `npx tsx ci/main.ts <args>` from the repository root, against `engine` (or none). */
export function runClient(args: string[], env: Record<string, string>): Promise<ProcessResult> {
  return runProcess([tsxCli, join(repoRoot, "ci", "main.ts"), ...args], { cwd: repoRoot, env: childEnv(env) });
}
