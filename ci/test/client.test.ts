// test/run.ts: process-group ci-scenarios (scenarios() records its module and client runs once per process)
/**
 * The standalone path, offline: `ci/main.ts` against a recording engine. Some runs are child processes
 * (`npx tsx ci/main.ts …`, to see real exit codes); the others call its exported `main()` in this process,
 * which is the same code minus setting the exit code. NOTHING IS EXECUTED: the engine only records.
 */

import { suite } from "uvu";
import * as assert from "uvu/assert";
import { main } from "../main.js";
import { SOURCE_IGNORE } from "../src/pipeline.js";
import { execQueries, expanded, isTrivyGate, queryRunning, renderWithSource, sub } from "./support/chains.js";
import { runClient } from "./support/run.js";
import { repoRoot } from "./support/sandbox.js";
import {
  COMMIT,
  OIDC_TOKEN_CANARY,
  OIDC_URL_CANARY,
  PASSWORD_CANARY,
  type Scenarios,
  scenarios,
  TOKEN_CANARY,
} from "./support/scenarios.js";

const Client = suite<{ s: Scenarios }>("standalone client ci/main.ts (recorded, not executed)");

Client.before(async (context) => {
  context.s = await scenarios();
});

Client("ci: prints the summary and exits 0", ({ s }) => {
  const { run, engine } = s.client.ci;
  assert.is(run.code, 0, run.stderr);
  assert.match(run.stdout, "result: all gates passed");
  assert.equal(engine.internalErrors, []);
  assert.is(engine.unauthorized, 0);
  assert.is(engine.publishQueries().length, 0);
});

Client("the source is the repository root, uploaded without the ignore list's paths", ({ s }) => {
  const { engine } = s.client.ci;
  const chain = expanded(engine, queryRunning(engine, ["npm", "test"]));
  const source = chain.find((x) => x.field === "withDirectory" && sub(x.args.source)?.[0]?.field === "host");
  assert.ok(source, "the workspace copies a host directory");
  assert.equal(sub(source?.args.source), [
    { field: "host", args: {} },
    { field: "directory", args: { path: repoRoot, exclude: SOURCE_IGNORE } },
  ]);
});

Client("both entry points ask the engine for the same test step (one body of pipeline code)", ({ s }) => {
  const fromClient = expanded(s.client.ci.engine, queryRunning(s.client.ci.engine, ["npm", "test"]));
  const fromModule = expanded(s.module.ci.engine, queryRunning(s.module.ci.engine, ["npm", "test"]));
  // Everything but the per-run cache buster is identical.
  const strip = (text: string) => text.replace(/"CACHEBUSTER", value: "[^"]*"/, '"CACHEBUSTER", value: <per run>');
  assert.is(strip(renderWithSource(fromClient)), strip(renderWithSource(fromModule)));
});

Client("ci with failing tests (injected ExecError): exit 1, the summary and the failing output on stderr", ({ s }) => {
  const { run } = s.client.ciTestFails;
  assert.is(run.code, 1);
  assert.match(run.stderr, "FAIL  test");
  assert.match(run.stderr, "result: FAILED: test");
  assert.match(run.stderr, "41 passed, 1 failed");
  assert.match(run.stderr, "Lifecycle script `test` failed");
});

Client("publish: secret by env:// reference, value never sent, lower-cased repository, refs with digests", ({ s }) => {
  const { run, engine } = s.client.publish;
  assert.is(run.code, 0, run.stderr);
  const secretUris = engine.queries.filter((q) => q.chain[0]?.field === "secret").map((q) => q.chain[0]?.args.uri);
  assert.equal([...new Set(secretUris)].sort(), [
    "env://ACTIONS_ID_TOKEN_REQUEST_TOKEN",
    "env://ACTIONS_ID_TOKEN_REQUEST_URL",
    "env://REGISTRY_PASSWORD",
  ]);
  for (const canary of [PASSWORD_CANARY, TOKEN_CANARY, OIDC_TOKEN_CANARY, OIDC_URL_CANARY]) {
    assert.not.match(engine.allQueryText(), canary);
    assert.not.match(run.stdout + run.stderr, canary);
  }
  assert.is(engine.queries.filter((q) => q.leaf === "plaintext").length, 0);
  const addresses = engine.publishQueries().map((q) => q.chain[q.chain.length - 1]?.args.address);
  assert.equal(addresses, ["ghcr.io/loan-org/loan-service:latest", `ghcr.io/loan-org/loan-service:sha-${COMMIT}`]);
  const published = run.stdout
    .trim()
    .split("\n")
    .filter((line) => line.startsWith("published "));
  assert.is(published.length, 2);
  assert.match(published[0] ?? "", /^published ghcr\.io\/loan-org\/loan-service:latest@sha256:[0-9a-f]{64}$/);
  assert.is(published[1]?.split("@")[0], `published ghcr.io/loan-org/loan-service:sha-${COMMIT}`);
  assert.match(published[1] ?? "", /@sha256:[0-9a-f]{64}$/);
});

