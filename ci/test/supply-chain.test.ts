// test/run.ts: process-group ci-scenarios (scenarios() records its module and client runs once per process)
/**
 * The supply chain, recorded: `publish` generating the SBOMs, signing and attesting the pushed digest; `sbom`;
 * `verify`; both entry points. NOTHING IS EXECUTED: no cosign, Trivy, registry or OIDC provider runs; a
 * recording engine answers and records what the pipeline asks for (see support/recording-engine.ts). What these
 * tests show is the order of the requests, what they carry (digests, never tags; secrets only as secret IDs),
 * and that failures stop the chain.
 */
import { readFileSync } from "node:fs";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { IMAGE_TARBALL, TRIVY_CACHE_DIR, TRIVY_CACHE_VOLUME } from "../src/pipeline.js";
import {
  COSIGN,
  digestRef,
  GITHUB_OIDC_ISSUER,
  NPM_SBOM_COMMAND,
  signingIdentity,
  verify,
  workflowIdentity,
} from "../src/supply-chain.js";
import { COSIGN_IMAGE, PUBLISH_PLATFORMS, TRIVY_IMAGE } from "../src/versions.js";
import {
  envValue,
  execQueries,
  expanded,
  indexOf,
  isTrivyGate,
  lastExec,
  queryRunning,
  renderWithSource,
  sub,
} from "./support/chains.js";
import type { Chain, RecordedQuery, RecordingEngine } from "./support/recording-engine.js";
import { renderChain } from "./support/recording-engine.js";
import { returnedDirectory } from "./support/returned.js";
import {
  COMMIT,
  OIDC_TOKEN_CANARY,
  OIDC_URL_CANARY,
  PASSWORD_CANARY,
  type Scenarios,
  SIGNED_REF,
  scenarios,
  TAMPERED_REF,
  TOKEN_CANARY,
} from "./support/scenarios.js";

const IMAGE = "ghcr.io/loan-org/loan-service";
const isCosign = (sub: string) => (cmd: string[]) => cmd[0] === COSIGN && cmd[1] === sub;
const isTrivySbom = (cmd: string[]) => cmd[0] === "trivy" && cmd.join(" ").includes("--format cyclonedx");
const isNpmSbom = (cmd: string[]) => cmd.join(" ").startsWith(NPM_SBOM_COMMAND.join(" "));
const cosignQueries = (engine: RecordingEngine, sub: string) => execQueries(engine, isCosign(sub));
const position = (engine: RecordingEngine, q: RecordedQuery) => engine.queries.indexOf(q);
/** A Trivy container's image tarball, as the chain of the image it was made from (without `asTarball`). */
const tarballImage = (chain: Chain) =>
  renderChain(
    (sub(chain[indexOf(chain, "withMountedFile", (a) => a.path === IMAGE_TARBALL)]?.args.source) ?? []).slice(0, -1),
  );

const Supply = suite<{ s: Scenarios }>("supply chain: SBOMs, signatures, verification (recorded, not executed)");

Supply.before(async (context) => {
  context.s = await scenarios();
});

Supply("publish returns the refs, the signed digest and the SBOMs in one directory", ({ s }) => {
  const { run, engine } = s.module.publish;
  assert.is(run.code, 0, run.stderr);
  const files = returnedDirectory(engine);
  assert.equal(Object.keys(files).sort(), [
    "digest",
    "image",
    "refs.txt",
    "sbom/image-linux-amd64.cdx.json",
    "sbom/image-linux-arm64.cdx.json",
    "sbom/npm.cdx.json",
  ]);
  const refs = (files["refs.txt"]?.contents ?? "").trim().split("\n");
  const digest = files.digest?.contents?.trim() ?? "";
  assert.match(digest, /^sha256:[0-9a-f]{64}$/);
  assert.is(files.image?.contents?.trim(), IMAGE);
  for (const ref of refs) assert.is(ref.split("@")[1], digest, "every published tag names the signed digest");
  // The SBOM files are the outputs of the generators (Trivy per platform, cyclonedx-npm), not placeholders.
  for (const platform of PUBLISH_PLATFORMS) {
    const file = files[`sbom/image-${platform.replace("/", "-")}.cdx.json`]?.source ?? [];
    assert.ok(isTrivySbom(lastExec(file) ?? []), `${platform}: ${renderChain(file)}`);
    assert.match(tarballImage(file), `platform: "${platform}"`);
  }
  assert.ok(isNpmSbom(lastExec(files["sbom/npm.cdx.json"]?.source ?? []) ?? []));
});

