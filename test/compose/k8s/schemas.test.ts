// test/run.ts: process-group compose
/**
 * Every overlay renders with kustomize, and every object it renders is valid against the schemas of the pinned
 * Kubernetes version (kubernetes-models) or, for custom resources, of the operator's own CRD (see manifests.ts).
 * Offline: nothing is applied to a cluster; no cluster exists where these tests run.
 */
import { createRequire } from "node:module";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { KUBECTL, kubectlVersion, OVERLAYS, renderOverlay } from "./kubectl.js";
import { crdBundle, find, type K8sObject, parseManifests, schemaErrors } from "./manifests.js";
import { renderRelease } from "./release.js";

const Schemas = suite("k8s: every overlay renders and validates (offline, no cluster)");

const EXPECTED = [
  "Namespace/loans-OVERLAY",
  "ConfigMap/loan-api-config-*",
  "Service/loan-api",
  "Deployment/loan-api",
  "PodDisruptionBudget/loan-api",
  "HorizontalPodAutoscaler/loan-api",
  "Job/loan-migrate",
  "Ingress/loan-api",
  "Ingress/loan-api-meta",
  "NetworkPolicy/loan-api",
  "NetworkPolicy/loan-migrate",
  "Cluster/loans-db",
  "ScheduledBackup/loans-db-daily",
  "ObjectStore/loans-db-backups",
];

Schemas(
  "the renderer is the pinned one: the pipeline's kustomize output, or kubectl v1.35.2 (kustomize v5.7.1)",
  () => {
    if (process.env.K8S_RENDERED_DIR) {
      for (const overlay of OVERLAYS) assert.ok(renderOverlay(overlay).includes("kind: Deployment"), overlay);
      return;
    }
    const version = kubectlVersion();
    assert.is(version.clientVersion.gitVersion, KUBECTL.kubectlVersion);
    assert.is(version.kustomizeVersion, KUBECTL.kustomizeVersion);
  },
);

Schemas("the kubernetes-models package pinned in package.json is the one whose schemas are used", () => {
  const require = createRequire(import.meta.url);
  const pkg = require("../../../package.json") as { devDependencies: Record<string, string> };
  assert.is(pkg.devDependencies["kubernetes-models"], "4.5.0", "pin it exactly: its version fixes the schemas");
  const installed = require("kubernetes-models/package.json") as { version: string };
  assert.is(installed.version, "4.5.0");
});

for (const overlay of OVERLAYS) {
  Schemas(`${overlay}: renders exactly the expected objects, all in namespace loans-${overlay}`, () => {
    const objects = parseManifests(renderOverlay(overlay));
    const names = objects.map(
      (o) => `${o.kind}/${o.metadata.name.replace(/^loan-api-config-[a-z0-9]{10}$/, "loan-api-config-*")}`,
    );
    assert.equal(names.sort(), EXPECTED.map((e) => e.replace("OVERLAY", overlay)).sort());
    for (const o of objects.filter((x) => x.kind !== "Namespace")) {
      assert.is(o.metadata.namespace, `loans-${overlay}`, `${o.kind}/${o.metadata.name}`);
    }
  });

  Schemas(
    `${overlay}: every object is valid against its schema (the overlay as committed and as a release)`,
    async () => {
      for (const text of [renderOverlay(overlay), renderRelease(overlay)]) {
        const errors = (await Promise.all(parseManifests(text).map(schemaErrors))).flat();
        assert.equal(errors, []);
      }
    },
  );
}

/** A deep copy of one rendered object with a change applied. */
function mutated(kind: string, change: (o: K8sObject) => void): K8sObject {
  const object = structuredClone(find(parseManifests(renderOverlay("prod")), kind));
  change(object);
  return object;
}

Schemas("the validators reject what the API server would: wrong types, unknown CRD fields, unknown kinds", async () => {
  const cases: Array<[string, K8sObject]> = [
    [
      "replicas as a string",
      mutated("Deployment", (o) => {
        o.spec.replicas = "3";
      }),
    ],
    [
      "preStop sleep seconds as a string (the sleep action is a typed field of the pinned schema)",
      mutated("Deployment", (o) => {
        o.spec.template.spec.containers[0].lifecycle.preStop.sleep.seconds = "5";
      }),
    ],
    [
      "a container without a name",
      mutated("Job", (o) => {
        delete o.spec.template.spec.containers[0].name;
      }),
    ],
    [
      "HPA metric of an unknown type",
      mutated("HorizontalPodAutoscaler", (o) => {
        o.spec.metrics[0].type = 7;
      }),
    ],
    [
      "Cluster instances as a string",
      mutated("Cluster", (o) => {
        o.spec.instances = "3";
      }),
    ],
    [
      "Cluster with a misspelt field",
      mutated("Cluster", (o) => {
        o.spec.instance = 3;
      }),
    ],
    [
      "ScheduledBackup with an unknown method",
      mutated("ScheduledBackup", (o) => {
        o.spec.method = "snapshot";
      }),
    ],
    [
      "ObjectStore without a destination",
      mutated("ObjectStore", (o) => {
        delete o.spec.configuration.destinationPath;
      }),
    ],
    ["a kind nobody defines", { apiVersion: "example.com/v1", kind: "Widget", metadata: { name: "w" } }],
  ];
  for (const [what, object] of cases) {
    assert.ok((await schemaErrors(object)).length > 0, `not rejected: ${what}`);
  }
});

Schemas("the CRD schemas are vendored from the operators' release tags, with checksums", () => {
  assert.equal(Object.keys(crdBundle.schemas).sort(), [
    "barmancloud.cnpg.io/v1/ObjectStore",
    "postgresql.cnpg.io/v1/Cluster",
    "postgresql.cnpg.io/v1/ScheduledBackup",
  ]);
  for (const s of crdBundle.sources) {
    assert.match(s.source, /^github\.com\/cloudnative-pg\/[\w-]+@v\d+\.\d+\.\d+:config\/crd\/bases\/.+\.yaml$/);
    assert.match(s.sha256, /^[0-9a-f]{64}$/);
  }
});

Schemas.run();
