// test/run.ts: process-group compose
/**
 * Policy over the rendered overlays: what the manifests promise, checked on the output of kustomize (not on the
 * source files), against the service's own code where it can be: the probe paths are routes the app answers
 * (started in-process against an unreachable database), the migration script exists, the image's user is the
 * numeric user the pods run as. Offline: no cluster; what only a cluster shows is listed in the README.
 */

import { readFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { createApp } from "../../../service/src/app.js";
import { createDb } from "../../../service/src/db.js";
import { createLogger } from "../../../service/src/logger.js";
import { OVERLAYS, type Overlay, renderOverlay, root } from "./kubectl.js";
import { find, type K8sObject, parseManifests, selects } from "./manifests.js";

const Policy = suite("k8s: policy over the rendered overlays (offline, no cluster)");

const objects = (overlay: Overlay) => parseManifests(renderOverlay(overlay));
const podSpecs = (all: K8sObject[]) =>
  all.filter((o) => o.kind === "Deployment" || o.kind === "Job").map((o) => ({ owner: o, pod: o.spec.template.spec }));
const api = (all: K8sObject[]) => find(all, "Deployment", "loan-api").spec.template.spec.containers[0];
const config = (all: K8sObject[]) => find(all, "ConfigMap").data ?? {};

/** The app in-process, its database unreachable (port 1 on loopback refuses at once). */
async function probeApp() {
  const db = createDb({
    databaseUrl: "postgresql://loans@127.0.0.1:1/loans",
    dbPoolMin: 0,
    dbPoolMax: 2,
    dbAcquireTimeoutMs: 500,
    dbStatementTimeoutMs: 1000,
  });
  const app = createApp({
    db,
    logger: createLogger({ level: "silent" }),
    config: { trustProxy: 1, dbAcquireTimeoutMs: 500 },
  });
  const server = createServer(app).listen(0, "127.0.0.1");
  await new Promise<void>((resolve) => server.once("listening", () => resolve()));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    status: async (path: string) => (await fetch(`${base}${path}`)).status,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await db.destroy();
    },
  };
}

Policy(
  "probes: startup and liveness GET /health (200 while the database is down), readiness GET /ready (503 then)",
  async () => {
    const app = await probeApp();
    try {
      for (const overlay of OVERLAYS) {
        const all = objects(overlay);
        const container = api(all);
        const port = container.ports.find((p: { name: string }) => p.name === "http");
        assert.is(port?.containerPort, Number(config(all).PORT), `${overlay}: the named port is the service's PORT`);
        for (const probe of ["startupProbe", "livenessProbe", "readinessProbe"]) {
          assert.is(container[probe]?.httpGet?.port, "http", `${overlay} ${probe}`);
        }
        assert.is(container.startupProbe.httpGet.path, "/health");
        assert.is(container.livenessProbe.httpGet.path, "/health");
        assert.is(container.readinessProbe.httpGet.path, "/ready");
        // The app really answers them: liveness does not depend on the database, readiness does.
        assert.is(
          await app.status(container.livenessProbe.httpGet.path),
          200,
          "liveness must not fail with the database",
        );
        assert.is(await app.status(container.readinessProbe.httpGet.path), 503, "readiness reports the database down");
        assert.ok(container.readinessProbe.timeoutSeconds * 1000 > 500, "the probe waits longer than the app's check");
      }
      assert.is(await app.status("/healthz"), 404, "an unknown path is not a probe endpoint (the check can fail)");
    } finally {
      await app.close();
    }
  },
);

Policy("the ingress routes only paths the app serves, and never /metrics", async () => {
  const app = await probeApp();
  try {
    for (const overlay of OVERLAYS) {
      const paths = parseManifests(renderOverlay(overlay))
        .filter((o) => o.kind === "Ingress")
        .flatMap((o) => o.spec.rules.flatMap((r: { http: { paths: Array<{ path: string }> } }) => r.http.paths));
      assert.equal(paths.map((p) => p.path).sort(), ["/api", "/health", "/openapi.json", "/ready"]);
      assert.ok(!paths.some((p) => p.path.startsWith("/metrics")));
    }
    assert.is(await app.status("/openapi.json"), 200);
    // The public app has no /metrics at all (the metrics listener is a port of its own); the ingress never routes it.
    assert.is(await app.status("/metrics"), 404, "/metrics is not on the public port");
  } finally {
    await app.close();
  }
});

