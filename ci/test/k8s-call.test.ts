// test/run.ts: process-group ci-scenarios (scenarios() records its module and client runs once per process)
/**
 * The Kubernetes functions through the `dagger call` path (the module runtime against a recording engine):
 * `render`, the `manifests` check and `release`. NOTHING IS EXECUTED: no kustomize, no container, no push; the
 * tests assert what the module asks the engine for — the pinned kustomize image over k8s/, the release
 * kustomization naming the digest `publish` returned, the gates before any push — and how it fails.
 */
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { K8S_OVERLAYS, K8S_SAMPLE_RELEASE_IMAGE, releaseJobName, releaseKustomization } from "../src/pipeline.js";
import { COSIGN } from "../src/supply-chain.js";
import { KUSTOMIZE_IMAGE, NODE_IMAGE, PUBLISH_PLATFORMS } from "../src/versions.js";
import {
  envValue,
  execIndex,
  execQueries,
  expanded,
  indexOf,
  isTrivyGate,
  lastExec,
  renderWithSource,
  sub,
} from "./support/chains.js";
import type { Chain, EngineOptions, ExecFailure, RecordingEngine } from "./support/recording-engine.js";
import { renderChain } from "./support/recording-engine.js";
import { type DaggerCallResult, daggerCall } from "./support/run.js";
import { makeModuleSandbox } from "./support/sandbox.js";
import { COMMIT, PASSWORD_CANARY, scenarios } from "./support/scenarios.js";

const DIGEST = `sha256:${"5e".repeat(32)}`;
const PUBLISHED = `ghcr.io/loan-org/loan-service:latest@${DIGEST}`;

const LINT_FAILURE: ExecFailure = {
  exitCode: 1,
  stdout: "",
  stderr: "lint/suspicious/noDebugger: debugger statement\n",
};

const options = (fault: "none" | "lint"): Omit<EngineOptions, "functionCall"> => ({
  onExec: (cmd: string[]) => {
    if (fault === "lint" && cmd.join(" ") === "npm run lint") return LINT_FAILURE;
    if (cmd[0] === "trivy" && cmd.includes("--exit-code") && cmd.includes("1")) return { stdout: "Total: 0\n" };
    return { stdout: `(recorded, not executed) ${cmd.join(" ")}\n` };
  },
  onContents: (chain: Chain) =>
    chain[chain.length - 1]?.field === "file" && chain[chain.length - 1]?.args.path === "package.json"
      ? JSON.stringify({ name: "loan-service", version: "0.1.0" })
      : undefined,
  objects: {
    "rec:source": [{ field: "contextDirectory", args: { defaultPath: "/" } }],
    "rec:password": [{ field: "secret", args: { uri: "env://GITHUB_TOKEN" } }],
    "rec:oidc-token": [{ field: "secret", args: { uri: "env://ACTIONS_ID_TOKEN_REQUEST_TOKEN" } }],
    "rec:oidc-url": [{ field: "secret", args: { uri: "env://ACTIONS_ID_TOKEN_REQUEST_URL" } }],
  },
  secretValues: { "rec:password": PASSWORD_CANARY },
});

const SOURCE = { source: JSON.stringify("rec:source") };
const RELEASE_ARGS = {
  ...SOURCE,
  registry: JSON.stringify("ghcr.io"),
  repository: JSON.stringify("Loan-Org/Loan-Service"),
  tag: JSON.stringify("latest"),
  username: JSON.stringify("release-bot"),
  password: JSON.stringify("rec:password"),
  commit: JSON.stringify(COMMIT),
  // release signs what it pushes, as publish does (issue 14): keyless, as the workflow runs it.
  oidcRequestToken: JSON.stringify("rec:oidc-token"),
  oidcRequestUrl: JSON.stringify("rec:oidc-url"),
};

interface Runs {
  render: DaggerCallResult;
  renderTagOnly: DaggerCallResult;
  manifests: DaggerCallResult;
  release: DaggerCallResult;
  releaseLintFails: DaggerCallResult;
}

const K8s = suite<{ runs: Runs }>("k8s functions through dagger call (module runtime, recorded, not executed)");

K8s.before(async (context) => {
  const { registration } = await scenarios();
  const sandbox = makeModuleSandbox();
  try {
    const call = (fn: string, args: Record<string, string>, fault: "none" | "lint" = "none") =>
      daggerCall(sandbox, registration.decoded, fn, args, options(fault));
    // One at a time: each is a Node process compiling the module, and the machine is shared.
    const render = await call("render", {
      ...SOURCE,
      overlay: JSON.stringify("prod"),
      image: JSON.stringify(PUBLISHED),
    });
    const renderTagOnly = await call("render", {
      ...SOURCE,
      overlay: JSON.stringify("prod"),
      image: JSON.stringify("ghcr.io/o/n:latest"),
    });
    const manifests = await call("manifests", SOURCE);
    const release = await call("release", RELEASE_ARGS);
    const releaseLintFails = await call("release", RELEASE_ARGS, "lint");
    context.runs = { render, renderTagOnly, manifests, release, releaseLintFails };
  } finally {
    sandbox.cleanup();
  }
});

