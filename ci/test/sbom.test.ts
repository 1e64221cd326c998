// test/run.ts: process-group ci-light
/**
 * The npm SBOM FOR REAL: the pipeline's own generator command (`NPM_SBOM_COMMAND`, what `sbom` and `publish`
 * run in the Node workspace) runs here on this repository, and its output is validated against the CycloneDX
 * 1.6 JSON schema (the specification's schema files as `@cyclonedx/cyclonedx-library` ships them) with ajv,
 * independently of the generator's own validation, then checked against package-lock.json.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { Ajv, type ValidateFunction } from "ajv";
import addFormatsModule from "ajv-formats";
import { fullFormats } from "ajv-formats/dist/formats.js";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { NPM_SBOM_COMMAND } from "../src/supply-chain.js";
import { repoRoot } from "./support/sandbox.js";

// ajv-formats is CommonJS with a default export; seen from ESM the function is the module itself.
const addFormats = addFormatsModule as unknown as (ajv: Ajv) => Ajv;
const require = createRequire(join(repoRoot, "package.json"));
const addDraft2019Formats = require("ajv-formats-draft2019") as (ajv: Ajv, options?: { formats?: string[] }) => Ajv;

/** The CycloneDX specification's JSON schemas, as the CycloneDX library ships them (no network). */
const SCHEMA_DIR = join(dirname(require.resolve("@cyclonedx/cyclonedx-library/package.json")), "res", "schema");

function cycloneDxValidator(): ValidateFunction {
  const load = (file: string) => JSON.parse(readFileSync(join(SCHEMA_DIR, file), "utf8")) as Record<string, unknown>;
  // bom-1.6 refers to these three by these URIs; loading them here keeps ajv from ever fetching anything.
  const referenced = [
    "spdx.SNAPSHOT.schema.json",
    "jsf-0.82.SNAPSHOT.schema.json",
    "cryptography-defs.SNAPSHOT.schema.json",
  ];
  const ajv = new Ajv({
    strict: false,
    schemas: Object.fromEntries(referenced.map((file) => [`http://cyclonedx.org/schema/${file}`, load(file)])),
    loadSchema: (uri) => {
      throw new Error(`remote schema refused: ${uri}`);
    },
  });
  addFormats(ajv);
  addDraft2019Formats(ajv, { formats: ["idn-email"] });
  // An IRI reference is valid when its URI mapping (RFC 3987 §3.1: non-ASCII characters percent-encoded) is a
  // valid URI reference (RFC 3986). ajv-formats-draft2019's own check rejects valid schemes such as `git+https:`.
  const uriReference = fullFormats["uri-reference"] as RegExp;
  ajv.addFormat("iri-reference", (value: string) =>
    uriReference.test(value.replace(/\P{ASCII}/gu, (c) => encodeURIComponent(c))),
  );
  const schema = load("bom-1.6.SNAPSHOT.schema.json");
  assert.is(schema.$id, "http://cyclonedx.org/schema/bom-1.6.schema.json");
  return ajv.compile(schema);
}

interface Component {
  name: string;
  group?: string;
  version: string;
  purl?: string;
  type: string;
  properties?: Array<{ name: string; value: string }>;
  components?: Component[];
}
interface Bom {
  bomFormat: string;
  specVersion: string;
  serialNumber?: string;
  metadata: { timestamp?: string; component: Component };
  components: Component[];
}

const Sbom = suite<{ bom: Bom; text: string; validate: ValidateFunction; seconds: number }>(
  "npm SBOM (generated and validated for real)",
);