Policy(
  "every pod runs non-root (numeric uid 1000 = the image's `node`), read-only, no capabilities, seccomp RuntimeDefault",
  () => {
    const dockerfile = readFileSync(join(root, "Dockerfile"), "utf8");
    assert.match(dockerfile, /^USER node$/m, "the image runs as the node image's `node` user (uid 1000)");
    for (const overlay of OVERLAYS) {
      for (const { owner, pod } of podSpecs(objects(overlay))) {
        const id = `${overlay} ${owner.kind}/${owner.metadata.name}`;
        assert.is(pod.securityContext.runAsNonRoot, true, id);
        assert.is(pod.securityContext.runAsUser, 1000, id);
        assert.is(pod.securityContext.seccompProfile?.type, "RuntimeDefault", id);
        assert.is(pod.automountServiceAccountToken, false, id);
        for (const c of pod.containers) {
          assert.is(c.securityContext.readOnlyRootFilesystem, true, id);
          assert.is(c.securityContext.allowPrivilegeEscalation, false, id);
          assert.equal(c.securityContext.capabilities.drop, ["ALL"], id);
          assert.is(c.securityContext.capabilities.add, undefined, id);
          // A read-only root needs somewhere to write: /tmp is an emptyDir, as compose's tmpfs.
          const tmp = c.volumeMounts.find((m: { mountPath: string }) => m.mountPath === "/tmp");
          assert.ok(pod.volumes.find((v: { name: string; emptyDir?: unknown }) => v.name === tmp?.name)?.emptyDir, id);
        }
      }
      const namespace = find(objects(overlay), "Namespace");
      assert.is(namespace.metadata.labels?.["pod-security.kubernetes.io/enforce"], "restricted");
    }
  },
);

Policy("every container has CPU and memory requests and limits; memory request = limit", () => {
  for (const overlay of OVERLAYS) {
    for (const { owner, pod } of podSpecs(objects(overlay))) {
      for (const c of pod.containers) {
        const id = `${overlay} ${owner.kind}/${owner.metadata.name} ${c.name}`;
        for (const kind of ["requests", "limits"]) {
          assert.ok(c.resources?.[kind]?.cpu, `${id} ${kind}.cpu`);
          assert.ok(c.resources?.[kind]?.memory, `${id} ${kind}.memory`);
        }
        assert.is(c.resources.requests.memory, c.resources.limits.memory, id);
      }
    }
    const cluster = find(objects(overlay), "Cluster").spec.resources;
    assert.ok(cluster.requests.memory && cluster.limits.memory && cluster.limits.cpu, `${overlay} Cluster resources`);
  }
});

Policy("images by digest only, never a tag such as latest; the Job runs the Deployment's image", () => {
  for (const overlay of OVERLAYS) {
    const all = objects(overlay);
    const images = podSpecs(all).flatMap(({ pod }) => pod.containers.map((c: { image: string }) => c.image));
    for (const image of images) {
      assert.match(image, /^[a-z0-9.-]+(:\d+)?\/[a-z0-9._/-]+@sha256:[0-9a-f]{64}$/, `${overlay}: ${image}`);
      assert.not.match(image, /:latest\b/);
    }
    assert.is(new Set(images).size, 1, `${overlay}: one image for the API and its migrations`);
    assert.match(
      find(all, "Cluster").spec.imageName,
      /^ghcr\.io\/cloudnative-pg\/postgresql:17\.\d+-/,
      "PostgreSQL 17, pinned minor",
    );
  }
});

Policy("replicas: staging 2, prod 3; rolling update never below capacity (maxUnavailable 0)", () => {
  for (const [overlay, replicas] of [
    ["staging", 2],
    ["prod", 3],
  ] as const) {
    const deployment = find(objects(overlay), "Deployment", "loan-api");
    assert.is(deployment.spec.replicas, replicas, overlay);
    assert.is(deployment.spec.strategy.type, "RollingUpdate");
    assert.is(deployment.spec.strategy.rollingUpdate.maxUnavailable, 0);
    assert.ok(deployment.spec.strategy.rollingUpdate.maxSurge >= 1);
  }
});

