// test/run.ts: process-group ci-light
/**
 * The versioned pre-push hook, run with stand-in `dagger` and `npm` commands on PATH that only record how
 * they were called: nothing is executed (no pipeline, no lint, no tests).
 */
import { spawnSync } from "node:child_process";
import { chmodSync, cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { repoRoot } from "./support/sandbox.js";

const HOOK = join(repoRoot, ".githooks", "pre-push");

interface HookRun {
  code: number | null;
  output: string;
  calls: string[];
}

/** Runs the hook in a scratch directory with stand-ins for `git`, `dagger` and/or `npm` (PATH holds nothing else). */
function runHook(standIns: { dagger?: number; npm?: number; npmTest?: number }): HookRun {
  const dir = mkdtempSync(join(tmpdir(), "loan-ci-hook-"));
  try {
    const bin = join(dir, "bin");
    const repo = join(dir, "repo");
    mkdirSync(bin);
    mkdirSync(repo);
    mkdirSync(join(repo, ".githooks"));
    cpSync(HOOK, join(repo, ".githooks", "pre-push"));
    const log = join(dir, "calls.log");
    writeFileSync(log, "");
    const standIn = (name: string, body: string) => {
      writeFileSync(join(bin, name), `#!/bin/sh\necho "${name} $*" >> "${log}"\n${body}\n`);
      chmodSync(join(bin, name), 0o755);
    };
    if (standIns.dagger !== undefined) standIn("dagger", `exit ${standIns.dagger}`);
    if (standIns.npm !== undefined) {
      standIn("npm", `[ "$1" = test ] && exit ${standIns.npmTest ?? standIns.npm}\nexit ${standIns.npm}`);
    }
    // git only has to name the repository's top level (the pipeline's Node image has no git at all).
    writeFileSync(join(bin, "git"), `#!/bin/sh\n[ "$1 $2" = "rev-parse --show-toplevel" ] && pwd && exit 0\nexit 1\n`);
    chmodSync(join(bin, "git"), 0o755);
    const result = spawnSync(join(repo, ".githooks", "pre-push"), ["origin", "git@example.invalid:o/r.git"], {
      cwd: repo,
      env: { PATH: bin, HOME: dir },
      input: "",
      timeout: 10_000,
    });
    return {
      code: result.status,
      output: `${result.stdout}${result.stderr}`,
      calls: readFileSync(log, "utf8").trim().split("\n").filter(Boolean),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const Hook = suite("pre-push hook (stand-ins record, nothing executed)");

Hook("the hook is executable and `npm run hooks:install` points git at .githooks", () => {
  assert.ok((statSync(HOOK).mode & 0o111) !== 0, "executable");
  const pkg = JSON.parse(readFileSync(join(repoRoot, "package.json"), "utf8")) as { scripts: Record<string, string> };
  assert.is(pkg.scripts["hooks:install"], "git config core.hooksPath .githooks");
});

Hook("with dagger on PATH it runs `dagger call ci --source .` and nothing else", () => {
  const run = runHook({ dagger: 0, npm: 0 });
  assert.is(run.code, 0, run.output);
  assert.equal(run.calls, ["dagger call ci --source ."]);
});

Hook("a failing pipeline blocks the push", () => {
  const run = runHook({ dagger: 1, npm: 0 });
  assert.is.not(run.code, 0);
});

Hook("without dagger it runs lint, type-check and tests, and says the pipeline was not run", () => {
  const run = runHook({ npm: 0 });
  assert.is(run.code, 0, run.output);
  assert.equal(run.calls, ["npm run --silent lint", "npm run --silent typecheck", "npm test"]);
  assert.match(run.output, "the container pipeline");
  assert.match(run.output, "was NOT run");
});

Hook("without dagger, failing tests block the push", () => {
  const run = runHook({ npm: 0, npmTest: 1 });
  assert.is.not(run.code, 0);
  assert.not.match(run.output, "local checks passed");
});

Hook.run();
