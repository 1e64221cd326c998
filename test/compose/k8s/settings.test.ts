// test/run.ts: process-group compose
/**
 * The Kubernetes settings come from the same values as compose's: the API's ConfigMap holds what compose.yaml
 * passes the api service when run with env/<env>.env (the overlays keep a filtered copy, k8s/overlays/<env>/
 * api.env), and the sizes, host, rate limit and body limit are that env file's. A value changed on one side only
 * fails here.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { parse } from "yaml";
import { interpolate, parseEnvFile } from "../interpolate.js";
import { OVERLAYS, type Overlay, renderOverlay, root } from "./kubectl.js";
import { find, parseManifests } from "./manifests.js";

const Settings = suite("k8s: settings equal to env/*.env and compose.yaml");

const ENV_FILES: Record<Overlay, string> = { staging: "env/staging.env", prod: "env/prod.env.example" };

/** Deliberate differences from compose, each with its reason. */
const DIFFERENT: Record<string, string> = {
  DATABASE_URL: "CloudNativePG's read-write service and database instead of compose's db container",
  DATABASE_PASSWORD_FILE: "the mounted -app secret instead of a compose secret",
  MIGRATE_ON_START: "migrations run in a Job once per release, never in the pods",
};

function envOf(overlay: Overlay): Record<string, string> {
  return parseEnvFile(readFileSync(join(root, ENV_FILES[overlay]), "utf8"));
}

/** compose.yaml's api environment as `docker compose --env-file <file>` would pass it. */
function composeApiEnvironment(overlay: Overlay): Record<string, string> {
  const compose = parse(interpolate(readFileSync(join(root, "compose.yaml"), "utf8"), envOf(overlay))) as {
    services: { api: { environment: Record<string, string> } };
  };
  return Object.fromEntries(Object.entries(compose.services.api.environment).map(([k, v]) => [k, String(v)]));
}

/** Bytes of a compose memory size (Docker: binary units, 512M = 512 MiB) or a Kubernetes quantity (512Mi). */
function bytes(size: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*(Ki|Mi|Gi|K|M|G|k|m|g|KB|MB|GB)?$/.exec(String(size).trim());
  if (!m) throw new Error(`unparseable size ${size}`);
  const unit = (m[2] ?? "").replace(/B$/, "").replace(/i$/, "").toUpperCase();
  const factor = { "": 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 }[unit];
  if (factor === undefined) throw new Error(`unknown unit in ${size}`);
  return Number(m[1]) * factor;
}

/** CPUs of a compose `cpus` value (1.0) or a Kubernetes quantity (1, "2", 500m). */
function cpus(value: string | number): number {
  const s = String(value);
  return s.endsWith("m") ? Number(s.slice(0, -1)) / 1000 : Number(s);
}

for (const overlay of OVERLAYS) {
  Settings(`${overlay}: the ConfigMap holds compose's api environment for ${ENV_FILES[overlay]}`, () => {
    const data = find(parseManifests(renderOverlay(overlay)), "ConfigMap").data ?? {};
    const compose = composeApiEnvironment(overlay);
    for (const [key, value] of Object.entries(compose)) {
      assert.ok(key in data, `${key} (compose) is missing from the ConfigMap`);
      if (key in DIFFERENT) continue;
      assert.is(data[key], value, `${key}: ConfigMap ${data[key]}, compose ${value}`);
    }
    assert.is(data.MIGRATE_ON_START, "false");
    assert.is(compose.MIGRATE_ON_START, "true", "the difference is deliberate (see DIFFERENT)");
    // Nothing in the ConfigMap that compose does not pass, except the listen address and port, which the image
    // sets too (Dockerfile ENV) and the probes and Service rely on.
    assert.equal(
      Object.keys(data)
        .filter((k) => !(k in compose))
        .sort(),
      ["HOST", "PORT"],
    );
  });

  Settings(`${overlay}: sizes, host, rate limit and body size are ${ENV_FILES[overlay]}'s`, () => {
    const env = envOf(overlay);
    const all = parseManifests(renderOverlay(overlay));
    const api = find(all, "Deployment", "loan-api").spec.template.spec.containers[0].resources;
    assert.is(bytes(api.limits.memory), bytes(env.API_MEM_LIMIT ?? ""), "API_MEM_LIMIT");
    assert.is(cpus(api.limits.cpu), cpus(env.API_CPUS ?? ""), "API_CPUS");
    // WEB_CONCURRENCY heaps fit within 80% of the memory limit (the env files size them at ~75%): each is the old
    // space (API_HEAP_MB) plus the young generation, three semi-spaces, both bounded by the ConfigMap's NODE_OPTIONS.
    const nodeOptions = String(find(all, "ConfigMap").data?.NODE_OPTIONS);
    const semiMb = Number(/--max-semi-space-size=(\d+)/.exec(nodeOptions)?.[1]);
    assert.ok(semiMb > 0, `the young generation is bounded: ${nodeOptions}`);
    const heaps = Number(env.WEB_CONCURRENCY) * (Number(env.API_HEAP_MB) + 3 * semiMb) * 1024 ** 2;
    assert.ok(heaps <= 0.8 * bytes(api.limits.memory), `${heaps} bytes of heap in ${api.limits.memory}`);
    assert.ok(cpus(api.requests.cpu) <= cpus(api.limits.cpu));

    const db = find(all, "Cluster").spec;
    assert.is(bytes(db.resources.limits.memory), bytes(env.DB_MEM_LIMIT ?? ""), "DB_MEM_LIMIT");
    assert.is(cpus(db.resources.limits.cpu), cpus(env.DB_CPUS ?? ""), "DB_CPUS");
    assert.is(db.postgresql.parameters.shared_buffers, env.DB_SHARED_BUFFERS, "DB_SHARED_BUFFERS");

    const rate = Number(/^(\d+)r\/s$/.exec(env.API_RATE_LIMIT ?? "")?.[1]);
    for (const ingress of all.filter((o) => o.kind === "Ingress")) {
      const a = ingress.metadata.annotations ?? {};
      assert.equal(
        ingress.spec.rules.map((r: { host: string }) => r.host),
        [env.SERVER_NAME],
        "SERVER_NAME",
      );
      assert.is(a["nginx.ingress.kubernetes.io/proxy-body-size"], env.CLIENT_MAX_BODY_SIZE, "CLIENT_MAX_BODY_SIZE");
      if (ingress.metadata.name === "loan-api") {
        assert.is(Number(a["nginx.ingress.kubernetes.io/limit-rps"]), rate, "API_RATE_LIMIT");
        const burst = rate * Number(a["nginx.ingress.kubernetes.io/limit-burst-multiplier"]);
        assert.is(burst, Number(env.API_RATE_BURST), "API_RATE_BURST = limit-rps × limit-burst-multiplier");
      } else {
        assert.is(a["nginx.ingress.kubernetes.io/limit-rps"], undefined, "health and readiness are not rate limited");
      }
    }
  });
}

Settings("the size parsers read both notations (so the comparisons above can fail)", () => {
  assert.is(bytes("512M"), bytes("512Mi"));
  assert.is(bytes("1G"), bytes("1Gi"));
  assert.is.not(bytes("1G"), bytes("512Mi"));
  assert.is(cpus("500m"), 0.5);
  assert.is(cpus("2.0"), cpus("2"));
});

Settings.run();