Policy("the PDB and the HPA (autoscaling/v2, CPU) select the Deployment's pods and nothing else", () => {
  for (const overlay of OVERLAYS) {
    const all = objects(overlay);
    const deployment = find(all, "Deployment", "loan-api");
    const apiLabels = deployment.spec.template.metadata.labels;
    const jobLabels = find(all, "Job").spec.template.metadata.labels;
    assert.ok(selects(deployment.spec.selector, apiLabels), "the Deployment selects its own pods");

    const pdb = find(all, "PodDisruptionBudget");
    assert.ok(selects(pdb.spec.selector, apiLabels), `${overlay}: PDB selects the API pods`);
    assert.not.ok(selects(pdb.spec.selector, jobLabels), `${overlay}: PDB does not cover the migration Job`);
    assert.ok(pdb.spec.maxUnavailable === 1 || pdb.spec.minAvailable >= 1, "the budget leaves pods running");
    assert.ok((pdb.spec.maxUnavailable ?? 0) < deployment.spec.replicas, "a drain can never take every pod");

    const hpa = find(all, "HorizontalPodAutoscaler");
    assert.is(hpa.apiVersion, "autoscaling/v2");
    assert.equal(hpa.spec.scaleTargetRef, {
      apiVersion: "apps/v1",
      kind: "Deployment",
      name: deployment.metadata.name,
    });
    assert.is(hpa.spec.minReplicas, deployment.spec.replicas, `${overlay}: the HPA never scales below the replicas`);
    assert.ok(hpa.spec.maxReplicas > hpa.spec.minReplicas);
    assert.equal(
      hpa.spec.metrics.map((m: { resource: { name: string } }) => m.resource.name),
      ["cpu"],
    );
    assert.is(hpa.spec.metrics[0].resource.target.type, "Utilization");

    const service = find(all, "Service", "loan-api");
    assert.ok(selects({ matchLabels: service.spec.selector }, apiLabels), "the Service reaches the API pods");
    assert.is(service.spec.ports[0].targetPort, "http");
  }
});

/**
 * Does a set of NetworkPolicies admit a connection to a pod (by its labels, in `namespace`) from a peer (pod
 * labels in a namespace with labels) on `port`? Policies of the same namespace that select the pod and have
 * Ingress in their policyTypes decide; none selecting it means everything is admitted.
 */
function admitsIngress(
  policies: K8sObject[],
  target: Record<string, string>,
  peer: { namespace: Record<string, string>; pod: Record<string, string>; sameNamespace: boolean },
  port: number | string,
): boolean {
  const applying = policies.filter(
    (p) => selects(p.spec.podSelector, target) && p.spec.policyTypes.includes("Ingress"),
  );
  if (applying.length === 0) return true;
  return applying.some((p) =>
    (p.spec.ingress ?? []).some(
      (rule: { from?: Array<Record<string, any>>; ports?: Array<{ port: number | string }> }) =>
        (rule.ports ?? [{ port }]).some((p2) => p2.port === port) &&
        (rule.from ?? [{}]).some((from) => {
          const ns = from.namespaceSelector ? selects(from.namespaceSelector, peer.namespace) : peer.sameNamespace;
          const pod = from.podSelector ? selects(from.podSelector, peer.pod) : true;
          return ns && pod;
        }),
    ),
  );
}