Supply("the image SBOMs come from Trivy on the very tarballs that were scanned, with the scan's DB volume", ({ s }) => {
  const { engine } = s.module.publish;
  const sboms = execQueries(engine, isTrivySbom);
  assert.is(sboms.length, PUBLISH_PLATFORMS.length, "one SBOM per platform, generated once");
  const scanned = execQueries(engine, isTrivyGate).map((q) => tarballImage(expanded(engine, q)));
  for (const query of sboms) {
    const chain = expanded(engine, query);
    assert.equal(chain[1], { field: "from", args: { address: TRIVY_IMAGE } });
    const cache = chain[indexOf(chain, "withMountedCache", (a) => a.path === TRIVY_CACHE_DIR)];
    assert.equal(sub(cache?.args.cache), [{ field: "cacheVolume", args: { key: TRIVY_CACHE_VOLUME } }]);
    assert.ok(scanned.includes(tarballImage(chain)), "the SBOM's image is one the gate scanned");
    assert.equal(lastExec(chain), [
      "trivy",
      "image",
      "--input",
      IMAGE_TARBALL,
      "--format",
      "cyclonedx",
      "--output",
      "/tmp/image.cdx.json",
    ]);
  }
});

Supply("the npm SBOM runs the generator in the same Node workspace as the tests (npm ci first)", ({ s }) => {
  const { engine } = s.module.publish;
  const [npm, ...more] = execQueries(engine, isNpmSbom);
  assert.ok(npm);
  assert.is(more.length, 0);
  const chain = expanded(engine, npm as RecordedQuery);
  assert.equal(lastExec(chain), [...NPM_SBOM_COMMAND, "--output-file", "/tmp/npm.cdx.json"]);
  const testChain = expanded(engine, queryRunning(engine, ["npm", "test"]));
  const workspace = renderWithSource(testChain.slice(0, indexOf(testChain, "withServiceBinding")));
  assert.is(
    renderWithSource(
      chain.slice(
        0,
        indexOf(chain, "withExec", (a) => isNpmSbom(a.args as string[])),
      ),
    ),
    workspace,
  );
});

Supply("order: gates and SBOMs, then the push, then sign, then attest each image SBOM — on the digest", ({ s }) => {
  const { engine } = s.module.publish;
  const gates = [
    ...engine.queriesRunning(["npm", "test"]),
    ...execQueries(engine, isTrivyGate),
    ...execQueries(engine, isTrivySbom),
    ...execQueries(engine, isNpmSbom),
  ];
  const pushes = engine.publishQueries();
  const signs = cosignQueries(engine, "sign");
  const attests = cosignQueries(engine, "attest");
  assert.is(gates.length, 1 + 2 * PUBLISH_PLATFORMS.length + 1);
  assert.is(pushes.length, 2);
  assert.is(signs.length, 1, "one image (every tag) → one signature");
  assert.is(attests.length, PUBLISH_PLATFORMS.length);
  const lastGate = Math.max(...gates.map((q) => position(engine, q)));
  const firstPush = Math.min(...pushes.map((q) => position(engine, q)));
  const lastPush = Math.max(...pushes.map((q) => position(engine, q)));
  assert.ok(lastGate < firstPush, "every gate and SBOM answered before the first push");
  const sign = signs[0] as RecordedQuery;
  assert.ok(lastPush < position(engine, sign), "signed only after the push succeeded");
  for (const attest of attests) assert.ok(position(engine, sign) < position(engine, attest), "attest after sign");

  const digest = (returnedDirectory(engine).digest?.contents ?? "").trim();
  assert.equal(lastExec(sign.chain), [COSIGN, "sign", "--yes", `${IMAGE}@${digest}`]);
  const predicates = attests.map((q) => {
    const cmd = lastExec(q.chain) as string[];
    assert.equal(cmd.slice(0, 5), [COSIGN, "attest", "--yes", "--type", "cyclonedx"]);
    assert.is(cmd[cmd.length - 1], `${IMAGE}@${digest}`, "attested on the digest");
    const predicate = cmd[cmd.indexOf("--predicate") + 1] as string;
    // The mounted predicate is the Trivy SBOM of that platform.
    const chain = expanded(engine, q);
    const file = sub(chain[indexOf(chain, "withMountedFile", (a) => a.path === predicate)]?.args.source) ?? [];
    assert.ok(isTrivySbom(lastExec(file) ?? []), predicate);
    return predicate;
  });
  assert.equal(predicates, ["/predicates/image-linux-amd64.cdx.json", "/predicates/image-linux-arm64.cdx.json"]);
  // Never a tag: no cosign command names `:latest` or `:sha-…`.
  for (const q of [...signs, ...attests]) assert.not.match((lastExec(q.chain) ?? []).join(" "), /:(latest|sha-)/);
});

