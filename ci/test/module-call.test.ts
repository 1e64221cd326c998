// test/run.ts: process-group ci-scenarios (scenarios() records its module and client runs once per process)
/**
 * The `dagger call` path, offline: the module's functions invoked through the published SDK's own module
 * runtime entrypoint, started the way the engine starts it, against a recording engine that answers the
 * function-call protocol and records every GraphQL query. NOTHING IS EXECUTED: no container, image or
 * command runs; the tests assert what the module asks the engine to do, and how it fails.
 */

import { suite } from "uvu";
import * as assert from "uvu/assert";
import {
  NPM_CACHE_VOLUME,
  TEST_DATABASE_URL,
  TRIVY_CACHE_DIR,
  TRIVY_CACHE_VOLUME,
  TRIVY_GATE_FLAGS,
} from "../src/pipeline.js";
import { NODE_IMAGE, POSTGRES_IMAGE, PUBLISH_PLATFORMS, TRIVY_IMAGE } from "../src/versions.js";
import {
  envValue,
  execIndex,
  execQueries,
  expanded,
  indexOf,
  isTrivyGate,
  labels,
  queryRunning,
  renderWithSource,
  sub,
} from "./support/chains.js";
import { renderChain } from "./support/recording-engine.js";
import { returnedDirectory } from "./support/returned.js";
import { COMMIT, PASSWORD_CANARY, type Scenarios, scenarios } from "./support/scenarios.js";

const Call = suite<{ s: Scenarios }>("dagger call path (module runtime, recorded, not executed)");

Call.before(async (context) => {
  context.s = await scenarios();
});

Call(
  "each call runs the runtime once, with the engine-built LoanCi ({}) as parent, over the call protocol",
  ({ s }) => {
    for (const [name, call] of Object.entries(s.module)) {
      assert.is(call.run.timedOut, false, `${name} timed out`);
      assert.is(call.constructorRun, undefined, `${name}: no constructor is registered, none may run`);
      assert.is(call.parent, "{}");
      assert.equal(call.engine.internalErrors, [], name);
      assert.is(call.engine.unauthorized, 0, `${name}: every request carried the session token`);
      const asked = call.engine.queries.slice(0, 5).map((q) => q.chain.map((x) => x.field).join("."));
      assert.equal(
        asked,
        [
          "currentModule.name",
          "currentFunctionCall.parentName",
          "currentFunctionCall.name",
          "currentFunctionCall.parent",
          "currentFunctionCall.inputArgs.id",
        ],
        name,
      );
    }
  },
);

Call("ci: returns the summary of all five gates through returnValue", ({ s }) => {
  const { run, engine } = s.module.ci;
  assert.is(run.code, 0, run.stderr);
  assert.is(engine.returnedError, undefined);
  const summary = JSON.parse(engine.returnedValue ?? "null") as string;
  for (const step of ["lint", "typecheck", "test", "build", "scan"])
    assert.match(summary, new RegExp(`PASS  ${step}\\b`));
  assert.match(summary, "result: all gates passed");
  assert.is(engine.publishQueries().length, 0, "ci never publishes");
});

Call(
  "test step: npm ci before the source, npm cache volume, Postgres bound as db, DATABASE_URL, cache-busted",
  ({ s }) => {
    const { engine } = s.module.ci;
    const chain = expanded(engine, queryRunning(engine, ["npm", "test"]));
    assert.equal(chain.slice(0, 2), [
      { field: "container", args: {} },
      { field: "from", args: { address: NODE_IMAGE } },
    ]);
    // Dependencies first, from the manifests only, with npm's cache in a cache volume…
    const cache = indexOf(chain, "withMountedCache", (a) => a.path === "/root/.npm");
    assert.ok(cache > 0, "npm cache volume mounted");
    assert.equal(sub(chain[cache]?.args.cache), [{ field: "cacheVolume", args: { key: NPM_CACHE_VOLUME } }]);
    const npmCi = execIndex(chain, ["npm", "ci", "--no-audit", "--no-fund"]);
    const manifests = indexOf(
      chain,
      "withDirectory",
      (a) => a.path === "/app" && sub(a.source)?.[0]?.field === "directory",
    );
    const fullSource = indexOf(
      chain,
      "withDirectory",
      (a) => a.path === "/app" && sub(a.source)?.[0]?.field === "contextDirectory",
    );
    assert.ok(cache < manifests && manifests < npmCi && npmCi < fullSource, "manifests, npm ci, then the source");
    assert.match(
      renderChain(sub(chain[manifests]?.args.source) ?? []),
      'include: ["package.json", "package-lock.json"]',
    );
    // …then PostgreSQL bound as `db` and the test command pointed at it.
    const binding = indexOf(chain, "withServiceBinding", (a) => a.alias === "db");
    const service = sub(chain[binding]?.args.service) ?? [];
    assert.equal(service[1], { field: "from", args: { address: POSTGRES_IMAGE } });
    assert.ok(indexOf(service, "withExposedPort", (a) => a.port === 5432) > 0);
    const asService = service[service.length - 1];
    assert.is(asService?.field, "asService");
    assert.is(asService?.args.useEntrypoint, true, "the postgres image's entrypoint initialises the database");
    assert.is(envValue(chain, "DATABASE_URL"), TEST_DATABASE_URL);
    assert.is(TEST_DATABASE_URL, "postgres://postgres:postgres@db:5432/loans_test");
    const test = execIndex(chain, ["npm", "test"]);
    assert.ok(fullSource < binding && binding < test);
    // Never answered from cache: a per-run value right before the command.
    assert.ok(indexOf(chain, "withEnvVariable", (a) => a.name === "CACHEBUSTER") > fullSource);
    assert.is(test, chain.length - 2, "npm test is the last step; stdout is read from it");
  },
);