/** The chain an ID returned through returnValue stands for. */
function returned(call: DaggerCallResult): Chain {
  const id = JSON.parse(call.engine.returnedValue ?? "null") as string;
  const chain = call.engine.chainOf(id);
  assert.ok(chain, `returned ${id} is a recorded object`);
  return call.engine.expandChain(chain as Chain);
}

/** Asserts a chain is kustomize over k8s/ rendering `overlay`, from the release kustomization of `ref` if given. */
function assertRender(chain: Chain, overlay: string, ref?: string) {
  assert.equal(chain.slice(0, 2), [
    { field: "container", args: {} },
    { field: "from", args: { address: KUSTOMIZE_IMAGE } },
  ]);
  const k8s = chain[indexOf(chain, "withDirectory", (a) => a.path === "/work/k8s")];
  assert.equal(sub(k8s?.args.source), [
    { field: "contextDirectory", args: { defaultPath: "/" } },
    { field: "directory", args: { path: "k8s" } },
  ]);
  const dir = ref ? `/work/k8s/release/${overlay}` : `/work/k8s/overlays/${overlay}`;
  if (ref) {
    const file = chain[indexOf(chain, "withNewFile", (a) => a.path === `${dir}/kustomization.yaml`)];
    assert.is(file?.args.contents, releaseKustomization(overlay, ref));
  } else {
    assert.is(indexOf(chain, "withNewFile"), -1);
  }
  const build = execIndex(chain, ["kustomize", "build", dir, "--output", `/work/out/${overlay}.yaml`]);
  assert.ok(build > 0, renderChain(chain));
  assert.equal(
    chain.filter((s) => s.field === "withExec").map((s) => (s.args.args as string[])[0]),
    ["kustomize"],
    "kustomize is the only command (the image needs nothing else)",
  );
  const out = indexOf(chain, "withDirectory", (a) => a.path === "/work/out");
  assert.ok(out > 0 && out < build, "the output directory exists before kustomize writes to it");
  assert.equal(chain[build + 1], { field: "file", args: { path: `/work/out/${overlay}.yaml` } });
}

K8s(
  "render: the pinned kustomize over k8s/ builds the overlay's release kustomization for the given digest",
  ({ runs }) => {
    const { run, engine } = runs.render;
    assert.is(run.code, 0, run.stderr);
    assert.equal(engine.internalErrors, []);
    assert.match(KUSTOMIZE_IMAGE, /^registry\.k8s\.io\/kustomize\/kustomize:v5\.\d+\.\d+@sha256:[0-9a-f]{64}$/);
    const chain = returned(runs.render);
    assertRender(chain, "prod", PUBLISHED);
    const kustomization = JSON.parse(String(chain[indexOf(chain, "withNewFile")]?.args.contents));
    assert.is(kustomization.images[0].digest, DIGEST);
    assert.is(kustomization.images[0].newName, "ghcr.io/loan-org/loan-service");
    assert.match(JSON.stringify(kustomization.patches), releaseJobName(DIGEST));
  },
);

K8s("render: a reference without a digest is refused before anything is asked of the engine", ({ runs }) => {
  const { run, engine } = runs.renderTagOnly;
  assert.is(run.code, 1);
  assert.match(engine.returnedError?.message ?? "", "expected an image reference with a digest");
  assert.is(engine.queries.filter((q) => q.chain.some((s) => s.field === "from")).length, 0);
});

K8s(
  "manifests check: every overlay rendered by kustomize (as committed and as a sample release), then npm run test:k8s",
  ({ runs }) => {
    const { run, engine } = runs.manifests;
    assert.is(run.code, 0, run.stderr);
    const [query, ...others] = engine.queriesRunning(["npm", "run", "test:k8s"]);
    assert.ok(query);
    assert.is(others.length, 0);
    const chain = expanded(engine, query);
    assert.equal(chain[1], { field: "from", args: { address: NODE_IMAGE } });
    assert.ok(execIndex(chain, ["npm", "ci", "--no-audit", "--no-fund"]) > 0, "the same Node workspace as the tests");
    assert.is(envValue(chain, "K8S_RENDERED_DIR"), "/rendered");
    const rendered = sub(chain[indexOf(chain, "withDirectory", (a) => a.path === "/rendered")]?.args.source) ?? [];
    const files = rendered.filter((s) => s.field === "withFile");
    assert.equal(
      files.map((f) => f.args.path),
      K8S_OVERLAYS.flatMap((o) => [`${o}.yaml`, `${o}.release.yaml`]),
    );
    for (const f of files) {
      const overlay = String(f.args.path).split(".")[0] as string;
      const release = String(f.args.path).includes(".release.");
      assertRender(sub(f.args.source) ?? [], overlay, release ? K8S_SAMPLE_RELEASE_IMAGE : undefined);
    }
    assert.is(JSON.parse(engine.returnedValue ?? '""'), "(recorded, not executed) npm run test:k8s\n");
  },
);