Supply("cosign is the pinned image; credentials and the OIDC request reach it only as secret variables", ({ s }) => {
  const { engine } = s.module.publish;
  assert.match(COSIGN_IMAGE, /^ghcr\.io\/sigstore\/cosign\/cosign:v\d+\.\d+\.\d+@sha256:[0-9a-f]{64}$/);
  for (const q of [...cosignQueries(engine, "sign"), ...cosignQueries(engine, "attest")]) {
    const chain = expanded(engine, q);
    assert.equal(chain.slice(0, 2), [
      { field: "container", args: {} },
      { field: "from", args: { address: COSIGN_IMAGE } },
    ]);
    const secrets = Object.fromEntries(
      chain
        .filter((x) => x.field === "withSecretVariable")
        .map((x) => [String(x.args.name), renderChain(sub(x.args.secret) ?? [])]),
    );
    assert.equal(secrets, {
      COSIGN_REGISTRY_PASSWORD: 'secret(uri: "env://GITHUB_TOKEN")',
      ACTIONS_ID_TOKEN_REQUEST_TOKEN: 'secret(uri: "env://ACTIONS_ID_TOKEN_REQUEST_TOKEN")',
      ACTIONS_ID_TOKEN_REQUEST_URL: 'secret(uri: "env://ACTIONS_ID_TOKEN_REQUEST_URL")',
    });
    assert.is(envValue(chain, "COSIGN_REGISTRY_USERNAME"), "release-bot");
    for (const name of Object.keys(secrets)) assert.is(envValue(chain, name), undefined, `${name} as plain env`);
    assert.ok(envValue(chain, "CACHEBUSTER"), "signing is never answered from the layer cache");
  }
});

Supply("with a key (other CI): cosign signs with --key env://COSIGN_KEY; key and password are secrets", ({ s }) => {
  const { run, engine } = s.module.publishWithKey;
  assert.is(run.code, 0, run.stderr);
  const digest = (returnedDirectory(engine).digest?.contents ?? "").trim();
  const [sign, ...more] = cosignQueries(engine, "sign");
  assert.is(more.length, 0);
  assert.equal(lastExec(sign?.chain ?? []), [
    COSIGN,
    "sign",
    "--yes",
    "--key",
    "env://COSIGN_KEY",
    `${IMAGE}@${digest}`,
  ]);
  for (const q of [sign as RecordedQuery, ...cosignQueries(engine, "attest")]) {
    const chain = expanded(engine, q);
    assert.ok((lastExec(chain) ?? []).join(" ").includes("--key env://COSIGN_KEY"));
    const secrets = chain.filter((x) => x.field === "withSecretVariable").map((x) => String(x.args.name));
    assert.equal(secrets.sort(), ["COSIGN_KEY", "COSIGN_PASSWORD", "COSIGN_REGISTRY_PASSWORD"]);
    assert.is(envValue(chain, "ACTIONS_ID_TOKEN_REQUEST_TOKEN"), undefined);
  }
});