Call("lint and typecheck: the project's own commands in the same Node workspace as the tests", ({ s }) => {
  const { engine } = s.module.ci;
  const testChain = expanded(engine, queryRunning(engine, ["npm", "test"]));
  const workspace = renderWithSource(testChain.slice(0, indexOf(testChain, "withServiceBinding")));
  for (const cmd of [
    ["npm", "run", "lint"],
    ["npm", "run", "typecheck"],
  ]) {
    const chain = expanded(engine, queryRunning(engine, cmd));
    assert.is(renderWithSource(chain.slice(0, -2)), workspace, cmd.join(" "));
  }
});

Call("build and scan: Dockerfile with NODE_IMAGE and OCI labels, pinned Trivy gating the image's tarball", ({ s }) => {
  const { engine } = s.module.ci;
  const [scan, ...others] = execQueries(engine, isTrivyGate);
  assert.ok(scan, "a Trivy gate ran");
  assert.is(others.length, 0);
  const chain = expanded(engine, scan);
  assert.equal(chain[1], { field: "from", args: { address: TRIVY_IMAGE } });
  const dbCache = chain[indexOf(chain, "withMountedCache", (a) => a.path === TRIVY_CACHE_DIR)];
  assert.equal(sub(dbCache?.args.cache), [{ field: "cacheVolume", args: { key: TRIVY_CACHE_VOLUME } }]);
  assert.is(dbCache?.args.sharing, "LOCKED");
  assert.is(envValue(chain, "TRIVY_CACHE_DIR"), TRIVY_CACHE_DIR);
  const config = chain[indexOf(chain, "withMountedDirectory", (a) => a.path === "/scan/config")];
  assert.match(renderChain(sub(config?.args.source) ?? []), 'include: [".trivyignore"]');
  const tarball = sub(chain[indexOf(chain, "withMountedFile", (a) => a.path === "/scan/image.tar")]?.args.source) ?? [];
  assert.is(tarball[tarball.length - 1]?.field, "asTarball", "the image is scanned as a tarball, never pushed first");
  const build = tarball[indexOf(tarball, "dockerBuild")];
  assert.equal(build?.args.buildArgs, [{ name: "NODE_IMAGE", value: NODE_IMAGE }]);
  assert.equal(Object.keys(labels(tarball)).sort(), [
    "org.opencontainers.image.created",
    "org.opencontainers.image.version",
  ]);
  const cmd = chain[chain.length - 2]?.args.args as string[];
  assert.equal(cmd.slice(0, 6), [
    "trivy",
    "image",
    "--input",
    "/scan/image.tar",
    "--ignorefile",
    "/scan/config/.trivyignore",
  ]);
  assert.ok(cmd.join(" ").includes(TRIVY_GATE_FLAGS.join(" ")), cmd.join(" "));
  assert.equal(TRIVY_GATE_FLAGS, [
    "--scanners",
    "vuln",
    "--severity",
    "HIGH,CRITICAL",
    "--ignore-unfixed",
    "--exit-code",
    "1",
  ]);
});

Call(
  "test fails (injected ExecError): the module reports it through returnError with the command's output",
  ({ s }) => {
    const { run, engine } = s.module.testFails;
    assert.is(run.code, 1, "the runtime exits 1 after returnError");
    assert.is(engine.returnedValue, undefined);
    const error = engine.returnedError;
    assert.ok(error);
    assert.match(error?.message ?? "", 'process "npm test" did not complete successfully: exit code: 1');
    assert.match(JSON.parse(error?.values.stdout ?? '""'), "41 passed, 1 failed");
    assert.match(JSON.parse(error?.values.stderr ?? '""'), "Lifecycle script `test` failed");
    assert.is(error?.values.exitCode, "1");
    assert.is(error?.values._type, '"EXEC_ERROR"');
  },
);