Client("publish with failing tests (injected ExecError): exit 1, no publish request, the test output", ({ s }) => {
  const { run, engine } = s.client.publishTestFails;
  assert.is(run.code, 1);
  assert.is(engine.publishQueries().length, 0);
  assert.match(run.stderr, "publish failed");
  assert.match(run.stderr, "41 passed, 1 failed");
});

Client(
  "publish with a Trivy failure (injected), as a process: exit code 1, no publish request, Trivy's output",
  ({ s }) => {
    const { run, engine } = s.client.publishScanFails;
    assert.is(run.timedOut, false);
    assert.is(run.code, 1);
    assert.is(engine.publishQueries().length, 0);
    assert.ok(
      execQueries(engine, isTrivyGate).some((q) => q.failed),
      "a Trivy gate failed",
    );
    assert.match(run.stderr, "CVE-2099-0001");
  },
);

Client("no engine reachable, as a process: exit code 3 and how to get one", ({ s }) => {
  const run = s.client.noEngine;
  assert.is(run.code, 3, run.stderr);
  assert.match(run.stderr, "No Dagger engine could be reached, so nothing ran.");
  assert.match(run.stderr, "https://docs.dagger.io/install");
  assert.match(run.stderr, "dagger run npx tsx ci/main.ts");
});

Client("usage, as a process: an unknown command or flag exits 2 with the usage text", async () => {
  const [unknown, badFlag] = await Promise.all([runClient(["deploy"], {}), runClient(["lint", "--registri", "x"], {})]);
  for (const run of [unknown, badFlag]) {
    assert.is(run.code, 2, run.stderr);
    assert.match(run.stderr, "usage: npx tsx ci/main.ts <command>");
  }
  assert.match(unknown.stderr, "unknown command: deploy");
});

Client("usage: publish-only flags elsewhere, or publish without repository or password, exit 2", async () => {
  const quiet = { stdout: { write: () => true }, stderr: { write: () => true } };
  assert.is(await main(["lint", "--tag", "v1"], {}, quiet), 2);
  assert.is(await main(["publish"], { GITHUB_ACTOR: "a", REGISTRY_PASSWORD: "x" }, quiet), 2);
  assert.is(await main(["publish", "--repository", "o/n"], { GITHUB_ACTOR: "a" }, quiet), 2);
  // Checked before any engine is contacted. Should that regress, no engine can be started from here either.
  process.env._EXPERIMENTAL_DAGGER_CLI_BIN = "/nonexistent/dagger";
  try {
    assert.is(
      await main(
        ["publish", "--repository", "o//n", "--tag", "v 1"],
        { GITHUB_ACTOR: "a", GITHUB_TOKEN: "x", COSIGN_KEY: "k" },
        quiet,
      ),
      2,
    );
    // Nothing unsigned is pushed: without a signing identity publish does not start.
    let said = "";
    const capture = {
      stdout: quiet.stdout,
      stderr: {
        write: (t: string) => {
          said += t;
          return true;
        },
      },
    };
    assert.is(await main(["publish", "--repository", "o/n"], { GITHUB_ACTOR: "a", GITHUB_TOKEN: "x" }, capture), 2);
    assert.match(said, "a signing identity: ACTIONS_ID_TOKEN_REQUEST_TOKEN and ACTIONS_ID_TOKEN_REQUEST_URL");
    assert.is(await main(["verify", "--repository", "o/n"], {}, quiet), 2, "verify needs --image");
    assert.is(await main(["sbom", "--tag", "x"], {}, quiet), 2, "publish flags are refused elsewhere");
  } finally {
    delete process.env._EXPERIMENTAL_DAGGER_CLI_BIN;
  }
});

Client.run();