Supply("no secret value appears in any recorded query, and nobody asks for a plaintext", ({ s }) => {
  const runs = [
    s.module.publish,
    s.module.publishSignFails,
    s.module.publishScanFails,
    s.client.publish,
    s.client.publishTestFails,
  ];
  for (const { engine, run } of runs) {
    assert.is(engine.queries.filter((q) => q.leaf === "plaintext").length, 0);
    for (const canary of [PASSWORD_CANARY, TOKEN_CANARY, OIDC_TOKEN_CANARY, OIDC_URL_CANARY]) {
      assert.not.match(engine.allQueryText(), canary);
      assert.not.match(run.stdout + run.stderr, canary);
    }
  }
});

Supply("a failing gate: no push, no signature, no attestation request is ever sent", ({ s }) => {
  for (const { engine } of [s.module.publishScanFails, s.client.publishScanFails, s.client.publishTestFails]) {
    assert.is(engine.publishQueries().length, 0);
    assert.is(engine.queries.filter((q) => q.chain.some((x) => x.field === "withRegistryAuth")).length, 0);
    const cosign = engine.queries.filter((q) =>
      q.chain.some((x) => x.field === "from" && x.args.address === COSIGN_IMAGE),
    );
    assert.is(cosign.length, 0, "cosign never even referenced");
  }
});

Supply("a failing signature fails publish (returnError with cosign's output); nothing is attested", ({ s }) => {
  const { run, engine } = s.module.publishSignFails;
  assert.is(run.code, 1);
  assert.is(engine.returnedValue, undefined, "no result is returned for an unsigned image");
  assert.is(engine.publishQueries().length, 2, "the push itself had happened");
  assert.is(cosignQueries(engine, "sign").filter((q) => q.failed).length, 1);
  assert.is(cosignQueries(engine, "attest").length, 0);
  assert.match(engine.returnedError?.message ?? "", `process "${COSIGN} sign --yes ${IMAGE}@sha256:`);
  assert.match(JSON.parse(engine.returnedError?.values.stderr ?? '""'), "fetching ambient OIDC credentials");
});

Supply("verify: signature, SBOM attestation and SLSA provenance against the workflow identity", ({ s }) => {
  const { run, engine } = s.module.verify;
  assert.is(run.code, 0, run.stderr);
  const summary = JSON.parse(engine.returnedValue ?? '""') as string;
  for (const check of ["signature", "sbom", "provenance"]) assert.match(summary, `PASS ${check}`);
  const identity = "^https://github\\.com/Loan-Org/loan-service/\\.github/workflows/ci\\.yml@refs/heads/main$";
  const who = ["--certificate-identity-regexp", identity, "--certificate-oidc-issuer", GITHUB_OIDC_ISSUER];
  const cmds = execQueries(engine, (cmd) => cmd[0] === COSIGN).map((q) => lastExec(q.chain));
  assert.equal(cmds, [
    [COSIGN, "verify", ...who, SIGNED_REF],
    [COSIGN, "verify-attestation", "--type", "cyclonedx", ...who, SIGNED_REF],
    [COSIGN, "verify-attestation", "--new-bundle-format", "--type", "slsaprovenance1", ...who, SIGNED_REF],
  ]);
  assert.ok(
    new RegExp(identity).test(`https://github.com/Loan-Org/loan-service/.github/workflows/ci.yml@refs/heads/main`),
  );
  assert.not.ok(
    new RegExp(identity).test(`https://github.com/Loan-Org/loan-service/.github/workflows/ci.yml@refs/heads/evil`),
  );
  assert.not.ok(
    new RegExp(identity).test(`https://github.com/Loan-Org/loan-serviceX/.github/workflows/ci.yml@refs/heads/main`),
  );
  assert.not.ok(
    new RegExp(identity).test(`https://github.com/Loan-Org/loan-service/.github/workflows/ciXyml@refs/heads/main`),
  );
});

Supply("verify of a tampered digest fails at the signature; no later check is run", ({ s }) => {
  const { run, engine } = s.module.verifyTampered;
  assert.is(run.code, 1);
  assert.is(engine.returnedValue, undefined);
  assert.match(engine.returnedError?.message ?? "", `process "${COSIGN} verify`);
  assert.match(JSON.parse(engine.returnedError?.values.stderr ?? '""'), "no matching signatures");
  const cmds = execQueries(engine, (cmd) => cmd[0] === COSIGN);
  assert.is(cmds.length, 1);
  assert.is(lastExec(cmds[0]?.chain ?? [])?.at(-1), TAMPERED_REF);
});