Policy("NetworkPolicy: the API admits the ingress controller only; egress only to its PostgreSQL and DNS", () => {
  const controller = {
    namespace: { "kubernetes.io/metadata.name": "ingress-nginx" },
    pod: { "app.kubernetes.io/name": "ingress-nginx", "app.kubernetes.io/component": "controller" },
    sameNamespace: false,
  };
  for (const overlay of OVERLAYS) {
    const all = objects(overlay);
    const policies = all.filter((o) => o.kind === "NetworkPolicy");
    const apiLabels = find(all, "Deployment", "loan-api").spec.template.metadata.labels;
    const jobLabels = find(all, "Job").spec.template.metadata.labels;
    assert.ok(
      admitsIngress(policies, apiLabels, controller, "http"),
      `${overlay}: the ingress controller reaches the API`,
    );
    type Peer = { namespace: Record<string, string>; pod: Record<string, string>; sameNamespace: boolean };
    const others: Peer[] = [
      { ...controller, namespace: { "kubernetes.io/metadata.name": "default" } },
      { namespace: { "kubernetes.io/metadata.name": `loans-${overlay}` }, pod: { app: "debug" }, sameNamespace: true },
      { ...controller, sameNamespace: false, pod: { "app.kubernetes.io/name": "something-else" } },
    ];
    for (const peer of others) assert.not.ok(admitsIngress(policies, apiLabels, peer, "http"), JSON.stringify(peer));
    assert.not.ok(admitsIngress(policies, apiLabels, controller, 9229), "no other port");
    assert.not.ok(admitsIngress(policies, jobLabels, controller, "http"), "nothing reaches the migration Job");

    const cluster = find(all, "Cluster").metadata.name;
    for (const labels of [apiLabels, jobLabels]) {
      const applying = policies.filter((p) => selects(p.spec.podSelector, labels));
      assert.ok(applying.length > 0 && applying.every((p) => p.spec.policyTypes.includes("Egress")));
      const egress = applying.flatMap((p) => p.spec.egress);
      const allowed = egress.flatMap(
        (rule: { to: Array<Record<string, any>>; ports: Array<{ port: number; protocol: string }> }) =>
          rule.to.flatMap((to) => rule.ports.map((p) => `${JSON.stringify(to)} ${p.protocol}/${p.port}`)),
      );
      assert.equal(allowed.sort(), [
        `{"namespaceSelector":{"matchLabels":{"kubernetes.io/metadata.name":"kube-system"}},"podSelector":{"matchLabels":{"k8s-app":"kube-dns"}}} TCP/53`,
        `{"namespaceSelector":{"matchLabels":{"kubernetes.io/metadata.name":"kube-system"}},"podSelector":{"matchLabels":{"k8s-app":"kube-dns"}}} UDP/53`,
        `{"podSelector":{"matchLabels":{"cnpg.io/cluster":"${cluster}"}}} TCP/5432`,
      ]);
    }
  }
});

Policy(
  "shutdown: terminationGracePeriodSeconds > preStop sleep + SHUTDOWN_GRACE_MS (+1 s for the cluster primary)",
  () => {
    const server = readFileSync(join(root, "service/src/server.ts"), "utf8");
    assert.match(server, "config.shutdownGraceMs + 1000", "the cluster primary's force-exit is grace + 1 s");
    for (const overlay of OVERLAYS) {
      const all = objects(overlay);
      const pod = find(all, "Deployment", "loan-api").spec.template.spec;
      const preStop = pod.containers[0].lifecycle.preStop;
      assert.equal(Object.keys(preStop), ["sleep"], "the kubelet's own sleep action: no shell needed in the image");
      const grace = Number(config(all).SHUTDOWN_GRACE_MS) / 1000;
      assert.ok(grace > 0);
      assert.ok(
        pod.terminationGracePeriodSeconds > preStop.sleep.seconds + grace + 1,
        `${overlay}: ${pod.terminationGracePeriodSeconds}`,
      );
      assert.ok(preStop.sleep.seconds >= 3, "long enough for endpoints to drop the pod");
    }
  },
);

Policy("migrations: a Job runs the image's migration script; the pods never migrate (MIGRATE_ON_START=false)", () => {
  const build = JSON.parse(readFileSync(join(root, "tsconfig.build.json"), "utf8")) as {
    compilerOptions: { rootDir: string; outDir: string };
  };
  assert.equal([build.compilerOptions.rootDir, build.compilerOptions.outDir], ["service", "dist"]);
  assert.match(readFileSync(join(root, "service/scripts/migrate.ts"), "utf8"), "migrateLatest");
  for (const overlay of OVERLAYS) {
    const all = objects(overlay);
    assert.is(config(all).MIGRATE_ON_START, "false");
    assert.is(config(all).SEED_ON_START, "false");
    const job = find(all, "Job");
    // service/scripts/migrate.ts compiles to dist/scripts/migrate.js (rootDir service, outDir dist).
    assert.equal(job.spec.template.spec.containers[0].args, ["node", "dist/scripts/migrate.js"]);
    assert.is(job.spec.template.spec.containers[0].command, undefined, "the image's entrypoint (tini) stays");
    const ref = job.spec.template.spec.containers[0].envFrom[0].configMapRef.name;
    assert.is(ref, find(all, "ConfigMap").metadata.name, "the Job reads the same settings as the API");
  }
});

