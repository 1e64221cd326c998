// test/run.ts: process-group ci-light
/**
 * The pipeline's pure helpers: publish targets, summaries, failure messages. Nothing is executed and no
 * engine is involved.
 */
import { ExecError } from "@dagger.io/dagger";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { ciFailure, publishTarget, SOURCE_IGNORE, type StepResult, summarize, tail } from "../src/pipeline.js";

const Units = suite("pipeline helpers (no engine, nothing executed)");

const commit = "89ABCDEF0123456789abcdef0123456789abcdef";

Units("publishTarget lower-cases the repository and adds sha-<commit> when the commit is known", () => {
  assert.equal(publishTarget({ registry: "ghcr.io", repository: "Loan-Org/Loan-Service", tag: "latest", commit }), {
    image: "ghcr.io/loan-org/loan-service",
    registry: "ghcr.io",
    repository: "loan-org/loan-service",
    commit: commit.toLowerCase(),
    tags: ["latest", `sha-${commit.toLowerCase()}`],
  });
  assert.equal(publishTarget({ registry: "ghcr.io", repository: "o/n", tag: "v1.2.3" }).tags, ["v1.2.3"]);
  assert.equal(publishTarget({ registry: "ghcr.io", repository: "o/n", tag: "v1", commit: "" }).tags, ["v1"]);
});

Units("publishTarget rejects what a registry would reject, before any gate runs", () => {
  const bad = [
    { registry: "ghcr.io", repository: "o/n", tag: "has space" },
    { registry: "ghcr.io", repository: "o//n", tag: "latest" },
    { registry: "ghcr.io", repository: "o/n!", tag: "latest" },
    { registry: "", repository: "o/n", tag: "latest" },
    { registry: "ghcr.io", repository: "o/n", tag: "latest", commit: "not-a-sha" },
  ];
  for (const options of bad) assert.throws(() => publishTarget(options), JSON.stringify(options));
});

Units("the summary lists every step; a failing ci carries the failing command's output and details", () => {
  const failure = new ExecError('process "npm test" did not complete successfully: exit code: 1', {
    cmd: ["npm", "test"],
    exitCode: 1,
    stdout: "41 passed, 1 failed\n",
    stderr: "boom\n",
    extensions: { _type: "EXEC_ERROR" },
  });
  const results: StepResult[] = [
    { name: "lint", status: "PASS", seconds: 1.25, output: "" },
    {
      name: "test",
      status: "FAIL",
      seconds: 30,
      output: "command: npm test\nexit code: 1\nstdout:\n41 passed, 1 failed",
      error: failure,
    },
    { name: "scan", status: "SKIP", seconds: 0, output: "skipped: the build failed" },
  ];
  const summary = summarize(results);
  assert.match(summary, /PASS {2}lint {2}\s+1\.3 s/);
  assert.match(summary, "FAIL  test");
  assert.match(summary, "exit code 1");
  assert.match(summary, "SKIP  scan");
  assert.match(summary, "result: FAILED: test");
  const error = ciFailure(results);
  assert.instance(error, ExecError);
  assert.match(error.message, "--- test failed ---");
  assert.match(error.message, "41 passed, 1 failed");
  assert.is((error as ExecError).stdout, "41 passed, 1 failed\n");
});

Units("tail keeps the end of long output", () => {
  const text = Array.from({ length: 100 }, (_, i) => `line ${i}`).join("\n");
  const kept = tail(text, 3).split("\n");
  assert.equal(kept, ["… (97 earlier lines)", "line 97", "line 98", "line 99"]);
});

Units("the ignore list is a plain array literal of strings (the introspector evaluates it statically)", () => {
  assert.ok(Array.isArray(SOURCE_IGNORE) && SOURCE_IGNORE.every((p) => typeof p === "string"));
});

Units.run();
