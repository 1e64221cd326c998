// test/run.ts: process-group ci-scenarios (scenarios() records its module and client runs once per process)
/**
 * The module's interface, offline: what `dagger functions` / `dagger call --help` / `dagger check -l` would
 * show. Read two ways, both with the published SDK's own code: its introspector (`scan()` of ci/src, as the
 * engine's TypeScript runtime runs it), and its registration run (the module runtime started with an empty
 * parent name, registering the module's types with a recording engine). Nothing is executed.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { SOURCE_IGNORE } from "../src/pipeline.js";
import { fromIntrospection, type RegisteredFunction, renderListing } from "./support/registration.js";
import { makeModuleSandbox, repoRoot, sdkDist } from "./support/sandbox.js";
import { scenarios } from "./support/scenarios.js";

/** The pinned listing. Changing a function's name, arguments, defaults, cache policy or check status fails here. */
const LISTING = `build -> Container!  (cache: Default)
    --source Directory  (default path "/", ignore: see below)
    --commit String  (default "")
ci -> String!  (cache: Never)
    --source Directory  (default path "/", ignore: see below)
lint -> String!  (cache: Default, check)
    --source Directory  (default path "/", ignore: see below)
manifests -> String!  (cache: Default, check)
    --source Directory  (default path "/", ignore: see below)
publish -> Directory!  (cache: Never)
    --source Directory  (default path "/", ignore: see below)
    --registry String!
    --repository String!
    --tag String!
    --username String!
    --password Secret!
    --commit String  (default "")
    --oidc-request-token Secret
    --oidc-request-url Secret
    --cosign-key Secret
    --cosign-password Secret
release -> Directory!  (cache: Never)
    --source Directory  (default path "/", ignore: see below)
    --registry String!
    --repository String!
    --tag String!
    --username String!
    --password Secret!
    --commit String  (default "")
    --oidc-request-token Secret
    --oidc-request-url Secret
    --cosign-key Secret
    --cosign-password Secret
render -> File!  (cache: Default)
    --source Directory  (default path "/", ignore: see below)
    --overlay String!
    --image String!
sarif -> File!  (cache: PerSession)
    --source Directory  (default path "/", ignore: see below)
sbom -> Directory!  (cache: PerSession)
    --source Directory  (default path "/", ignore: see below)
scan -> String!  (cache: PerSession, check)
    --source Directory  (default path "/", ignore: see below)
test -> String!  (cache: Never, check)
    --source Directory  (default path "/", ignore: see below)
typecheck -> String!  (cache: Default, check)
    --source Directory  (default path "/", ignore: see below)
verify -> String!  (cache: Never)
    --image String!
    --repository String!
    --workflow String  (default ".github/workflows/ci.yml")
    --git-ref String  (default "refs/heads/main")
    --username String  (default "")
    --password Secret
ignore: ["**/node_modules",".git","**/.env","**/.env.*","env/*.local.env","env/prod.env","secrets","**/*.pem","**/*.key","nginx/certs","ci/sdk","**/*.sarif","dist",".data","bench/out",".tmp","**/*.log"]`;

const Interface = suite<{ introspected: { hasConstructor: boolean; functions: RegisteredFunction[] } }>(
  "module interface (recorded, not executed)",
);

Interface.before(async (context) => {
  const sandbox = makeModuleSandbox();
  try {
    const files = readdirSync(sandbox.srcDir)
      .filter((name) => name.endsWith(".ts") && !name.startsWith("__dagger"))
      .map((name) => join(sandbox.srcDir, name));
    const { scan } = (await import(pathToFileURL(join(sdkDist, "module", "introspector", "index.js")).href)) as {
      scan: (
        files: string[],
        moduleName: string,
        loadModule: boolean,
      ) => Promise<Parameters<typeof fromIntrospection>[0]>;
    };
    context.introspected = fromIntrospection(await scan([...files, sandbox.clientGen], "loan-ci", false));
  } finally {
    sandbox.cleanup();
  }
});

Interface("the SDK's introspector on ci/src yields the pinned function listing", ({ introspected }) => {
  assert.fixture(renderListing(introspected.functions), LISTING);
});

Interface("the registration run (parent name empty) registers the same listing with the engine", async () => {
  const { registration } = await scenarios();
  assert.is(registration.run.code, 0, registration.run.stderr);
  assert.equal(registration.engine.internalErrors, []);
  assert.is(registration.decoded.objectName, "LoanCi");
  assert.fixture(renderListing(registration.decoded.functions), LISTING);
});

Interface("exactly the gates are checks: `dagger check` runs test, lint, typecheck, scan, manifests", async () => {
  const { registration } = await scenarios();
  const checks = registration.decoded.functions.filter((f) => f.check).map((f) => f.name);
  assert.equal(checks.sort(), ["lint", "manifests", "scan", "test", "typecheck"]);
  // A check may take no required argument: each has only the contextual source (optional to the engine).
  for (const fn of registration.decoded.functions.filter((f) => f.check)) {
    assert.equal(
      fn.args.map((a) => [a.name, a.defaultPath]),
      [["source", "/"]],
      fn.name,
    );
  }
});

Interface("every function and argument carries a description (the CLI help)", async () => {
  const { registration } = await scenarios();
  for (const fn of registration.decoded.functions) {
    assert.ok(fn.description.trim().length > 20, `${fn.name} has no description`);
    for (const arg of fn.args)
      assert.ok(arg.description.trim().length > 5, `${fn.name} --${arg.name} has no description`);
  }
});

Interface("every source argument is contextual with the tight ignore list", async ({ introspected }) => {
  // Every function that reads the repository takes it as `source`; only verify (of a published image) does not.
  const readers = introspected.functions.filter((f) => f.name !== "verify");
  assert.is(readers.length, 12);
  const sources = readers.map((f) => f.args.find((a) => a.name === "source"));
  for (const source of sources) {
    assert.is(source?.defaultPath, "/");
    assert.equal(source?.ignore, SOURCE_IGNORE);
  }
  for (const needed of ["**/node_modules", ".git", "**/.env", "**/.env.*", "**/*.pem", "**/*.key", "ci/sdk"]) {
    assert.ok(SOURCE_IGNORE.includes(needed), `ignore list lacks ${needed}`);
  }
});

Interface(
  "no constructor is registered: the engine builds LoanCi itself (an empty object)",
  async ({ introspected }) => {
    const { registration } = await scenarios();
    assert.is(introspected.hasConstructor, false);
    assert.is(registration.decoded.hasConstructor, false);
  },
);

Interface("the README's Pipeline section shows the same listing", () => {
  const readme = readFileSync(join(repoRoot, "README.md"), "utf8");
  assert.ok(readme.includes(LISTING), "update the function listing in README.md (Pipeline section)");
});

Interface.run();
