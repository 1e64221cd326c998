// test/run.ts: process-group compose
/**
 * A release render: the committed overlay with the service's image replaced by the published one, by digest, and
 * the migration Job named after that digest — through the same kustomization the pipeline's `render` writes
 * (ci/src/pipeline.ts). Rendered here with kubectl's kustomize, or by the pipeline (K8S_RENDERED_DIR).
 */
import { suite } from "uvu";
import * as assert from "uvu/assert";
import {
  imageByDigest,
  K8S_OVERLAY_IMAGE,
  K8S_SAMPLE_RELEASE_IMAGE,
  releaseJobName,
  releaseKustomization,
} from "../../../ci/src/pipeline.js";
import { OVERLAYS, renderOverlay } from "./kubectl.js";
import { parseManifests } from "./manifests.js";
import { renderRelease } from "./release.js";

const Release = suite("k8s: a release renders the published digest (offline, no cluster)");

const DIGEST = `sha256:${"ab".repeat(32)}`;
const PLACEHOLDER = `sha256:${"0".repeat(64)}`;

Release(
  "imageByDigest keeps the name and digest of a published ref, drops the tag, refuses refs without a digest",
  () => {
    assert.equal(imageByDigest(`ghcr.io/o/loan-service:latest@${DIGEST}`), {
      name: "ghcr.io/o/loan-service",
      digest: DIGEST,
      ref: `ghcr.io/o/loan-service@${DIGEST}`,
    });
    assert.is(imageByDigest(`registry.local:5000/team/api@${DIGEST}`).name, "registry.local:5000/team/api");
    assert.is(imageByDigest(`registry.local:5000/team/api:v1.2@${DIGEST}`).name, "registry.local:5000/team/api");
    for (const bad of [
      "ghcr.io/o/loan-service:latest",
      "ghcr.io/o/loan-service",
      `ghcr.io/o/loan-service@sha256:${"ab".repeat(31)}`,
      `ghcr.io/o/loan-service@${PLACEHOLDER}`,
      `ghcr.io/o/loan-service:latest@${DIGEST} extra`,
      "",
    ]) {
      assert.throws(() => imageByDigest(bad), bad);
    }
  },
);

Release("the release kustomization names the overlay's image and only known overlays", () => {
  const k = JSON.parse(releaseKustomization("prod", `ghcr.io/o/loan-service:latest@${DIGEST}`));
  assert.equal(k.resources, ["../../overlays/prod"]);
  assert.equal(k.images, [{ name: K8S_OVERLAY_IMAGE, newName: "ghcr.io/o/loan-service", digest: DIGEST }]);
  assert.throws(() => releaseKustomization("dev", `ghcr.io/o/loan-service@${DIGEST}`), /unknown overlay/);
  assert.throws(() => releaseKustomization("../prod", `ghcr.io/o/loan-service@${DIGEST}`), /unknown overlay/);
  assert.is(releaseJobName(DIGEST), "loan-migrate-abababababab");
});

Release("every overlay names the image the release kustomization replaces, with the placeholder digest", () => {
  for (const overlay of OVERLAYS) {
    const images = parseManifests(renderOverlay(overlay))
      .filter((o) => o.kind === "Deployment" || o.kind === "Job")
      .map((o) => o.spec.template.spec.containers[0].image);
    assert.equal([...new Set(images)], [`${K8S_OVERLAY_IMAGE}@${PLACEHOLDER}`], overlay);
  }
});

for (const overlay of OVERLAYS) {
  Release(`${overlay}: the release runs the published digest, its Job is named after it, nothing else changes`, () => {
    const sample = imageByDigest(K8S_SAMPLE_RELEASE_IMAGE);
    const text = renderRelease(overlay);
    assert.not.match(text, PLACEHOLDER);
    assert.not.match(text, K8S_OVERLAY_IMAGE);
    const released = parseManifests(text);
    const workloads = released.filter((o) => o.kind === "Deployment" || o.kind === "Job");
    for (const o of workloads) assert.is(o.spec.template.spec.containers[0].image, sample.ref, o.kind);
    const jobs = released.filter((o) => o.kind === "Job").map((o) => o.metadata.name);
    assert.equal(jobs, [releaseJobName(sample.digest)]);

    // Apart from the image and the Job's name, the release is the committed overlay.
    const normalise = (t: string) =>
      t
        .replaceAll(sample.ref, "IMAGE")
        .replaceAll(`${K8S_OVERLAY_IMAGE}@${PLACEHOLDER}`, "IMAGE")
        .replaceAll(`name: ${releaseJobName(sample.digest)}`, "name: loan-migrate");
    assert.fixture(normalise(text), normalise(renderOverlay(overlay)));
  });
}

Release(
  "another digest is another Job (one per release); the same digest, the same Job (re-applying is a no-op)",
  () => {
    const other = `ghcr.io/example/loan-service@sha256:${"cd".repeat(32)}`;
    const jobOf = (text: string) => parseManifests(text).find((o) => o.kind === "Job")?.metadata.name;
    if (process.env.K8S_RENDERED_DIR) {
      // Inside the pipeline only the sample release is rendered; the naming is the pure function's.
      assert.is.not(
        releaseJobName(imageByDigest(other).digest),
        releaseJobName(imageByDigest(K8S_SAMPLE_RELEASE_IMAGE).digest),
      );
      return;
    }
    assert.is(jobOf(renderRelease("staging", other)), "loan-migrate-cdcdcdcdcdcd");
    assert.is(jobOf(renderRelease("staging", other)), jobOf(renderRelease("staging", other)));
    assert.is.not(jobOf(renderRelease("staging", other)), jobOf(renderRelease("staging")));
  },
);

Release.run();