Sbom.before((context) => {
  const dir = mkdtempSync(join(tmpdir(), "loan-sbom-"));
  try {
    const out = join(dir, "npm.cdx.json");
    const [cmd, ...args] = NPM_SBOM_COMMAND;
    const started = Date.now();
    const run = spawnSync(cmd as string, [...args, "--output-file", out], {
      cwd: repoRoot,
      encoding: "utf8",
      timeout: 180_000,
    });
    context.seconds = (Date.now() - started) / 1000;
    assert.is(run.status, 0, `${NPM_SBOM_COMMAND.join(" ")} failed:\n${run.stdout}\n${run.stderr}`);
    context.text = readFileSync(out, "utf8");
    context.bom = JSON.parse(context.text) as Bom;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  context.validate = cycloneDxValidator();
});

Sbom("the generator's output is valid CycloneDX 1.6 JSON by the specification's schema", ({ bom, validate }) => {
  assert.is(bom.bomFormat, "CycloneDX");
  assert.is(bom.specVersion, "1.6");
  const valid = validate(bom);
  assert.ok(valid, JSON.stringify(validate.errors?.slice(0, 5), null, 2));
});

Sbom("the validator is not a rubber stamp: damaged copies of the same SBOM are rejected", ({ bom, validate }) => {
  const damaged: Array<[string, (b: Bom) => void]> = [
    ["an unknown component type", (b) => Object.assign(b.components[0] as Component, { type: "spaceship" })],
    ["a missing bomFormat", (b) => Reflect.deleteProperty(b, "bomFormat")],
    ["a malformed serial number", (b) => Object.assign(b, { serialNumber: "not-a-urn" })],
    ["a non-date timestamp", (b) => Object.assign(b.metadata, { timestamp: "yesterday" })],
    ["a property without a name", (b) => Object.assign(b.components[0] as Component, { properties: [{ value: "x" }] })],
    [
      "a reference URL with a space",
      (b) => Object.assign(b.components[0] as Component, { externalReferences: [{ type: "website", url: "a b" }] }),
    ],
  ];
  for (const [what, damage] of damaged) {
    const copy = structuredClone(bom);
    damage(copy);
    assert.not.ok(validate(copy), `${what} passed validation`);
  }
});

Sbom("the main component is this project, as package.json names it", ({ bom }) => {
  const pkg = JSON.parse(readFileSync(join(repoRoot, "package.json"), "utf8")) as { name: string; version: string };
  assert.is(bom.metadata.component.name, pkg.name);
  assert.is(bom.metadata.component.version, pkg.version);
  assert.is(bom.metadata.component.type, "application");
});

Sbom("every package of package-lock.json is in the SBOM once, with its version, purl and dev flag", ({ bom }) => {
  const lock = JSON.parse(readFileSync(join(repoRoot, "package-lock.json"), "utf8")) as {
    packages: Record<string, { version?: string; dev?: boolean; name?: string }>;
  };
  const all: Component[] = [];
  const walk = (components: Component[] = []) => {
    for (const c of components) {
      all.push(c);
      walk(c.components);
    }
  };
  walk(bom.components);
  const property = (c: Component, name: string) => c.properties?.find((p) => p.name === name)?.value;
  const byPath = new Map(all.map((c) => [property(c, "cdx:npm:package:path"), c]));
  assert.is(byPath.size, all.length, "no package listed twice");
  const locked = Object.entries(lock.packages).filter(([path]) => path !== "");
  assert.is(all.length, locked.length, "as many components as locked packages");
  for (const [path, entry] of locked) {
    const component = byPath.get(path);
    assert.ok(component, `${path} is missing from the SBOM`);
    if (!component) continue;
    assert.is(component.version, entry.version, path);
    const name = component.group ? `${component.group}/${component.name}` : component.name;
    // The package's own name (an npm alias, e.g. string-width-cjs → string-width, names it in the lockfile).
    assert.is(name, entry.name ?? path.slice(path.lastIndexOf("node_modules/") + "node_modules/".length), path);
    assert.ok(
      component.purl?.startsWith(`pkg:npm/${name.replace("@", "%40")}@${entry.version}`),
      `${path}: ${component.purl}`,
    );
    assert.is(property(component, "cdx:npm:package:development") === "true", entry.dev === true, `${path} dev flag`);
  }
  // The runtime dependencies the image ships are there as non-dev components.
  for (const runtime of ["express", "knex", "pg", "objection"]) {
    const c = byPath.get(`node_modules/${runtime}`);
    assert.ok(c && property(c, "cdx:npm:package:development") !== "true", runtime);
  }
});

Sbom("reproducible: no timestamp and no random serial number, so the same lockfile gives the same SBOM", ({ bom }) => {
  assert.is(bom.metadata.timestamp, undefined);
  assert.is(bom.serialNumber, undefined);
});

Sbom.run();
