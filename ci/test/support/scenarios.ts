/**
 * The runs the pipeline tests look at, started once and concurrently (each is a separate process, a few
 * seconds each) and shared by the test files. NOTHING IS EXECUTED: every run talks to a recording engine
 * that only answers and records GraphQL (see recording-engine.ts).
 */
import {
  type Chain,
  type EngineOptions,
  type ExecAnswer,
  type ExecFailure,
  RecordingEngine,
} from "./recording-engine.js";
import { decodeRegistration, type Registration } from "./registration.js";
import { type DaggerCallResult, daggerCall, type ProcessResult, registerModule, runClient } from "./run.js";
import { makeModuleSandbox } from "./sandbox.js";

/** A value standing in for a registry password: it must never appear in anything a client sends. */
export const PASSWORD_CANARY = "canary-registry-password-5b9e1d";
export const TOKEN_CANARY = "canary-github-token-0c77aa";
export const COMMIT = "0123456789abcdef0123456789abcdef01234567";
export const MIXED_CASE_REPOSITORY = "Loan-Org/Loan-Service";

export const TEST_FAILURE: ExecFailure = {
  exitCode: 1,
  stdout: "not ok 7 - POST /api/loans rejects an amount of 0\n41 passed, 1 failed\n",
  stderr: "npm error Lifecycle script `test` failed with error: code 1\n",
};

export const TRIVY_FAILURE: ExecFailure = {
  exitCode: 1,
  stdout: "Total: 1 (HIGH: 1, CRITICAL: 0)\n| libssl3 | CVE-2099-0001 | HIGH | fixed | 3.0.11-1 | 3.0.11-2 |\n",
  stderr: "",
};

const isTrivyGate = (cmd: string[]) => cmd[0] === "trivy" && cmd.join(" ").includes("--exit-code 1");
const isNpmTest = (cmd: string[]) => cmd.join(" ") === "npm test";

/** What a healthy project "prints": enough for the pipeline to go on. */
function healthy(cmd: string[]): ExecAnswer {
  if (isNpmTest(cmd)) return { stdout: "ok 1 - GET /health\n42 passed, 0 failed\n" };
  if (isTrivyGate(cmd)) return { stdout: "Total: 0 (HIGH: 0, CRITICAL: 0)\n" };
  return { stdout: `(recorded, not executed) ${cmd.join(" ")}\n` };
}

type Fault = "none" | "npm-test" | "trivy-arm64";

function onExec(fault: Fault): EngineOptions["onExec"] {
  return (cmd: string[], chain: Chain, engine: RecordingEngine) => {
    if (fault === "npm-test" && isNpmTest(cmd)) return TEST_FAILURE;
    // Only the linux/arm64 variant is "vulnerable": every platform that would be pushed must be gated.
    if (
      fault === "trivy-arm64" &&
      isTrivyGate(cmd) &&
      JSON.stringify(engine.expandChain(chain)).includes("linux/arm64")
    ) {
      return TRIVY_FAILURE;
    }
    return healthy(cmd);
  };
}

const onContents: EngineOptions["onContents"] = (chain) =>
  chain[chain.length - 1]?.field === "file" && chain[chain.length - 1]?.args.path === "package.json"
    ? JSON.stringify({ name: "loan-service", version: "0.1.0" })
    : undefined;

/** What the engine hands a module call: the contextual `source` directory and the `password` secret. */
const MODULE_OBJECTS: EngineOptions["objects"] = {
  "rec:source": [{ field: "contextDirectory", args: { defaultPath: "/" } }],
  "rec:password": [{ field: "secret", args: { uri: "env://GITHUB_TOKEN" } }],
};

const moduleOptions = (fault: Fault): Omit<EngineOptions, "functionCall"> => ({
  onExec: onExec(fault),
  onContents,
  objects: MODULE_OBJECTS,
  secretValues: { "rec:password": PASSWORD_CANARY },
});

const SOURCE_ARG = { source: JSON.stringify("rec:source") };
const PUBLISH_ARGS = {
  ...SOURCE_ARG,
  registry: JSON.stringify("ghcr.io"),
  repository: JSON.stringify(MIXED_CASE_REPOSITORY),
  tag: JSON.stringify("latest"),
  username: JSON.stringify("release-bot"),
  password: JSON.stringify("rec:password"),
  commit: JSON.stringify(COMMIT),
};

export interface ClientRun {
  engine: RecordingEngine;
  run: ProcessResult;
}

/** The CI-like environment the client runs with (the password only ever as a canary). */
const CLIENT_ENV = {
  GITHUB_SHA: COMMIT,
  GITHUB_REPOSITORY: MIXED_CASE_REPOSITORY,
  GITHUB_ACTOR: "release-bot",
  REGISTRY_PASSWORD: PASSWORD_CANARY,
  GITHUB_TOKEN: TOKEN_CANARY,
};