K8s(
  "release: lint, typecheck, tests and a Trivy gate per platform, all before the push; one build per platform",
  ({ runs }) => {
    const { run, engine } = runs.release;
    assert.is(run.code, 0, run.stderr);
    const publishes = engine.publishQueries();
    assert.is(publishes.length, 2, "latest and sha-<commit>");
    const first = engine.queries.indexOf(publishes[0] as (typeof publishes)[number]);
    const gates = [
      ...engine.queriesRunning(["npm", "run", "lint"]),
      ...engine.queriesRunning(["npm", "run", "typecheck"]),
      ...engine.queriesRunning(["npm", "test"]),
      ...execQueries(engine, isTrivyGate),
    ];
    assert.is(gates.length, 3 + PUBLISH_PLATFORMS.length);
    for (const gate of gates) assert.ok(engine.queries.indexOf(gate) < first, "every gate answered before the push");
    // One image per platform: every dockerBuild in the run is one of the PUBLISH_PLATFORMS builds.
    const builds = new Set(
      engine.queries.flatMap((q) => {
        const text = JSON.stringify(expanded(engine, q));
        return PUBLISH_PLATFORMS.filter((p) => text.includes(`"platform":"${p}"`));
      }),
    );
    assert.equal([...builds].sort(), [...PUBLISH_PLATFORMS].sort());
  },
);

K8s(
  "release: returns the refs, Trivy's SARIF of the pushed amd64 image and every overlay rendered with the pushed digest",
  ({ runs }) => {
    const { engine } = runs.release;
    const chain = returned(runs.release);
    const refsFile = chain[indexOf(chain, "withNewFile", (a) => a.path === "published.txt")];
    const refs = String(refsFile?.args.contents).trim().split("\n");
    assert.is(refs.length, 2);
    assert.match(refs[0] ?? "", /^ghcr\.io\/loan-org\/loan-service:latest@sha256:[0-9a-f]{64}$/);
    // The refs are exactly what the engine answered to the publish requests.
    const published = engine.publishQueries().map((q) => q.chain[q.chain.length - 1]?.args.address);
    assert.equal(
      refs.map((r) => r.split("@")[0]),
      published,
    );

    for (const overlay of K8S_OVERLAYS) {
      const file = chain[indexOf(chain, "withFile", (a) => a.path === `manifests/${overlay}.yaml`)];
      assertRender(sub(file?.args.source) ?? [], overlay, refs[0]);
    }

    const sarif = sub(chain[indexOf(chain, "withFile", (a) => a.path === "trivy.sarif")]?.args.source) ?? [];
    const cmd = sarif[sarif.length - 2]?.args.args as string[];
    assert.ok(cmd.includes("sarif"), cmd.join(" "));
    const tarball =
      sub(sarif[indexOf(sarif, "withMountedFile", (a) => a.path === "/scan/image.tar")]?.args.source) ?? [];
    const scannedImage = renderWithSource(tarball.slice(0, -1));
    const pushed = (
      (expanded(engine, engine.publishQueries()[0] as never)[2]?.args.platformVariants ?? []) as never[]
    ).map((v) => renderWithSource(sub(v) ?? []));
    assert.is(scannedImage, pushed[0], "the SARIF report is of the very image pushed for linux/amd64");
  },
);

K8s(
  "release with a failing lint (injected): nothing is pushed, nothing rendered, the lint output is reported",
  ({ runs }) => {
    const { run, engine } = runs.releaseLintFails;
    assert.is(run.code, 1);
    assert.is(engine.publishQueries().length, 0);
    assert.is(
      engine.queries.filter((q: RecordingEngine["queries"][number]) =>
        q.chain.some((s) => s.field === "withRegistryAuth"),
      ).length,
      0,
    );
    assert.is(engine.returnedValue, undefined);
    assert.match(engine.returnedError?.message ?? "", 'process "npm run lint" did not complete successfully');
    assert.not.match(engine.allQueryText(), PASSWORD_CANARY);
  },
);

K8s("release signs the pushed digest and attests the image SBOMs after the push, and returns them", ({ runs }) => {
  const { run, engine } = runs.release;
  assert.is(run.code, 0, run.stderr);
  const lastPush = Math.max(...engine.publishQueries().map((q) => engine.queries.indexOf(q)));
  const cosign = engine.queries.filter((q) => (lastExec(q.chain) ?? [])[0] === COSIGN && q.leaf === "sync");
  assert.equal(
    cosign.map((q) => (lastExec(q.chain) ?? [])[1]),
    ["sign", "attest", "attest"],
  );
  for (const q of cosign) assert.ok(engine.queries.indexOf(q) > lastPush, "signed after the push");
  const chain = returned(runs.release);
  const digest = String(chain[indexOf(chain, "withNewFile", (a) => a.path === "digest")]?.args.contents).trim();
  assert.equal((lastExec(cosign[0]?.chain ?? []) ?? []).at(-1), `ghcr.io/loan-org/loan-service@${digest}`);
  for (const name of ["sbom/npm.cdx.json", "sbom/image-linux-amd64.cdx.json", "sbom/image-linux-arm64.cdx.json"]) {
    assert.ok(indexOf(chain, "withFile", (a) => a.path === name) >= 0, name);
  }
});

K8s.run();
