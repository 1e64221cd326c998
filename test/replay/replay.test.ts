/**
 * The pipeline's `ci`, replayed: `ci/main.ts ci` runs against the recording engine and every chain it asks
 * for is executed on Docker/buildah with the stand-ins (see replay.ts). Prints one line per step.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { labels, sub } from "../../ci/test/support/chains.js";
import { requireTool, root, run } from "../nginx/support.js";
import { ciVerdict, type ReplayResult, replay, type Step, stepLines, testCounts } from "./replay.js";
import { pinnedNodeVersion, standIns } from "./standins.js";

const test = suite<{ r: ReplayResult }>("replay: ci's recorded steps executed on containers");

const step = (r: ReplayResult, name: string): Step => {
  const found = r.steps.filter((s) => s.name === name);
  assert.is(found.length, 1, `one ${name} step (got ${r.steps.map((s) => s.name).join(", ")})`);
  return found[0] as Step;
};

test.before(async (context) => {
  await requireTool("docker", ["info", "--format", "{{.ServerVersion}}"], "apt-get install -y docker.io");
  await requireTool("buildah", ["--version"], "apt-get install -y buildah");
  const log = process.env.DEBUG_REPLAY
    ? (line: string) => process.stdout.write(`  .. ${new Date().toISOString().slice(11, 19)} ${line}\n`)
    : undefined;
  context.r = await replay("ci", { log });
  const r = context.r;
  const lines = [...stepLines(r.steps), `replay: ${ciVerdict(r.steps)}; wall time ${r.seconds.toFixed(1)} s`];
  process.stdout.write(`\n${lines.join("\n")}\n`);
  // The failing steps' output goes to stderr, each line indented: the test runner and .ci/run count the
  // closing lines of this run's stdout, and a replayed test run's own summary must not be counted.
  for (const s of r.steps.filter((x) => x.outcome === "FAIL")) {
    const e = s.evaluation;
    const all = `${e.reason ?? ""}${e.stdout}${e.stderr}`.trimEnd().split("\n");
    const failures = all.flatMap((line, i) => (/FAIL|✘/.test(line) ? all.slice(i, i + 8) : []));
    const shown = [...failures, "…", ...all.slice(-40)];
    process.stderr.write(`--- ${s.name} failed ---\n${shown.map((line) => `  | ${line}`).join("\n")}\n`);
  }
});

test.after(async ({ r }) => {
  await r?.replayer.cleanup();
});

test("every step ci asks for was evaluated once: lint, typecheck, test, build, scan", ({ r }) => {
  assert.equal(r.steps.map((s) => s.name).sort(), ["build", "lint", "scan", "test", "typecheck"]);
  assert.equal(r.engine.internalErrors, []);
});

test("lint, typecheck, test and build pass in the pipeline's own containers", ({ r }) => {
  for (const name of ["lint", "typecheck", "test", "build"]) {
    const s = step(r, name);
    assert.is(s.outcome, "PASS", `${name}: ${s.note} (its output is on stderr, above)`);
  }
});

test("scan is reported as not run, in words, never as passed", ({ r }) => {
  const scan = step(r, "scan");
  assert.is(scan.outcome, "NOT RUN");
  assert.match(scan.note, /not run: image aquasec\/trivy:[^ ]+: no local stand-in/);
  assert.match(ciVerdict(r.steps), /^ci: NOT PASSED .*scan not run/);
  // The pipeline itself never saw a pass for the scan: ci fails, its summary lists the scan as failed.
  assert.is(r.code, 1);
  assert.match(r.stderr, /FAIL {2}scan/);
});

test("ci's own summary (pipeline code, real outcomes) agrees with the replay on every step that ran", ({ r }) => {
  for (const s of r.steps.filter((x) => x.outcome !== "NOT RUN")) {
    assert.match(r.stderr, new RegExp(`${s.outcome} {2}${s.name} `), `${s.name} is ${s.outcome} in ci's summary`);
  }
});

test("test: npm test ran in the Node stand-in against PostgreSQL bound as db, after npm ci, with the npm cache volume", async ({
  r,
}) => {
  const s = step(r, "test");
  const output = `${s.evaluation.stdout}${s.evaluation.stderr}`;
  const counts = testCounts(output);
  assert.ok(counts && counts.passed > 100 && counts.failed === 0, `counts: ${JSON.stringify(counts)}`);
  // DATABASE_URL from the chain reached the tests: the runner did not start an embedded server instead.
  assert.not.match(output, "DATABASE_URL not set");
  const images = await standIns();
  assert.equal(r.replayer.serviceLog, [
    {
      alias: "db",
      image: images.postgres.tag,
      args: [
        "postgres",
        "-c",
        "fsync=off",
        "-c",
        "synchronous_commit=off",
        "-c",
        "full_page_writes=off",
        "-c",
        "max_connections=200",
      ],
    },
  ]);
  // The execs in their order: the shared npm ci once, first; each step's command after it.
  const commands = r.replayer.execLog.map((c) => c.join(" "));
  assert.is(commands[0], "npm ci --no-audit --no-fund");
  assert.equal(commands.slice(1).sort(), ["npm run lint", "npm run typecheck", "npm test"]);
  // The cache volume at the chain's mount path holds npm's cache: npm ci used /root/.npm from it.
  const cache = s.evaluation.chain.find((x) => x.field === "withMountedCache");
  assert.is(cache?.args.path, "/root/.npm");
  const volume = sub(cache?.args.cache);
  const key = volume?.[0]?.args.key;
  assert.is(volume?.[0]?.field, "cacheVolume");
  const listing = await run("docker", [
    "run",
    "--rm",
    "--volume",
    `loan-replay-cache-${key}:/cache:ro`,
    "--entrypoint",
    "ls",
    images.node.tag,
    "/cache",
  ]);
  assert.match(listing.stdout, "_cacache");
});

test("build: the Dockerfile built FROM the Node stand-in, the chain's OCI labels read back from the image", async ({
  r,
}) => {
  const s = step(r, "build");
  const image = s.evaluation.image as string;
  assert.ok(image, "the build produced an image");
  const wanted = labels(s.evaluation.chain);
  const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { version: string };
  assert.is(wanted["org.opencontainers.image.version"], pkg.version);
  assert.match(wanted["org.opencontainers.image.created"] ?? "", /^\d{4}-\d\d-\d\dT/);
  const got = JSON.parse(
    (await run("docker", ["image", "inspect", "--format", "{{json .Config.Labels}}", image])).stdout,
  ) as Record<string, string>;
  for (const [name, value] of Object.entries(wanted)) assert.is(got[name], value, name);
  const user = await run("docker", ["image", "inspect", "--format", "{{.Config.User}}", image]);
  assert.is(user.stdout.trim(), "node");
  const node = await run("docker", ["run", "--rm", "--entrypoint", "node", image, "--version"]);
  assert.is(node.stdout.trim(), `v${pinnedNodeVersion()}`);
});

test.run();