Supply("verify refuses a tag, a tag-plus-digest, or a bad repository before asking the engine anything", async () => {
  const bad: Array<[string, string]> = [
    [`${IMAGE}:latest`, "o/n"],
    [`${IMAGE}:latest@sha256:${"5".repeat(64)}`, "o/n"],
    [`${IMAGE}@sha256:short`, "o/n"],
    [SIGNED_REF, "not-a-repository"],
  ];
  for (const [image, repository] of bad) {
    let error: unknown;
    try {
      await verify(image, { repository });
    } catch (e) {
      error = e;
    }
    assert.instance(error, Error, `${image} ${repository}`);
  }
});

Supply("sbom: image.cdx.json (Trivy on the built image) and npm.cdx.json, as a directory", ({ s }) => {
  const { run, engine } = s.module.sbom;
  assert.is(run.code, 0, run.stderr);
  const files = returnedDirectory(engine);
  assert.equal(Object.keys(files).sort(), ["image.cdx.json", "npm.cdx.json"]);
  assert.ok(isTrivySbom(lastExec(files["image.cdx.json"]?.source ?? []) ?? []));
  assert.ok(isNpmSbom(lastExec(files["npm.cdx.json"]?.source ?? []) ?? []));
  assert.is(engine.publishQueries().length, 0);
});

Supply(
  "client: sbom exports the directory to --output; publish writes image= and digest= to GITHUB_OUTPUT",
  ({ s }) => {
    const sbom = s.client.sbom;
    assert.is(sbom.run.code, 0, sbom.run.stderr);
    const exported = sbom.engine.queries.filter((q) => q.leaf === "export");
    assert.is(exported.length, 1);
    assert.match(String(exported[0]?.chain.at(-1)?.args.path), /\/sbom$/);

    const { run, engine } = s.client.publish;
    assert.is(run.code, 0, run.stderr);
    const refs = run.stdout
      .split("\n")
      .filter((l) => l.startsWith("published "))
      .map((l) => l.slice("published ".length));
    const digest = refs[0]?.split("@")[1] ?? "";
    assert.match(run.stdout, `signed ${IMAGE}@${digest}`);
    assert.is(readFileSync(s.githubOutput, "utf8"), `image=${IMAGE}\ndigest=${digest}\n`);
    assert.is(cosignQueries(engine, "sign").length, 1);
    assert.ok(refs.every((r) => r.endsWith(`@${digest}`)));
    assert.ok(COMMIT);
  },
);

Supply("pure helpers: digest references, the signing identity, the workflow identity", () => {
  assert.is(digestRef(`${IMAGE}:latest@sha256:${"a".repeat(64)}`), `${IMAGE}@sha256:${"a".repeat(64)}`);
  assert.is(digestRef(`localhost:5000/o/n:v1@sha256:${"b".repeat(64)}`), `localhost:5000/o/n@sha256:${"b".repeat(64)}`);
  assert.is(digestRef(`localhost:5000/o/n@sha256:${"b".repeat(64)}`), `localhost:5000/o/n@sha256:${"b".repeat(64)}`);
  assert.throws(() => digestRef(`${IMAGE}:latest`));
  assert.throws(() => signingIdentity({}), /needs a signing identity/);
  const secret = {} as never;
  assert.throws(() => signingIdentity({ oidcRequestToken: secret }), /both/);
  assert.throws(() => signingIdentity({ oidcRequestToken: secret, oidcRequestUrl: secret, cosignKey: secret }));
  assert.is(signingIdentity({ cosignKey: secret }).kind, "key");
  assert.is(signingIdentity({ oidcRequestToken: secret, oidcRequestUrl: secret }).kind, "github-oidc");
  assert.is(
    workflowIdentity("o/n", ".github/workflows/release.yml", "refs/tags/v1"),
    "^https://github\\.com/o/n/\\.github/workflows/release\\.yml@refs/tags/v1$",
  );
});

Supply.run();
