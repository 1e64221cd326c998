/** The test harness itself: the service-variable allow-list, `before` failures, `npm test -- --help`. */
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { serviceVariables, withoutServiceVariables } from "../support/env.js";
import { ROOT } from "../support/process.js";

const test = suite("harness");

const runTests = (...args: string[]) =>
  spawnSync(process.execPath, ["--import", "tsx", "test/run.ts", ...args], {
    cwd: ROOT,
    encoding: "utf8",
    env: { ...process.env, NO_COLOR: "1" },
    timeout: 60_000,
  });

test("the allow-list of service variables is every variable config.ts declares, WEB_CONCURRENCY included", () => {
  const source = readFileSync(`${ROOT}/service/src/config.ts`, "utf8");
  const declared = [...source.matchAll(/^\s+([A-Z][A-Z0-9_]+): (?:str|num|bool|port|url|host|json)\(/gm)].map(
    (m) => m[1],
  );
  assert.ok(declared.length >= 15, `found ${declared.length} declarations`);
  for (const name of declared) assert.ok(serviceVariables().includes(name as string), `${name} missing`);
  assert.ok(serviceVariables().includes("WEB_CONCURRENCY"));
});

test("an ambient service variable never reaches a started service", () => {
  const env = withoutServiceVariables({ WEB_CONCURRENCY: "4", LOG_PRETTY: "true", PATH: "/bin", HOME: "/root" });
  assert.equal(env, { PATH: "/bin", HOME: "/root" });
});

test("a `before` hook that throws is printed with its reason and fails the run", () => {
  const r = runTests("test/fixtures/before-fails");
  assert.is(r.status, 1, r.stdout + r.stderr);
  assert.match(r.stdout, /before hook failed in suite "fixture: before fails"/);
  assert.match(r.stdout, /boom from the before hook/);
  assert.match(r.stdout, /^0 passed, 1 failed$/m);
});

test("`npm test -- --help` prints usage and exits 0 without running anything", () => {
  const r = runTests("--help");
  assert.is(r.status, 0, r.stderr);
  assert.match(r.stdout, /^usage: npm test/);
  assert.not.match(r.stdout, /^\d+ passed, /m);
  const bad = runTests("--bogus");
  assert.is(bad.status, 2);
  assert.match(bad.stderr, /unknown option --bogus/);
});

test.run();
