/**
 * The replay can fail: the same replay (the copy's own ci/main.ts and pipeline, the recorded chain executed
 * on containers) on copies of the source with one injected fault.
 *
 * - `test` on a copy whose only test suite holds one failing assertion (the other suites are removed from
 *   the copy so that the failure shows in about a minute instead of a full test run): the step fails with
 *   that assertion's output, and the pipeline reports it.
 * - `build` on a copy whose package.json declares a dependency its lockfile lacks: `npm ci` in the
 *   Dockerfile's first stage refuses, the image build fails, and the pipeline reports it.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { SOURCE_IGNORE } from "../../ci/src/pipeline.js";
import { requireTool, root } from "../nginx/support.js";
import { copyFiltered } from "./executor.js";
import { type ReplayResult, replay, stepLines } from "./replay.js";

const test = suite<{ copies: string[]; results: ReplayResult[] }>("replay: injected failures fail it");

const INJECTED = "injected failure: the replay must see this assertion fail";

/** A copy of the source as the pipeline uploads it, with this checkout's node_modules linked (never uploaded). */
function sourceCopy(copies: string[]): string {
  const dir = mkdtempSync(join(tmpdir(), "loan-replay-copy-"));
  copies.push(dir);
  copyFiltered(root, dir, { exclude: SOURCE_IGNORE });
  symlinkSync(join(root, "node_modules"), join(dir, "node_modules"), "dir");
  return dir;
}

test.before(async (context) => {
  await requireTool("docker", ["info", "--format", "{{.ServerVersion}}"], "apt-get install -y docker.io");
  await requireTool("buildah", ["--version"], "apt-get install -y buildah");
  context.copies = [];
  context.results = [];
});

test.after(async ({ copies, results }) => {
  for (const r of results) await r.replayer.cleanup();
  for (const dir of copies) rmSync(dir, { recursive: true, force: true });
});

test("test: one failing assertion in the source fails the replayed test step with that output", async (context) => {
  const dir = sourceCopy(context.copies);
  // The default suites other than test/service (test/run.ts runs those present): gone from the copy.
  for (const suite of [
    ["test", "bench"],
    ["test", "compose"],
    ["ci", "test"],
  ])
    rmSync(join(dir, ...suite), { recursive: true, force: true });
  // Every suite file, in subfolders too (test/service/data/, models/): only the injected one may run.
  for (const name of readdirSync(join(dir, "test", "service"), { recursive: true, encoding: "utf8" })) {
    if (name.endsWith(".test.ts")) rmSync(join(dir, "test", "service", name));
  }
  writeFileSync(
    join(dir, "test", "service", "injected.test.ts"),
    `import { test } from "uvu";\nimport * as assert from "uvu/assert";\n\ntest("${INJECTED}", () => {\n  assert.is(1 + 1, 3);\n});\n\ntest.run();\n`,
  );
  const r = await replay("test", { sourceRoot: dir });
  context.results.push(r);
  process.stdout.write(`\n${stepLines(r.steps).join("\n")}\n`);
  assert.equal(
    r.steps.map((s) => [s.name, s.outcome]),
    [["test", "FAIL"]],
  );
  const e = r.steps[0]?.evaluation;
  assert.is(e?.exitCode, 1);
  assert.match(`${e?.stdout}`, INJECTED);
  assert.match(`${e?.stdout}`, /^0 passed, 1 failed$/m);
  // The pipeline got the real ExecError: ci/main.ts exits 1 with the failing output.
  assert.is(r.code, 1);
  assert.match(r.stderr, "test failed:");
  assert.match(r.stderr, "exit code: 1");
  assert.match(r.stderr, INJECTED);
});

test("build: a package.json out of sync with its lockfile fails the replayed image build", async (context) => {
  const dir = sourceCopy(context.copies);
  const pkg = JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as { dependencies: Record<string, string> };
  pkg.dependencies["left-pad"] = "1.3.0"; // not in package-lock.json
  writeFileSync(join(dir, "package.json"), `${JSON.stringify(pkg, null, 2)}\n`);
  const r = await replay("build", { sourceRoot: dir });
  context.results.push(r);
  process.stdout.write(`\n${stepLines(r.steps).join("\n")}\n`);
  assert.equal(
    r.steps.map((s) => [s.name, s.outcome]),
    [["build", "FAIL"]],
  );
  const reason = r.steps[0]?.evaluation.reason ?? "";
  assert.match(reason, "the image build failed");
  assert.match(reason, /npm ci|package\.json and package-lock\.json/);
  assert.match(reason, "left-pad");
  assert.is(r.code, 1);
  assert.match(r.stderr, "build failed:");
  assert.match(r.stderr, "left-pad");
});

test.run();