Policy(
  "PostgreSQL: a CloudNativePG Cluster (prod 3 instances) whose -rw service and -app secret (a file) the API uses",
  () => {
    for (const [overlay, instances] of [
      ["staging", 2],
      ["prod", 3],
    ] as const) {
      const all = objects(overlay);
      const cluster = find(all, "Cluster");
      assert.is(cluster.spec.instances, instances);
      const { database, owner } = cluster.spec.bootstrap.initdb;
      const url = new URL(config(all).DATABASE_URL ?? "");
      assert.is(url.hostname, `${cluster.metadata.name}-rw`, "the read-write service CloudNativePG creates");
      assert.is(url.port, "5432");
      assert.is(url.username, owner);
      assert.is(url.pathname, `/${database}`);
      assert.is(url.password, "", "no password in the URL");
      const pod = find(all, "Deployment", "loan-api").spec.template.spec;
      const volume = pod.volumes.find(
        (v: { secret?: { secretName: string } }) => v.secret?.secretName === `${cluster.metadata.name}-app`,
      );
      assert.ok(volume, "the generated -app secret is mounted");
      assert.equal(volume.secret.items, [{ key: "password", path: "password" }]);
      const mount = pod.containers[0].volumeMounts.find((m: { name: string }) => m.name === volume.name);
      assert.is(
        config(all).DATABASE_PASSWORD_FILE,
        `${mount.mountPath}/password`,
        "the service reads the password from that file",
      );
    }
  },
);

Policy("backups are named and point at placeholders, never at credentials in the repository", () => {
  for (const overlay of OVERLAYS) {
    const all = objects(overlay);
    const cluster = find(all, "Cluster");
    const plugin = cluster.spec.plugins.find((p: { isWALArchiver?: boolean }) => p.isWALArchiver);
    const store = find(all, "ObjectStore");
    assert.is(plugin.parameters.barmanObjectName, store.metadata.name);
    const scheduled = find(all, "ScheduledBackup");
    assert.is(scheduled.spec.cluster.name, cluster.metadata.name);
    assert.is(scheduled.spec.method, "plugin");
    assert.is(scheduled.spec.pluginConfiguration.name, plugin.name);
    assert.match(store.spec.configuration.destinationPath, new RegExp(`^s3://CHANGE-ME-[a-z0-9-]+/${overlay}$`));
    for (const ref of Object.values(store.spec.configuration.s3Credentials) as Array<{ name: string; key: string }>) {
      assert.equal(Object.keys(ref).sort(), ["key", "name"], "a reference to a Secret, not a value");
    }
  }
});

Policy("no secret in the repository: no Secret objects, no inline credentials, no private keys", () => {
  for (const overlay of OVERLAYS) {
    const text = renderOverlay(overlay);
    const all = parseManifests(text);
    assert.equal(
      all.filter((o) => o.kind === "Secret"),
      [],
    );
    for (const [key, value] of Object.entries(config(all))) {
      assert.not.match(`${key}=${value}`, /(PASSWORD|TOKEN|SECRET|KEY)=(?!\/)/i, `${key} looks like a credential`);
    }
    assert.not.match(text, /BEGIN [A-Z ]*PRIVATE KEY/);
    assert.not.match(text, /stringData:|\bdata:\s*\n\s+(password|token)/);
  }
});

Policy("TLS on every ingress host, HTTPS enforced, the ingress-nginx class", () => {
  for (const overlay of OVERLAYS) {
    for (const ingress of objects(overlay).filter((o) => o.kind === "Ingress")) {
      assert.is(ingress.spec.ingressClassName, "nginx");
      const hosts = ingress.spec.rules.map((r: { host: string }) => r.host);
      const tlsHosts = ingress.spec.tls.flatMap((t: { hosts: string[]; secretName: string }) => t.hosts);
      assert.equal(tlsHosts, hosts);
      assert.ok(ingress.spec.tls.every((t: { secretName: string }) => t.secretName));
      assert.is(ingress.metadata.annotations?.["nginx.ingress.kubernetes.io/force-ssl-redirect"], "true");
    }
  }
});

Policy.run();
