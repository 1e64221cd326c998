// test/run.ts: process-group compose
/**
 * compose.yaml with each environment's env file: interpolated the way `docker compose --env-file …` does
 * (${VAR}, ${VAR:-default}, ${VAR:?message}, $$), then validated by dclint (the Compose schema and good
 * practice) and checked for what this project promises: limits per environment, only nginx publishing ports,
 * healthy-dependency ordering, restart policies, log rotation, a pinned PostgreSQL equal to the pipeline's, no
 * committed secret, and a clear error for every missing value.
 *
 * Pure Node: no Docker Compose here (these machines cannot pull its images). A full `compose up` is verified
 * by hand; see the README, "Environments".
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { DCLinter } from "dclint";
import ignore from "ignore";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { parse } from "yaml";
import { interpolate, parseEnvFile, referencedVariables } from "./interpolate.js";

const root = fileURLToPath(new URL("../..", import.meta.url));
const composeText = readFileSync(join(root, "compose.yaml"), "utf8");

const environments = [
  { name: "dev", file: "env/dev.env", memory: "256M", volume: "db_data_dev" },
  { name: "staging", file: "env/staging.env", memory: "512M", volume: "db_data_staging" },
  { name: "prod", file: "env/prod.env.example", memory: "1G", volume: "db_data_prod" },
] as const;

type Service = Record<string, any>;
interface ComposeModel {
  name: string;
  services: Record<string, Service>;
  volumes: Record<string, { name?: string }>;
  networks: Record<string, { internal?: boolean }>;
  secrets: Record<string, { file?: string }>;
}

function envOf(file: string) {
  return parseEnvFile(readFileSync(join(root, file), "utf8"));
}

function render(vars: Record<string, string>): ComposeModel {
  return parse(interpolate(composeText, vars)) as ComposeModel;
}

const dir = mkdtempSync(join(tmpdir(), "loan-compose-"));
// Every rule at its default level; ports quoted with double quotes, the project's YAML style (Biome's).
const linter = new DCLinter({
  rules: { "require-quotes-in-ports": [1, { quoteType: "double" }] },
  quiet: true,
  debug: false,
  exclude: [],
});

const test = suite("compose.yaml per environment");
test.after(() => rmSync(dir, { recursive: true, force: true }));

for (const env of environments) {
  test(`${env.name}: the interpolated file passes dclint (Compose schema and every rule) with no finding`, () => {
    const rendered = interpolate(composeText, envOf(env.file));
    const path = join(dir, `compose.${env.name}.yaml`);
    writeFileSync(path, rendered);
    const [result] = linter.lintFiles([path], false);
    assert.ok(result, "dclint linted the file");
    const findings = result.messages.map(
      (m: { type: string; rule: string; line: number; message: string }) =>
        `${m.type} ${m.rule} line ${m.line}: ${m.message}`,
    );
    assert.equal(findings, [], findings.join("\n"));
  });

  test(`${env.name}: limits, volume, project name and log level come from its env file`, () => {
    const vars = envOf(env.file);
    const model = render(vars);
    assert.is(model.name, `loans-${env.name}`);
    assert.is(model.services.api?.deploy?.resources?.limits?.memory, env.memory);
    assert.is(model.services.db?.deploy?.resources?.limits?.memory, env.memory);
    assert.ok(Number(model.services.api?.deploy?.resources?.limits?.cpus) > 0, "api CPU limit");
    assert.ok(Number(model.services.db?.deploy?.resources?.limits?.cpus) > 0, "db CPU limit");
    assert.is(model.volumes.db_data?.name, env.volume);
    assert.is(String(model.services.api?.environment?.LOG_LEVEL), vars.LOG_LEVEL);
    assert.is(String(model.services.api?.environment?.DB_POOL_MAX), vars.DB_POOL_MAX);
    // The workers' heaps fit inside the container's memory limit, with room for the rest of the processes.
    // The heap is the old space plus the young generation (three semi-spaces): both bounded.
    const nodeOptions = String(model.services.api?.environment?.NODE_OPTIONS);
    const oldMb = Number(/--max-old-space-size=(\d+)/.exec(nodeOptions)?.[1]);
    const semiMb = Number(/--max-semi-space-size=(\d+)/.exec(nodeOptions)?.[1]);
    assert.ok(semiMb > 0, `the young generation is bounded too: ${nodeOptions}`);
    const heapMb = oldMb + 3 * semiMb;
    const workers = Number(model.services.api?.environment?.WEB_CONCURRENCY);
    const limitMb = env.memory.endsWith("G") ? Number.parseFloat(env.memory) * 1024 : Number.parseFloat(env.memory);
    assert.ok(Number.isInteger(workers) && workers >= 1, `WEB_CONCURRENCY ${workers}`);
    assert.ok(
      workers <= Math.max(1, Number(model.services.api?.deploy?.resources?.limits?.cpus)),
      "a worker per CPU at most",
    );
    assert.ok(heapMb > 0 && heapMb * workers <= limitMb * 0.8, `${workers} × ${heapMb} MB within 80% of ${limitMb} MB`);
  });

  test(`${env.name}: only nginx publishes ports; db and api are on an internal network`, () => {
    const model = render(envOf(env.file));
    const publishing = Object.entries(model.services)
      .filter(([, s]) => s.ports !== undefined)
      .map(([name]) => name);
    assert.equal(publishing, ["nginx"]);
    assert.ok(model.networks.backend?.internal, "backend network is internal");
    assert.equal(model.services.db?.networks, ["backend"]);
    assert.equal(model.services.api?.networks, ["backend"]);
    for (const port of model.services.nginx?.ports ?? []) {
      assert.match(String(port), /^(127\.0\.0\.1|0\.0\.0\.0):\d+:(80|443)$/);
    }
  });

  test(`${env.name}: the api trusts exactly the nginx hop (the service's own default trusts none) and serves metrics on the internal network only`, () => {
    const model = render(envOf(env.file));
    const api = model.services.api?.environment ?? {};
    assert.is(api.TRUST_PROXY, "1", "nginx in front: one trusted hop");
    assert.is(api.METRICS_PORT, "9464");
    assert.is(api.METRICS_HOST, "0.0.0.0", "reachable by a scraper on the backend network");
    assert.is(model.services.api?.ports, undefined, "the metrics port is published nowhere");
    assert.is(model.services.nginx?.environment?.NGINX_UPSTREAM, "api:8000", "nginx proxies the API port only");
  });

  test(`${env.name}: start order waits for health; every service restarts, rotates logs and has a healthcheck`, () => {
    const model = render(envOf(env.file));
    assert.is(model.services.api?.depends_on?.db?.condition, "service_healthy");
    assert.is(model.services.nginx?.depends_on?.api?.condition, "service_healthy");
    for (const [name, service] of Object.entries(model.services)) {
      assert.is(service.restart, "unless-stopped", `${name} restart policy`);
      assert.is(service.logging?.driver, "json-file", `${name} log driver`);
      assert.ok(service.logging?.options?.["max-size"] && service.logging?.options?.["max-file"], `${name} rotation`);
      assert.ok(Array.isArray(service.healthcheck?.test), `${name} healthcheck`);
    }
    assert.ok(model.services.db?.healthcheck?.test.includes("pg_isready"), "db healthcheck is pg_isready");
    assert.equal(model.services.api?.healthcheck?.test, ["CMD", "node", "dist/src/healthcheck.js"]);
  });
}

test("every variable compose.yaml uses is set in each env file, and none is left unused", () => {
  const used = referencedVariables(composeText).sort();
  for (const env of environments) {
    const defined = Object.keys(envOf(env.file)).sort();
    assert.equal(defined, used, `${env.file} defines exactly the variables compose.yaml uses`);
  }
});

test("a missing value stops compose with a message that names it (every variable)", () => {
  const vars = envOf("env/dev.env");
  for (const name of referencedVariables(composeText)) {
    const { [name]: _removed, ...rest } = vars;
    let message = "";
    try {
      interpolate(composeText, rest);
    } catch (err) {
      message = (err as Error).message;
    }
    assert.ok(message.includes(name), `without ${name}: ${message || "no error"}`);
    assert.match(message, /env file|--env-file/);
  }
});

/**
 * The repository's ignore rules, evaluated with gitignore semantics by the `ignore` package rather than by
 * `git check-ignore`: the pipeline's test container (the pinned Node image) has no git and no `.git`, and this
 * assertion must hold there too.
 */
