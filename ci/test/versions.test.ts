// test/run.ts: process-group ci-light
/**
 * The pins: one source of truth for each version, and the places that must agree with it do.
 * Nothing is executed.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { NODE_IMAGE, POSTGRES_IMAGE, PUBLISH_PLATFORMS, TRIVY_IMAGE, TRIVY_VERSION } from "../src/versions.js";
import { repoRoot, sdkDist } from "./support/sandbox.js";

const read = (path: string) => readFileSync(join(repoRoot, path), "utf8");
const json = <T>(path: string) => JSON.parse(read(path)) as T;

const Pins = suite("pinned versions (recorded, not executed)");

Pins("the Node image is fully pinned and its major is .nvmrc's", () => {
  const match = /^node:(\d+)\.\d+\.\d+-bookworm-slim$/.exec(NODE_IMAGE);
  assert.ok(match, NODE_IMAGE);
  assert.is(match?.[1], read(".nvmrc").trim());
});

Pins("PostgreSQL is the official image, major 17, fully pinned", () => {
  assert.match(POSTGRES_IMAGE, /^postgres:17\.\d+-bookworm$/);
});

Pins("Trivy is pinned by version and by digest", () => {
  assert.match(TRIVY_VERSION, /^\d+\.\d+\.\d+$/);
  assert.is(TRIVY_IMAGE.split("@")[0], `aquasec/trivy:${TRIVY_VERSION}`);
  assert.match(TRIVY_IMAGE, /@sha256:[0-9a-f]{64}$/);
});

Pins("publish targets linux/amd64 and linux/arm64", () => {
  assert.equal(PUBLISH_PLATFORMS, ["linux/amd64", "linux/arm64"]);
});

Pins("dagger.json: module loan-ci, TypeScript SDK, source ci, engine = the SDK release type-checked against", () => {
  const dagger = json<{ name: string; engineVersion: string; sdk: { source: string }; source: string }>("dagger.json");
  assert.is(dagger.name, "loan-ci");
  assert.equal(dagger.sdk, { source: "typescript" });
  assert.is(dagger.source, "ci");
  const sdk = json<{ version: string }>("node_modules/@dagger.io/dagger/package.json");
  assert.is(dagger.engineVersion, `v${sdk.version}`);
  // The CLI version the SDK itself would provision is the same release.
  const provisioning = readFileSync(join(sdkDist, "provisioning", "default.js"), "utf8");
  assert.match(provisioning, `CLI_VERSION = "${sdk.version}"`);
  const root = json<{ devDependencies: Record<string, string> }>("package.json");
  assert.is(root.devDependencies["@dagger.io/dagger"]?.replace(/^\^/, ""), sdk.version);
});

Pins("ci/package.json depends on typescript only, at the runtime's bundled version, so no install step runs", () => {
  const pkg = json<{ type: string; dependencies: Record<string, string>; devDependencies?: unknown }>(
    "ci/package.json",
  );
  assert.is(pkg.type, "module");
  // sdk/typescript/runtime/tsdistconsts/consts.go (v0.21.x): DefaultTypeScriptVersion = "5.9.3"; with only
  // that dependency the runtime mounts its bundled TypeScript and skips `npm install`.
  assert.equal(pkg.dependencies, { typescript: "5.9.3" });
  assert.is(pkg.devDependencies, undefined);
});

Pins("ci/tsconfig.json is what the runtime expects: decorators and the generated SDK's paths", () => {
  const tsconfig = json<{ compilerOptions: Record<string, unknown> }>("ci/tsconfig.json");
  assert.is(tsconfig.compilerOptions.experimentalDecorators, true);
  assert.equal(tsconfig.compilerOptions.paths, {
    "@dagger.io/dagger": ["./sdk/index.ts"],
    "@dagger.io/dagger/telemetry": ["./sdk/telemetry.ts"],
  });
});

Pins("the generated SDK and the module's node_modules are git-ignored (as `dagger init` ignores them)", () => {
  // Read, not asked of git: these tests also run in the pipeline's Node image, which has no git.
  const ignore = read("ci/.gitignore").split("\n");
  assert.ok(ignore.includes("/sdk"), "ci/.gitignore: /sdk");
  assert.ok(ignore.includes("/**/node_modules/**"), "ci/.gitignore: /**/node_modules/**");
});

Pins.run();
