/**
 * A throw-away copy of the Dagger module laid out the way the engine's TypeScript runtime lays it out, so
 * that the SDK's own introspector and module entrypoint can run on it without an engine:
 *
 *   <tmp>/ci/src/*.ts                   copies of ci/src
 *   <tmp>/ci/src/__dagger.entrypoint.ts  the runtime's start file (written here, see ENTRYPOINT below)
 *   <tmp>/ci/tsconfig.json, package.json copies of ci/tsconfig.json and ci/package.json
 *   <tmp>/ci/sdk/                        stand-in for the generated SDK (git-ignored `ci/sdk` in a real checkout):
 *       index.ts       re-exports client.gen.ts (types) and core.js (runtime)
 *       client.gen.ts  a copy of the published package's `client.gen.d.ts`: the introspector only recognises
 *                      core types (Directory, Secret, …) declared in a file literally named client.gen.ts
 *       core.js        re-exports the published `@dagger.io/dagger` package (the code that runs)
 *       telemetry.ts   re-exports the package's telemetry entry
 *   <tmp>/ci/node_modules/@dagger.io/dagger -> ../../sdk   (as the engine mounts it for the introspector)
 *
 * Nothing generated is written inside the repository.
 */
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

export const repoRoot = fileURLToPath(new URL("../../../", import.meta.url));

const require = createRequire(join(repoRoot, "package.json"));
/** `…/node_modules/@dagger.io/dagger/dist/src` of the published package this repository depends on. */
export const sdkDist = dirname(require.resolve("@dagger.io/dagger"));
/** The tsx CLI the engine's runtime starts the module with. */
export const tsxCli = join(dirname(require.resolve("tsx/package.json")), "dist", "cli.mjs");

/**
 * The runtime's start file, written from the behaviour ENVIRONMENT.md describes: list the .ts files under
 * src/, add the SDK's client.gen.ts, and hand them to the SDK's `entrypoint()`.
 */
const ENTRYPOINT = `import * as fs from "node:fs";
import * as path from "node:path";
import { entrypoint } from "@dagger.io/dagger";

function tsFiles(dir: string): string[] {
  return fs.readdirSync(dir).flatMap((name) => {
    const file = path.join(dir, name);
    if (fs.statSync(file).isDirectory()) return tsFiles(file);
    return [".ts", ".mts"].includes(path.extname(file)) ? [file] : [];
  });
}

entrypoint([...tsFiles(import.meta.dirname), path.join(import.meta.dirname, "..", "sdk", "client.gen.ts")]);
`;

export interface ModuleSandbox {
  /** The module directory (what `ci/` is in the repository). */
  dir: string;
  srcDir: string;
  clientGen: string;
  tsconfig: string;
  entrypoint: string;
  cleanup(): void;
}

export function makeModuleSandbox(): ModuleSandbox {
  const root = mkdtempSync(join(tmpdir(), "loan-ci-module-"));
  const dir = join(root, "ci");
  const srcDir = join(dir, "src");
  const sdkDir = join(dir, "sdk");
  mkdirSync(srcDir, { recursive: true });
  mkdirSync(sdkDir);
  for (const name of readdirSync(join(repoRoot, "ci", "src"))) {
    if (name.endsWith(".ts")) cpSync(join(repoRoot, "ci", "src", name), join(srcDir, name));
  }
  cpSync(join(repoRoot, "ci", "tsconfig.json"), join(dir, "tsconfig.json"));
  cpSync(join(repoRoot, "ci", "package.json"), join(dir, "package.json"));

  const clientGen = join(sdkDir, "client.gen.ts");
  writeFileSync(clientGen, readFileSync(join(sdkDist, "api", "client.gen.d.ts")));
  writeFileSync(join(sdkDir, "index.ts"), 'export * from "./client.gen.js";\nexport * from "./core.js";\n');
  writeFileSync(
    join(sdkDir, "core.js"),
    `export * from ${JSON.stringify(pathToFileURL(join(sdkDist, "index.js")).href)};\n`,
  );
  writeFileSync(
    join(sdkDir, "telemetry.ts"),
    `export * from ${JSON.stringify(pathToFileURL(join(sdkDist, "telemetry", "index.js")).href)};\n`,
  );
  mkdirSync(join(dir, "node_modules", "@dagger.io"), { recursive: true });
  symlinkSync(join("..", "..", "sdk"), join(dir, "node_modules", "@dagger.io", "dagger"), "dir");

  const entrypoint = join(srcDir, "__dagger.entrypoint.ts");
  writeFileSync(entrypoint, ENTRYPOINT);
  return {
    dir,
    srcDir,
    clientGen,
    tsconfig: join(dir, "tsconfig.json"),
    entrypoint,
    cleanup: () => rmSync(root, { recursive: true, force: true }),
  };
}