Call(
  "publish: gates first, then the scanned amd64+arm64 images pushed with secret auth, lower-cased, two tags",
  ({ s }) => {
    const { run, engine } = s.module.publish;
    assert.is(run.code, 0, run.stderr);
    // publish returns a directory; refs.txt lists the published refs with their digest.
    const refs = (returnedDirectory(engine)["refs.txt"]?.contents ?? "").trim().split("\n");
    assert.is(refs.length, 2);
    assert.match(refs[0] ?? "", /^ghcr\.io\/loan-org\/loan-service:latest@sha256:[0-9a-f]{64}$/);
    assert.is(refs[1]?.split("@")[0], `ghcr.io/loan-org/loan-service:sha-${COMMIT}`);
    assert.is(refs[0]?.split("@")[1], refs[1]?.split("@")[1], "both tags name the same pushed image");

    const publishes = engine.publishQueries();
    assert.equal(
      publishes.map((q) => q.chain[q.chain.length - 1]?.args.address),
      ["ghcr.io/loan-org/loan-service:latest", `ghcr.io/loan-org/loan-service:sha-${COMMIT}`],
    );
    // The gates all answered before the first publish request was sent.
    const first = engine.queries.indexOf(publishes[0] as (typeof publishes)[number]);
    const gates = [...engine.queriesRunning(["npm", "test"]), ...execQueries(engine, isTrivyGate)];
    assert.is(gates.length, 1 + PUBLISH_PLATFORMS.length, "the tests and one scan per platform");
    for (const gate of gates) assert.ok(engine.queries.indexOf(gate) < first, "gate before publish");

    for (const query of publishes) {
      const chain = expanded(engine, query);
      const auth = chain[1];
      assert.is(auth?.field, "withRegistryAuth");
      assert.is(auth?.args.address, "ghcr.io/loan-org/loan-service");
      assert.is(auth?.args.username, "release-bot");
      // The secret argument is an ID standing for the engine's secret (the `password` argument), nothing more.
      assert.equal(sub(auth?.args.secret), [{ field: "secret", args: { uri: "env://GITHUB_TOKEN" } }]);
      assert.match(
        query.query,
        /withRegistryAuth \(address: "ghcr\.io\/loan-org\/loan-service",username: "release-bot",secret: "rec:\d+"\)/,
      );
      const variants = ((chain[2]?.args.platformVariants ?? []) as unknown[]).map((v) => sub(v as never) ?? []);
      assert.equal(
        variants.map((v) => v[indexOf(v, "dockerBuild")]?.args.platform),
        ["linux/amd64", "linux/arm64"],
      );
      // The very images that were scanned: each pushed variant is the container a Trivy gate read as a tarball.
      const scanned = execQueries(engine, isTrivyGate).map((q) => {
        const c = expanded(engine, q);
        const tarball = sub(c[indexOf(c, "withMountedFile", (a) => a.path === "/scan/image.tar")]?.args.source) ?? [];
        return renderChain(tarball.slice(0, -1));
      });
      for (const variant of variants) assert.ok(scanned.includes(renderChain(variant)), "pushed image was scanned");
      for (const variant of variants) {
        const l = labels(variant);
        assert.is(l["org.opencontainers.image.source"], "https://github.com/loan-org/loan-service");
        assert.is(l["org.opencontainers.image.revision"], COMMIT);
        assert.is(l["org.opencontainers.image.version"], "0.1.0");
        assert.match(l["org.opencontainers.image.created"] ?? "", /^\d{4}-\d\d-\d\dT/);
      }
    }
  },
);

Call("publish: the password only ever travels as a secret ID; its value appears in no query", ({ s }) => {
  for (const call of [s.module.publish, s.module.publishScanFails]) {
    assert.is(call.engine.queries.filter((q) => q.leaf === "plaintext").length, 0, "nobody asked for the plaintext");
    assert.not.match(call.engine.allQueryText(), PASSWORD_CANARY);
    assert.not.match(call.run.stdout + call.run.stderr, PASSWORD_CANARY);
  }
});

Call(
  "publish with a Trivy failure on linux/arm64 (injected): no publish request, returnError with Trivy's output",
  ({ s }) => {
    const { run, engine } = s.module.publishScanFails;
    assert.is(run.code, 1);
    assert.is(engine.publishQueries().length, 0, "no publish request was ever sent");
    assert.is(engine.queries.filter((q) => q.chain.some((x) => x.field === "withRegistryAuth")).length, 0);
    assert.is(engine.returnedValue, undefined);
    assert.match(engine.returnedError?.message ?? "", 'process "trivy image');
    assert.match(JSON.parse(engine.returnedError?.values.stdout ?? '""'), "CVE-2099-0001");
  },
);

Call.run();
