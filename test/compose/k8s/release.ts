/**
 * An overlay rendered as a release of the sample image, through the same kustomization the pipeline's `render`
 * writes (ci/src/pipeline.ts, releaseKustomization): from the pipeline's output (K8S_RENDERED_DIR), or here, with
 * kubectl's kustomize over a copy of k8s/.
 */
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { K8S_SAMPLE_RELEASE_IMAGE, releaseKustomization } from "../../../ci/src/pipeline.js";
import { kustomize, type Overlay, root } from "./kubectl.js";

const cache = new Map<string, string>();

export function renderRelease(overlay: Overlay, image: string = K8S_SAMPLE_RELEASE_IMAGE): string {
  const rendered = process.env.K8S_RENDERED_DIR;
  if (rendered && image === K8S_SAMPLE_RELEASE_IMAGE) {
    return readFileSync(join(rendered, `${overlay}.release.yaml`), "utf8");
  }
  const key = `${overlay} ${image}`;
  const hit = cache.get(key);
  if (hit !== undefined) return hit;
  const work = mkdtempSync(join(tmpdir(), "loan-k8s-release-"));
  try {
    cpSync(join(root, "k8s"), join(work, "k8s"), { recursive: true });
    const dir = join(work, "k8s", "release", overlay);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, "kustomization.yaml"), releaseKustomization(overlay, image));
    const text = kustomize(dir);
    cache.set(key, text);
    return text;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
