// test/run.ts: process-group service-light
/**
 * The benchmark harness's settings (bench/lib/options.ts): variable lists whose values hold spaces and commas
 * (NODE_OPTIONS with two flags), and BENCH_NODE, the Node binary that runs the service (global or per variant,
 * never a service variable), down to the report's lines naming which Node ran each variant.
 */
import { mkdtempSync, readFileSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { parseEnvList, readOptions } from "../../bench/lib/options.js";
import { renderReport } from "../../bench/lib/report.js";
import { ROOT, startService } from "../../bench/lib/service.js";
import { nodeVersions } from "../../bench/lib/tools.js";

const test = suite("bench options");

const TWO_FLAGS = "--max-old-space-size=384 --max-semi-space-size=16";

test("parseEnvList: a value with a space (NODE_OPTIONS with two flags) stays whole", () => {
  assert.equal(parseEnvList(`NODE_OPTIONS=${TWO_FLAGS},WEB_CONCURRENCY=1`), {
    NODE_OPTIONS: TWO_FLAGS,
    WEB_CONCURRENCY: "1",
  });
  assert.equal(parseEnvList(`WEB_CONCURRENCY=1 NODE_OPTIONS=${TWO_FLAGS}`), {
    WEB_CONCURRENCY: "1",
    NODE_OPTIONS: TWO_FLAGS,
  });
});

test("parseEnvList: a value with commas stays whole", () => {
  assert.equal(parseEnvList("CORS_ORIGINS=https://a.example,https://b.example LOG_LEVEL=warn"), {
    CORS_ORIGINS: "https://a.example,https://b.example",
    LOG_LEVEL: "warn",
  });
  assert.equal(parseEnvList("NODE_OPTIONS=--a, --b"), { NODE_OPTIONS: "--a, --b" });
});

test("parseEnvList: several variables, separated by spaces, commas or both; empty text is no variable", () => {
  assert.equal(parseEnvList("A=1 B=2,C=3 , _D9= ,E=x=y"), { A: "1", B: "2", C: "3", _D9: "", E: "x=y" });
  assert.equal(parseEnvList(" LOG_LEVEL=warn DB_POOL_MAX=10 "), { LOG_LEVEL: "warn", DB_POOL_MAX: "10" });
  assert.equal(parseEnvList(""), {});
  assert.equal(parseEnvList(" , "), {});
});

test("parseEnvList: a part that is not NAME=value throws, naming it", () => {
  assert.throws(() => parseEnvList("WEB_CONCURRENCY"), /not NAME=value: "WEB_CONCURRENCY"/);
  assert.throws(() => parseEnvList("oops A=1"), /not NAME=value: "oops"/);
  assert.throws(() => parseEnvList("=1"), /not NAME=value/);
  assert.throws(() => parseEnvList("1A=2"), /not NAME=value: "1A=2"/);
});

const VARIANTS = `n20:WEB_CONCURRENCY=1;n24:WEB_CONCURRENCY=1,BENCH_NODE=/opt/n24/bin/node,NODE_OPTIONS=${TWO_FLAGS}`;

test("readOptions: a variant's BENCH_NODE wins over the global one and is not a service variable", () => {
  const opts = readOptions([], { BENCH_VARIANTS: VARIANTS, BENCH_NODE: "/opt/global/bin/node" });
  assert.equal(opts.variants, [
    { name: "n20", env: { WEB_CONCURRENCY: "1" }, node: "/opt/global/bin/node" },
    { name: "n24", env: { WEB_CONCURRENCY: "1", NODE_OPTIONS: TWO_FLAGS }, node: "/opt/n24/bin/node" },
  ]);
  assert.not.ok("BENCH_NODE" in opts.serviceEnv);
});

test("readOptions: without a global BENCH_NODE the harness's own Node runs the others; a relative path is made absolute", () => {
  const opts = readOptions([], { BENCH_VARIANTS: "a:WEB_CONCURRENCY=1;b:BENCH_NODE=./n24/node" });
  assert.equal(
    opts.variants.map((v) => v.node),
    [process.execPath, resolve("n24/node")],
  );
  assert.equal(opts.variants[1]?.env, {});
  // The default variants take the global one.
  const defaults = readOptions([], { BENCH_NODE: "/opt/global/bin/node" });
  assert.ok(defaults.variants.length >= 3);
  for (const v of defaults.variants) assert.is(v.node, "/opt/global/bin/node", v.name);
});

test("readOptions: BENCH_NODE inside BENCH_SERVICE_ENV is refused (it would reach the service)", () => {
  assert.throws(() => readOptions([], { BENCH_SERVICE_ENV: "BENCH_NODE=/opt/n24/bin/node" }), /BENCH_SERVICE_ENV/);
});

test("nodeVersions: each binary asked once; one that does not run, or is not Node, stops the run naming its path", () => {
  assert.equal(nodeVersions([process.execPath, process.execPath]), { [process.execPath]: process.version });
  assert.throws(() => nodeVersions(["/nonexistent/bin/node"]), /\/nonexistent\/bin\/node --version/);
  assert.throws(() => nodeVersions(["/bin/true"]), /\/bin\/true --version.*not a Node version/);
});

test("the report names the Node that ran each variant", () => {
  const opts = readOptions([], { BENCH_VARIANTS: VARIANTS, BENCH_SIZES: "20", BENCH_OUT: "/tmp/unused" });
  const md = renderReport({
    command: "npm run bench",
    settings: {},
    started: "2025-01-01T00:00:00.000Z",
    machine: {
      cpus: 2,
      cpuModel: "cpu",
      memoryGiB: 4,
      kernel: "6",
      os: "Linux",
      node: process.version,
      nodePath: process.execPath,
      wrk: "wrk",
      ab: "ab",
      pgbench: "pgbench",
    },
    nodeVersions: { [process.execPath]: process.version, "/opt/n24/bin/node": "v24.0.0" },
    options: opts,
    postgres: {},
    sizes: [],
    endpoints: [],
    ceilings: [],
  });
  assert.match(md, `- Versions: Node ${process.version} (harness); service: n20 ${process.version}, n24 v24.0.0;`);
  assert.match(md, `n20 (Node ${process.version}, {"WEB_CONCURRENCY":"1"})`);
  assert.match(md, "n24 (Node v24.0.0 at /opt/n24/bin/node, {");
});

test("startService runs the binary it is given, and the service's environment has no BENCH_NODE", async () => {
  const dir = mkdtempSync(join(tmpdir(), "bench-node-"));
  const binary = join(dir, "other-node");
  symlinkSync(process.execPath, binary);
  const saved = process.env.BENCH_NODE;
  process.env.BENCH_NODE = binary;
  try {
    const service = await startService({
      entry: join(ROOT, "bench/reference/bare-http.ts"),
      nodeArgs: ["--import", "tsx"],
      node: binary,
      env: { WEB_CONCURRENCY: "1" },
      logFile: join(dir, "service.log"),
    });
    try {
      const argv = readFileSync(`/proc/${service.pid}/cmdline`, "utf8").split("\0");
      const environ = readFileSync(`/proc/${service.pid}/environ`, "utf8").split("\0");
      assert.is(argv[0], binary);
      assert.ok(environ.includes("WEB_CONCURRENCY=1"));
      assert.equal(
        environ.filter((e) => e.startsWith("BENCH_NODE=")),
        [],
      );
    } finally {
      assert.is(await service.stop(), 0);
    }
  } finally {
    if (saved === undefined) delete process.env.BENCH_NODE;
    else process.env.BENCH_NODE = saved;
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