function gitIgnored(): (path: string) => boolean {
  const rules = ignore().add(readFileSync(join(root, ".gitignore"), "utf8"));
  return (path) => rules.ignores(path);
}

test("the ignore check itself tells ignored from tracked paths", () => {
  const ignored = gitIgnored();
  assert.ok(ignored("secrets/db_password_prod.txt"));
  assert.not.ok(ignored("env/staging.env"));
  assert.not.ok(ignored("compose.yaml"));
});

test("no secret is committed: passwords come from files, staging and prod ones git-ignored", () => {
  const ignored = gitIgnored();
  for (const env of environments) {
    const vars = envOf(env.file);
    for (const key of Object.keys(vars)) {
      assert.not.match(key, /(PASSWORD|SECRET|TOKEN)$/, `${env.file} sets ${key} in plain text`);
    }
    if (env.name !== "dev") {
      const file = vars.DB_PASSWORD_FILE ?? "";
      assert.match(file, /^\.\/secrets\//);
      assert.ok(ignored(file.replace(/^\.\//, "")), `${file} is not git-ignored`);
    }
  }
  for (const file of ["env/prod.env", "nginx/certs/tls.key", "nginx/certs/tls.crt"]) {
    assert.ok(ignored(file), `${file} is not git-ignored`);
  }
});

test("the PostgreSQL image is pinned, and is the one the pipeline tests against", () => {
  const versions = readFileSync(join(root, "ci/src/versions.ts"), "utf8");
  const pipelineImage = /POSTGRES_IMAGE\s*=\s*"([^"]+)"/.exec(versions)?.[1];
  const model = render(envOf("env/dev.env"));
  assert.match(model.services.db?.image ?? "", /^postgres:17\.\d+-/);
  assert.is(model.services.db?.image, pipelineImage);
});

test("the Dockerfile's default base is the pipeline's pinned Node image", () => {
  const versions = readFileSync(join(root, "ci/src/versions.ts"), "utf8");
  const pipelineNode = /NODE_IMAGE\s*=\s*"([^"]+)"/.exec(versions)?.[1];
  const dockerfile = readFileSync(join(root, "Dockerfile"), "utf8");
  const base = /^ARG NODE_IMAGE=(\S+)$/m.exec(dockerfile)?.[1];
  assert.match(base ?? "", /^node:\d+\.\d+\.\d+-bookworm-slim$/);
  assert.is(base, pipelineNode);
});

test.run();
