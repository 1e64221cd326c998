/**
 * What the builder receives as the build context, given the project's .dockerignore: a copy of the tracked
 * files plus decoys (a .git folder, node_modules, local env files, keys, secrets, tests, CI files) is sent to
 * buildah with a Dockerfile that lists the context it got.
 */
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { requireTool, root, run } from "../nginx/support.js";

const test = suite("image: the build context .dockerignore lets through");

let dir = "";
let context: string[] = [];

test.before(async () => {
  await requireTool("buildah", ["--version"], "apt-get install -y buildah");
  const base = (await run("bash", [join(root, "scripts/runtime/build-base-image.sh")], { timeoutMs: 600_000 })).stdout
    .trim()
    .split("\n")
    .at(-1) as string;
  dir = mkdtempSync(join(tmpdir(), "loan-context-"));
  const ctx = join(dir, "context");
  const tracked = (await run("git", ["ls-files", "-z"])).stdout.split("\0").filter(Boolean);
  for (const file of tracked) {
    mkdirSync(dirname(join(ctx, file)), { recursive: true });
    try {
      copyFileSync(join(root, file), join(ctx, file));
    } catch {
      // Deleted in the working tree but still tracked: not part of the context anyway.
    }
  }
  const decoys = [
    ".git/HEAD",
    "node_modules/left-pad/index.js",
    "service/node_modules/x/index.js",
    ".env",
    ".env.local",
    "service/.env",
    "env/prod.env",
    "env/local.env",
    "secrets/prod_db_password",
    "nginx/certs/tls.key",
    "nginx/certs/tls.crt",
    "service/src/server.test.ts",
    "service/test/x.ts",
    "service/src/dev-key.pem",
    "service/src/dev.key",
    "test/service/x.test.ts",
    "ci/src/index.ts",
    ".github/workflows/ci.yml",
    ".ci/run",
    "dist/src/server.js",
  ];
  for (const file of decoys) {
    mkdirSync(dirname(join(ctx, file)), { recursive: true });
    writeFileSync(join(ctx, file), "decoy\n");
  }
  const dockerfile = join(dir, "list-context.Dockerfile");
  writeFileSync(
    dockerfile,
    `FROM ${base}\nCOPY . /ctx\nRUN cd /ctx && find . -mindepth 1 \\( -type f -o -type l \\) | sort | sed 's/^\\./CTX /'\n`,
  );
  const built = await run(
    "buildah",
    [
      "bud",
      "--format",
      "docker",
      "--isolation",
      "chroot",
      "--pull=never",
      "--no-cache",
      "-f",
      dockerfile,
      "-t",
      "localhost/loan-context-list:test",
      ctx,
    ],
    { timeoutMs: 300_000 },
  );
  context = built.stdout
    .split("\n")
    .filter((l) => l.startsWith("CTX "))
    .map((l) => l.slice(5));
  await run("buildah", ["rmi", "localhost/loan-context-list:test"], { allowFailure: true });
});

test.after(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test("the context holds what the Dockerfile copies: package files, tsconfigs and the service's sources", () => {
  for (const f of [
    "package.json",
    "package-lock.json",
    "tsconfig.json",
    "tsconfig.build.json",
    "service/src/server.ts",
  ]) {
    assert.ok(context.includes(f), `${f} in the context (got ${context.length} files)`);
  }
  assert.ok(
    context.some((f) => f.startsWith("service/migrations/")),
    "migrations",
  );
});

test("no .git, node_modules, env files, secrets, keys, certificates, tests, CI files or build output", () => {
  const forbidden =
    /(^|\/)\.git\/|(^|\/)node_modules\/|(^|\/)\.env|\.env$|^env\/|^secrets\/|\.pem$|\.key$|^nginx\/|\.test\.ts$|^service\/test\/|^test\/|^ci\/|^\.github\/|^\.ci\/|^dist\/|^compose\.yaml$|^Dockerfile$/;
  const leaked = context.filter((f) => forbidden.test(f));
  assert.equal(leaked, []);
});

test.run();
