/**
 * The replay's interpreter, without containers: it refuses what it does not interpret (loudly, before any
 * work), and the source it uploads is what the pipeline's ignore list lets through.
 */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import ignore from "ignore";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { SOURCE_IGNORE } from "../../ci/src/pipeline.js";
import { NODE_IMAGE } from "../../ci/src/versions.js";
import type { Chain } from "../../ci/test/support/recording-engine.js";
import { root } from "../nginx/support.js";
import { copyFiltered, Replayer, Unsupported } from "./executor.js";

const test = suite("replay interpreter: the API subset and the uploaded source");

/** The files under `dir`; a directory `skip` says true for is not entered. */
function files(dir: string, skip: (path: string) => boolean = () => false): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      const rel = relative(dir, p);
      if (statSync(p).isDirectory()) {
        if (!skip(`${rel}/`)) walk(p);
      } else if (!skip(rel)) out.push(rel);
    }
  };
  walk(dir);
  return out.sort();
}

const base: Chain = [
  { field: "container", args: {} },
  { field: "from", args: { address: NODE_IMAGE } },
];

test("a field outside the interpreted subset fails the evaluation loudly, before anything runs", async () => {
  const replayer = new Replayer({ images: {} });
  try {
    for (const [chain, message] of [
      [[...base, { field: "withUser", args: { name: "node" } }], "does not interpret withUser()"],
      [
        [...base, { field: "withExec", args: { args: ["true"], expect: "ANY" } }],
        "does not interpret withExec(expect:)",
      ],
      [
        [
          ...base,
          {
            field: "withServiceBinding",
            args: {
              alias: "db",
              service: {
                $id: "rec:1",
                chain: [
                  { field: "container", args: {} },
                  { field: "withSecretVariable", args: {} },
                ],
              },
            },
          },
        ],
        "does not interpret withSecretVariable()",
      ],
    ] as Array<[Chain, string]>) {
      const error = await replayer.execute(chain).then(
        () => undefined,
        (e: unknown) => e,
      );
      assert.instance(error, Unsupported);
      assert.match((error as Error).message, message);
    }
    assert.equal(
      replayer.evaluations.map((e) => e.outcome),
      ["FAIL", "FAIL", "FAIL"],
    );
    assert.equal(replayer.execLog, [], "nothing ran");
  } finally {
    await replayer.cleanup();
  }
});

test("an image without a stand-in is NOT RUN, not failed and not passed", async () => {
  const replayer = new Replayer({ images: {} });
  try {
    await replayer.execute([...base, { field: "withExec", args: { args: ["node", "--version"] } }]).catch(() => {});
    assert.is(replayer.evaluations[0]?.outcome, "NOT RUN");
    assert.match(replayer.evaluations[0]?.reason ?? "", "no local stand-in");
  } finally {
    await replayer.cleanup();
  }
});

test("the uploaded source: the checkout's files minus SOURCE_IGNORE (tracked files of a clean clone)", () => {
  const out = mkdtempSync(join(tmpdir(), "loan-replay-src-"));
  try {
    copyFiltered(root, out, { exclude: SOURCE_IGNORE });
    const uploaded = files(out);
    assert.ok(!uploaded.some((f) => f.split("/").includes("node_modules")), "no node_modules");
    assert.ok(!uploaded.some((f) => f === ".git" || f.startsWith(".git/")), "no .git");
    // Every file of a clean clone (what .gitignore does not exclude; read without git, which the pipeline's
    // image lacks) that the ignore list lets through is uploaded (untracked, non-ignored files are too, as Dagger
    // uploads the directory as it is).
    const gitignore = ignore().add(readFileSync(join(root, ".gitignore"), "utf8"));
    const tracked = files(root, (f) => f === ".git/" || gitignore.ignores(f));
    const missing = tracked.filter((f) => !uploaded.includes(f) && !f.endsWith(".pem") && !f.endsWith(".key"));
    assert.equal(missing, []);
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});

test("ignore patterns match as Dagger's (.dockerignore): anchored at the root, ** for any depth, include", () => {
  const src = mkdtempSync(join(tmpdir(), "loan-replay-pat-"));
  const out = mkdtempSync(join(tmpdir(), "loan-replay-pat-out-"));
  try {
    for (const f of [
      "dist/a.js",
      "service/dist/b.js",
      "a/node_modules/x.js",
      "node_modules/y.js",
      "env/prod.env",
      "env/dev.env",
      "x/y/z.log",
      "package.json",
      "package-lock.json",
      "sub/package.json",
    ]) {
      mkdirSync(join(src, f, ".."), { recursive: true });
      writeFileSync(join(src, f), f);
    }
    copyFiltered(src, join(out, "ex"), { exclude: ["dist", "**/node_modules", "env/prod.env", "**/*.log"] });
    assert.equal(files(join(out, "ex")), [
      "env/dev.env",
      "package-lock.json",
      "package.json",
      "service/dist/b.js",
      "sub/package.json",
    ]);
    copyFiltered(src, join(out, "in"), { include: ["package.json", "package-lock.json"] });
    assert.equal(files(join(out, "in")), ["package-lock.json", "package.json"]);
  } finally {
    rmSync(src, { recursive: true, force: true });
    rmSync(out, { recursive: true, force: true });
  }
});

test.run();