/** `npx tsx ci/main.ts …` as a child process against a fresh recording engine. */
async function clientProcess(args: string[], fault: Fault): Promise<ClientRun> {
  const engine = await new RecordingEngine({ onExec: onExec(fault), onContents }).start();
  try {
    return { engine, run: await runClient(args, { ...engine.sessionEnv(), ...CLIENT_ENV }) };
  } finally {
    await engine.stop();
  }
}

let inProcess = Promise.resolve();

/**
 * `main()` of ci/main.ts called in this process (the same code the executable runs, minus setting the exit
 * code), which spares a Node start and an SDK load per run. The SDK reads its session from `process.env` and
 * keeps one global connection, so these runs take turns.
 */
function clientInProcess(args: string[], fault: Fault): Promise<ClientRun> {
  const turn = inProcess.then(async (): Promise<ClientRun> => {
    const { main } = await import("../../main.js");
    const engine = await new RecordingEngine({ onExec: onExec(fault), onContents }).start();
    const saved = { port: process.env.DAGGER_SESSION_PORT, token: process.env.DAGGER_SESSION_TOKEN };
    Object.assign(process.env, engine.sessionEnv());
    const run: ProcessResult = { code: null, stdout: "", stderr: "", timedOut: false };
    const sink = (key: "stdout" | "stderr") => ({
      write: (chunk: string | Uint8Array) => {
        run[key] += chunk.toString();
        return true;
      },
    });
    try {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<null>((resolve) => {
        timer = setTimeout(() => resolve(null), 180_000);
      });
      run.code = await Promise.race([
        main(args, { ...CLIENT_ENV }, { stdout: sink("stdout"), stderr: sink("stderr") }),
        timeout,
      ]);
      clearTimeout(timer);
      run.timedOut = run.code === null;
      return { engine, run };
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
  });
  inProcess = turn.then(
    () => undefined,
    () => undefined,
  );
  return turn;
}

/** Runs `jobs` with at most `limit` at a time. */
function pool(limit: number) {
  let active = 0;
  const waiting: Array<() => void> = [];
  return async <T>(job: () => Promise<T>): Promise<T> => {
    if (active >= limit) await new Promise<void>((resolve) => waiting.push(resolve));
    active++;
    try {
      return await job();
    } finally {
      active--;
      waiting.shift()?.();
    }
  };
}

export interface Scenarios {
  registration: { engine: RecordingEngine; run: ProcessResult; decoded: Registration };
  module: {
    ci: DaggerCallResult;
    testFails: DaggerCallResult;
    publish: DaggerCallResult;
    publishScanFails: DaggerCallResult;
  };
  client: {
    ci: ClientRun;
    ciTestFails: ClientRun;
    publish: ClientRun;
    publishTestFails: ClientRun;
    publishScanFails: ClientRun;
    noEngine: ProcessResult;
  };
}

let started: Promise<Scenarios> | undefined;

/** Starts every run once (at most three processes at a time) and resolves when all are done. */
export function scenarios(): Promise<Scenarios> {
  started ??= (async () => {
    const sandbox = makeModuleSandbox();
    const run = pool(3);
    try {
      const registration = run(() => registerModule(sandbox)).then((r) => ({
        ...r,
        decoded: decodeRegistration(r.engine),
      }));
      const call = (fn: string, args: Record<string, string>, fault: Fault) =>
        registration.then((r) => run(() => daggerCall(sandbox, r.decoded, fn, args, moduleOptions(fault))));
      const [
        reg,
        mCi,
        mTestFails,
        mPublish,
        mPublishScanFails,
        cPublishScanFails,
        cNoEngine,
        cCi,
        cCiTestFails,
        cPublish,
        cPublishTestFails,
      ] = await Promise.all([
        registration,
        call("ci", SOURCE_ARG, "none"),
        call("test", SOURCE_ARG, "npm-test"),
        call("publish", PUBLISH_ARGS, "none"),
        call("publish", PUBLISH_ARGS, "trivy-arm64"),
        run(() => clientProcess(["publish"], "trivy-arm64")),
        // No session and no CLI binary to start one: the SDK cannot reach any engine.
        run(() => runClient(["lint"], { _EXPERIMENTAL_DAGGER_CLI_BIN: "/nonexistent/dagger" })),
        clientInProcess(["ci"], "none"),
        clientInProcess(["ci"], "npm-test"),
        clientInProcess(["publish", "--tag", "latest"], "none"),
        clientInProcess(["publish"], "npm-test"),
      ]);
      return {
        registration: reg,
        module: { ci: mCi, testFails: mTestFails, publish: mPublish, publishScanFails: mPublishScanFails },
        client: {
          ci: cCi,
          ciTestFails: cCiTestFails,
          publish: cPublish,
          publishTestFails: cPublishTestFails,
          publishScanFails: cPublishScanFails,
          noEngine: cNoEngine,
        },
      };
    } finally {
      sandbox.cleanup();
    }
  })();
  return started;
}
